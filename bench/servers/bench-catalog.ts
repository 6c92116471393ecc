// The models every gateway of the bench serves (the local server and the Lambda bundle alike), all
// routed to the stand-in upstream; a path prefix shapes its answer (bench/servers/upstream.ts).
export const BENCH_MODEL = 'bench-model';
/** The upstream waits 300 ms before its first byte, as a provider's time to first token. */
export const BENCH_MODEL_300 = 'bench-model-300';
/** A JSON answer after 1 s, and a stream of about 20 s (the Lambda memory step). */
export const BENCH_JSON_1S = 'bench-json-1s';
export const BENCH_STREAM_20S = 'bench-stream-20s';

/** The 20 s stream's shape: 1,000 chunks 20 ms apart (50 a second, a typical output rate). BENCH_MEMORY_STREAM=<chunks>x<gapMs> changes it. */
export const stream20sShape = () => process.env.BENCH_MEMORY_STREAM ?? '1000x20';

export function benchCatalogDocument(upstreamUrl: string) {
  const model = (prefix: string) => ({
    owned_by: 'bench',
    pricing: { input_per_mtok: 2.5, output_per_mtok: 10 },
    context_window: 128000,
    max_output_tokens: 16384,
    routes: [{ provider: 'openai-compatible', base_url: `${upstreamUrl}${prefix}/v1`, model: 'bench-upstream' }],
  });
  return {
    models: {
      [BENCH_MODEL]: model(''),
      [BENCH_MODEL_300]: model('/delay/300'),
      [BENCH_JSON_1S]: model('/delay/1000'),
      [BENCH_STREAM_20S]: model(`/stream/${stream20sShape()}`),
    },
  };
}
