// npx tsx bench/splice.ts: the upstream body of a long Chat request, built two ways side by side in
// one process (issue 22, eleventh pass): the Chat codec's request serialised whole and encoded to
// UTF-8 (what the gateway did before), and `spliceJson` copying the client's unchanged fields from
// its bytes. For bench/first-byte.ts's long prompt in both shapes (one message, an agent's
// history), BENCH_TTFB_LONG_CHARS characters (100,000); BENCH_SPLICE_ROUNDS alternating rounds
// (41). Prints each way's first call and median, and the ratio. See docs/BENCHMARKS.md.
import { performance } from 'node:perf_hooks';
import { decodeChatRequest, encodeChatRequest } from '../lambda/codecs/openai-chat';
import { spliceJson } from '../lambda/contract/json-splice';
import { parseChatCompletionRequest } from '../lambda/contract/request';
import { heldOutputLimit } from '../lambda/core/call';
import { LONG_PROMPT_CHARS, longPrompt, pct } from './first-byte';
import { runMain } from './procs';

const ROUNDS = Number(process.env.BENCH_SPLICE_ROUNDS ?? 41);

async function main() {
  for (const shape of ['one', 'agent'] as const) {
    const text = JSON.stringify({ model: 'bench-model', stream: true, ...longPrompt(LONG_PROMPT_CHARS, shape) });
    const bytes = Buffer.from(text);
    const value = JSON.parse(text) as Record<string, unknown>;
    const decoded = decodeChatRequest(parseChatCompletionRequest(value));
    const { outputLimit: _limit, ...settings } = decoded.options;
    const encoded = encodeChatRequest({ prompt: decoded.prompt, settings: { ...settings, model: 'upstream-model', maxOutputTokens: heldOutputLimit(1000) } }).request as Record<string, unknown>;
    const ways = {
      serialised: () => Buffer.from(JSON.stringify(encoded)),
      spliced: () => {
        const out = spliceJson(encoded, { bytes, text, value });
        if (!Buffer.isBuffer(out)) throw new Error('nothing was spliced');
        return out;
      },
    };
    if (JSON.stringify(JSON.parse(ways.spliced().toString())) !== JSON.stringify(JSON.parse(ways.serialised().toString()))) throw new Error('the two bodies differ');
    const times: Record<keyof typeof ways, number[]> = { serialised: [], spliced: [] };
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? (['serialised', 'spliced'] as const) : (['spliced', 'serialised'] as const);
      for (const way of order) {
        const start = performance.now();
        ways[way]();
        times[way].push(performance.now() - start);
      }
    }
    const median = (xs: number[]) => pct(xs.slice(1), 50);
    process.stdout.write(`${shape === 'one' ? 'one message' : "an agent's history"}, ${text.length} characters, ${ROUNDS} rounds (ms)\n`);
    for (const way of ['serialised', 'spliced'] as const) process.stdout.write(`  ${way.padEnd(11)} first ${times[way][0].toFixed(3)}  median ${median(times[way]).toFixed(3)}\n`);
    process.stdout.write(`  spliced ÷ serialised, medians: ${(median(times.spliced) / median(times.serialised)).toFixed(2)}\n`);
  }
}

if (require.main === module) runMain(main, 'splice');
