// The chat function's bundle as Lambda runs it (bench/lambda-host.cjs), as a target of the bench,
// and the memory step: what one invocation costs at 128 / 256 / 512 / 1024 MB (docs/COST.md).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tableEnv, type TableNames } from '../lambda/store/tables';
import type { ChatBundleFiles } from '../scripts/bundle';
import { target, timedRequest, type Target } from './client';
import { startServer, type Server } from './procs';
import { benchCatalogDocument, BENCH_JSON_1S, BENCH_STREAM_20S, stream20sShape } from './servers/bench-catalog';

/** Lambda gives a function one full vCPU at 1,769 MB, and a share in proportion below (AWS, "Lambda memory and computing power"). */
export const FULL_VCPU_MB = 1769;
/** arm64, us-east-1, first 7.5 billion GB-s a month (aws.amazon.com/lambda/pricing, 2026-12). */
export const ARM64_USD_PER_GB_S = 0.0000133334;
export const USD_PER_MILLION_REQUESTS = 0.2;
export const MEMORY_SIZES_MB = [128, 256, 512, 1024] as const;

/** The choice's rules (docs/COST.md): the smallest size that keeps all three. */
export const MEMORY_RULES = {
  /** A warm instance's resident memory, tokenizer loaded, at most this share of the size. */
  maxRssShare: 0.75,
  /**
   * What the CPU share adds to the client's wait for the 1 s JSON answer (the CPU before its last
   * byte stretched by 1769 / MB, less that CPU itself): 3 % of it. Revised from 10 ms in issue 22 (docs/COST.md): 10 ms picked 1,024 MB, which
   * doubles every request's bill to save about 2 % of the answer's time.
   */
  maxAddedJsonMs: 30,
  /** The cold start's require, stretched by 1769 / MB. */
  maxInitMs: 500,
  /**
   * A cold instance's own extra work, stretched: the require, and the tokenizer load that runs in
   * its first invocation's tail (lazy since issue 22, so the require rule alone no longer sees
   * it). While it runs, the instance takes no other request: in a burst (a deploy, a traffic
   * spike) every extra cold instance is busy that long. Added in issue 22 when a quiet run's JSON
   * rule alone picked 256 MB, where a cold instance stays busy about 2.9 s.
   */
  maxColdBusyMs: 2_000,
};

export async function startLambdaTarget(bundle: ChatBundleFiles, upstreamUrl: string, dynamoEndpoint: string, tables: TableNames, execArgv: string[] = []): Promise<Server> {
  const catalogFile = join(bundle.handlerFile, '../catalog.json');
  writeFileSync(catalogFile, JSON.stringify(benchCatalogDocument(upstreamUrl)));
  return startServer('gateway-lambda', join(__dirname, 'lambda-host.cjs'), {
    ts: false,
    execArgv,
    env: {
      LAMBDA_HANDLER_FILE: bundle.handlerFile,
      ITAPI_TOKENIZER_MODULE: bundle.tokenizerFile,
      ITAPI_DYNAMODB_ENDPOINT: dynamoEndpoint,
      ...tableEnv(tables),
      ITAPI_MODELS: catalogFile,
      ITAPI_MAX_REQUEST_S: '870',
      ITAPI_SETTLEMENT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/itapi-settlements',
      ITAPI_ALERT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/itapi-alerts',
      // Metrics on, as deployed: their EMF lines go to stdout, which the bench discards.
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      NODE_OPTIONS: '',
    },
  });
}

/**
 * Another checkout's chat bundle (`BENCH_BASELINE`), built by that checkout's own scripts/bundle.ts,
 * under the same host, tables and keys: the "before" beside `gateway-lambda` in one run.
 */
export async function startBaselineLambdaTarget(baselineDir: string, upstreamUrl: string, dynamoEndpoint: string, tables: TableNames, execArgv: string[] = []): Promise<Server> {
  const { bundleChat: baselineBundle } = (await import(join(baselineDir, 'scripts/bundle'))) as { bundleChat: (outdir: string) => Promise<ChatBundleFiles> };
  const built = await baselineBundle(join(__dirname, 'results/bundle-baseline'));
  return startLambdaTarget(built, upstreamUrl, dynamoEndpoint, tables, execArgv);
}

interface Invocation {
  streamEndMs: number;
  /** The CPU up to the client's last byte: what the client waits on (the rest is billed, not waited on). */
  streamEndCpuMs: number;
  handlerMs: number;
  cpuMs: number;
}

export interface MemoryShape {
  shape: string;
  rounds: number;
  /** Medians over the rounds: the invocation's wall time on this machine's full core, and its CPU. */
  handlerMsMedian: number;
  cpuMsMedian: number;
  /** Of that CPU, what ran before the client's last byte (median). */
  cpuToLastByteMsMedian: number;
  /** The client's last byte, from the request's start. */
  clientMsMedian: number;
  failures: number;
}

export interface MemoryRow {
  memoryMb: number;
  json: { durationMs: number; usdPerMillion: number; addedMs: number };
  stream: { durationMs: number; usdPerMillion: number; addedMs: number };
  initMs: number;
  tokenizerLoadMs: number;
  rssShare: number;
  fits: boolean;
}

export interface MemoryResults {
  model: string;
  json: MemoryShape;
  stream: MemoryShape;
  initCpuMs: number;
  tokenizerLoadCpuMs: number;
  rssWithTokenizerMb: number;
  rows: MemoryRow[];
  chosenMb: number | undefined;
  rules: typeof MEMORY_RULES;
  prices: { arm64UsdPerGbS: number; usdPerMillionRequests: number };
}

const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : NaN);

/** Duration at a memory size: the waits as measured, the CPU stretched by the share of a vCPU Lambda gives that size. */
export function durationAt(memoryMb: number, handlerMs: number, cpuMs: number): number {
  const stretch = Math.max(1, FULL_VCPU_MB / memoryMb);
  return Math.max(0, handlerMs - cpuMs) + cpuMs * stretch;
}

/** USD per million invocations: billed duration (rounded up to the millisecond) × GB × price, plus the request price. */
export function usdPerMillion(memoryMb: number, durationMs: number): number {
  return (Math.ceil(durationMs) / 1000) * (memoryMb / 1024) * ARM64_USD_PER_GB_S * 1e6 + USD_PER_MILLION_REQUESTS;
}

async function measure(host: Server, t: Target, stream: boolean, rounds: number): Promise<MemoryShape & { shapeName: string }> {
  const invocations: Invocation[] = [];
  const client: number[] = [];
  let failures = 0;
  await host.request({ type: 'invocations' });
  for (let i = 0; i < rounds; i++) {
    const r = await timedRequest(t, stream);
    // One invocation at a time, as one Lambda instance runs them: its CPU is its own.
    await host.request({ type: 'drain' }, 120_000);
    const [inv] = (await host.request<{ invocations: Invocation[] }>({ type: 'invocations' })).invocations;
    if (r.status !== 200 || !inv) failures++;
    else {
      invocations.push(inv);
      client.push(r.totalMs);
    }
  }
  return {
    shapeName: '',
    shape: '',
    rounds,
    handlerMsMedian: median(invocations.map((x) => x.handlerMs)),
    cpuMsMedian: median(invocations.map((x) => x.cpuMs)),
    cpuToLastByteMsMedian: median(invocations.map((x) => x.streamEndCpuMs)),
    clientMsMedian: median(client),
    failures,
  };
}

/**
 * The memory step: the bundle under its streaming adapter answers a 1 s JSON answer and a 20 s
 * stream one at a time; each invocation's wall time and CPU are measured on this machine's full
 * core, and its duration at each size computed as waits + CPU × 1769 / MB (see docs/COST.md).
 */
export async function lambdaMemory(
  host: Server,
  key: string,
  cold: { importCpuMsMedian: number; tokenizerLoadCpuMsMedian: number; rssWithTokenizerMb: number },
  rounds: { json: number; stream: number },
): Promise<MemoryResults> {
  const headers = { authorization: `Bearer ${key}` };
  const body = (model: string) => (stream: boolean) =>
    JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello! Say something short, please.' }], ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}) });
  const jsonTarget = target('lambda-json-1s', host.url, '/v1/chat/completions', headers, body(BENCH_JSON_1S));
  const streamTarget = target('lambda-stream-20s', host.url, '/v1/chat/completions', headers, body(BENCH_STREAM_20S));
  // Warm: the first answer loads the tokenizer in its tail; the step measures a warm instance.
  await timedRequest(jsonTarget, false);
  await host.request({ type: 'drain' }, 120_000);
  const json = { ...(await measure(host, jsonTarget, false, rounds.json)), shape: 'JSON answer after 1 s' };
  const stream = { ...(await measure(host, streamTarget, true, rounds.stream)), shape: `stream of ${stream20sShape().replace('x', ' chunks, ms apart: ')}` };
  const rows: MemoryRow[] = MEMORY_SIZES_MB.map((memoryMb) => {
    const stretch = Math.max(1, FULL_VCPU_MB / memoryMb);
    const jd = durationAt(memoryMb, json.handlerMsMedian, json.cpuMsMedian);
    const sd = durationAt(memoryMb, stream.handlerMsMedian, stream.cpuMsMedian);
    const rssShare = cold.rssWithTokenizerMb / memoryMb;
    const initMs = cold.importCpuMsMedian * stretch;
    // What the client waits longer: the CPU before its last byte, stretched (the settlement after it is billed, not waited on).
    const jsonAdded = json.cpuToLastByteMsMedian * (stretch - 1);
    return {
      memoryMb,
      json: { durationMs: jd, usdPerMillion: usdPerMillion(memoryMb, jd), addedMs: jsonAdded },
      stream: { durationMs: sd, usdPerMillion: usdPerMillion(memoryMb, sd), addedMs: stream.cpuMsMedian * (stretch - 1) },
      initMs,
      tokenizerLoadMs: cold.tokenizerLoadCpuMsMedian * stretch,
      rssShare,
      fits:
        rssShare <= MEMORY_RULES.maxRssShare &&
        jsonAdded <= MEMORY_RULES.maxAddedJsonMs &&
        initMs <= MEMORY_RULES.maxInitMs &&
        initMs + cold.tokenizerLoadCpuMsMedian * stretch <= MEMORY_RULES.maxColdBusyMs,
    };
  });
  return {
    model: 'duration(MB) = (invocation wall − its CPU) + CPU × max(1, 1769 / MB); cost = ceil(duration ms) × MB/1024 × arm64 price per GB-s + request price',
    json,
    stream,
    initCpuMs: cold.importCpuMsMedian,
    tokenizerLoadCpuMs: cold.tokenizerLoadCpuMsMedian,
    rssWithTokenizerMb: cold.rssWithTokenizerMb,
    rows,
    chosenMb: rows.find((r) => r.fits)?.memoryMb,
    rules: MEMORY_RULES,
    prices: { arm64UsdPerGbS: ARM64_USD_PER_GB_S, usdPerMillionRequests: USD_PER_MILLION_REQUESTS },
  };
}

// npx tsx bench/lambda.ts: the memory step alone, as `npm run bench` runs it last (same servers, same
// knobs: BENCH_MEMORY_JSON_ROUNDS, BENCH_MEMORY_STREAM_ROUNDS, BENCH_MEMORY_STREAM, BENCH_COLD_RUNS),
// without the rest of the bench; prints the table and writes bench/results/memory.json.
if (require.main === module) {
  (async () => {
    const { startDynamoLocal } = await import('../lambda/entry/local-server');
    const { coldStart } = await import('./coldstart');
    const { memoryTable } = await import('./report');
    const os = await import('node:os');
    const n = (name: string, full: number) => Number(process.env[name] ?? full);
    const loadAtStart = os.loadavg().map((x) => x.toFixed(2)).join(' ');
    const { files, ...cold } = await coldStart(join(__dirname, 'results/memory-bundle'), n('BENCH_COLD_RUNS', 7));
    const dynamo = await startDynamoLocal();
    const servers: Server[] = [];
    try {
      const upstream = await startServer('upstream', join(__dirname, 'servers/upstream.ts'));
      servers.push(upstream);
      const gateway = await startServer('gateway', join(__dirname, 'servers/gateway.ts'), { env: { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint } });
      servers.push(gateway);
      const host = await startLambdaTarget(files, upstream.url, dynamo.endpoint, gateway.info.tables);
      servers.push(host);
      const memory = await lambdaMemory(host, gateway.info.keys.ok, cold, { json: n('BENCH_MEMORY_JSON_ROUNDS', 10), stream: n('BENCH_MEMORY_STREAM_ROUNDS', 3) });
      const loadAtEnd = os.loadavg().map((x) => x.toFixed(2)).join(' ');
      writeFileSync(join(__dirname, 'results/memory.json'), JSON.stringify({ when: new Date().toISOString(), node: process.version, loadAtStart, loadAtEnd, cold, memory }, null, 2));
      process.stdout.write(`${memoryTable(memory).join('\n')}\n(load average ${loadAtStart} at the start, ${loadAtEnd} at the end; ${os.availableParallelism()} CPUs)\n`);
    } finally {
      await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
      dynamo.child.kill('SIGKILL');
    }
  })().catch((err) => {
    process.stderr.write(`${err?.stack ?? err}\n`);
    process.exitCode = 1;
  });
}
