// Cold start: the chat bundle as deployed (minified CJS, AWS SDK external), its size, and the
// time a fresh `node` takes to require it, with a stand-in for the runtime's `awslambda` global.
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleChat, type ChatBundleFiles } from '../scripts/bundle';
import { SERVER_NODE } from './procs';

const PROBE = `
globalThis.awslambda = {
  streamifyResponse: (h) => h,
  HttpResponseStream: { from: (s) => s },
};
const { performance } = require('node:perf_hooks');
const which = process.argv[2];
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const c0 = cpu();
const t0 = performance.now();
if (which === 'sdk') require('@aws-sdk/client-dynamodb');
else require(process.argv[3]);
const ms = performance.now() - t0;
// CPU time as well: on a shared machine the wall time waits on neighbours, the CPU time much less.
const cpuMs = cpu() - c0;
const rssMb = process.memoryUsage().rss / 1048576;
// The o200k tokenizer, which the handler loads after its first answer: the memory a warm instance holds, and what loading it costs.
let tokenizerMs = NaN, tokenizerCpuMs = NaN;
if (which !== 'sdk') {
  const c1 = cpu(), t1 = performance.now();
  require(process.env.ITAPI_TOKENIZER_MODULE).countTokens('warm');
  tokenizerMs = performance.now() - t1;
  tokenizerCpuMs = cpu() - c1;
}
process.stdout.write(JSON.stringify({ ms, cpuMs, rssMb, rssWithTokenizerMb: process.memoryUsage().rss / 1048576, tokenizerMs, tokenizerCpuMs }));
`;

export interface ColdStart {
  bundleBytes: number;
  tokenizerBytes: number;
  runs: number;
  importMsMedian: number;
  importMsAll: number[];
  /** CPU time of the same require (user + system, all threads), median. */
  importCpuMsMedian: number;
  /** The same require with `--enable-source-maps` (what the chat function ran with until issue 22), CPU median. */
  importCpuMsWithSourceMapsMedian: number;
  /** Loading the o200k tokenizer after the first answer (require + first count), median wall and CPU. */
  tokenizerLoadMsMedian: number;
  tokenizerLoadCpuMsMedian: number;
  /** Of which: requiring @aws-sdk/client-dynamodb alone in a fresh process (the runtime provides it, but loads it at init all the same). */
  sdkImportMsMedian: number;
  rssMb: number;
  /** Once the tokenizer is loaded too (after start-up). */
  rssWithTokenizerMb: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function coldStart(outdir: string, runs = 7, bundle: typeof bundleChat = bundleChat, nodePath = join(__dirname, '../node_modules')): Promise<ColdStart & { files: ChatBundleFiles }> {
  mkdirSync(outdir, { recursive: true });
  const files = await bundle(outdir);
  const { handlerFile, tokenizerFile, bytes } = files;
  const probe = join(outdir, 'probe.cjs');
  writeFileSync(probe, PROBE);
  const env = {
    ...process.env,
    // As the stack deploys it (lib/itapi-chat-function.ts): the queues named, their clients made on first use.
    ITAPI_SETTLEMENT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/itapi-settlements',
    ITAPI_ALERT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/itapi-alerts',
    ITAPI_MAX_REQUEST_S: '870',
    ITAPI_RESPONSES_TTL_DAYS: '30',
    AWS_REGION: 'us-east-1',
    ITAPI_TOKENIZER_MODULE: tokenizerFile,
    NODE_PATH: nodePath,
    NODE_OPTIONS: '',
  };
  const run = (which: string, execArgv: string[] = []) =>
    JSON.parse(execFileSync(SERVER_NODE, [...execArgv, probe, which, handlerFile], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as {
      ms: number;
      cpuMs: number;
      rssMb: number;
      rssWithTokenizerMb: number;
      tokenizerMs: number;
      tokenizerCpuMs: number;
    };
  run('bundle'); // warm the OS file cache
  const all: number[] = [];
  const cpuAll: number[] = [];
  const tokenizer: number[] = [];
  const tokenizerCpu: number[] = [];
  const sdk: number[] = [];
  const withMaps: number[] = [];
  let rss = 0;
  let rssWithTokenizer = 0;
  for (let i = 0; i < runs; i++) {
    const r = run('bundle');
    all.push(r.ms);
    cpuAll.push(r.cpuMs);
    tokenizer.push(r.tokenizerMs);
    tokenizerCpu.push(r.tokenizerCpuMs);
    rss = r.rssMb;
    rssWithTokenizer = r.rssWithTokenizerMb;
    sdk.push(run('sdk').ms);
    withMaps.push(run('bundle', ['--enable-source-maps']).cpuMs);
  }
  return {
    files,
    bundleBytes: bytes,
    tokenizerBytes: statSync(tokenizerFile).size,
    runs,
    importMsMedian: median(all),
    importMsAll: all.map((x) => Math.round(x * 10) / 10),
    importCpuMsMedian: median(cpuAll),
    importCpuMsWithSourceMapsMedian: median(withMaps),
    tokenizerLoadMsMedian: median(tokenizer),
    tokenizerLoadCpuMsMedian: median(tokenizerCpu),
    sdkImportMsMedian: median(sdk),
    rssMb: rss,
    rssWithTokenizerMb: rssWithTokenizer,
  };
}

// npx tsx bench/coldstart.ts [another checkout]: this checkout's chat bundle, and the other's beside it
// (built by its own scripts/bundle.ts), required in fresh processes, alternated run by run.
if (require.main === module) {
  (async () => {
    const other = process.argv[2];
    const rows: Array<[string, ColdStart]> = [];
    for (let round = 0; round < 2; round++) {
      rows.push(['this checkout', await coldStart(join(__dirname, 'results/cold/this'), 7)]);
      if (other) {
        const { bundleChat: otherBundle } = (await import(join(other, 'scripts/bundle'))) as { bundleChat: typeof bundleChat };
        rows.push([other, await coldStart(join(__dirname, 'results/cold/other'), 7, otherBundle, join(other, 'node_modules'))]);
      }
    }
    for (const [name, c] of rows) {
      process.stdout.write(`${name}: bundle ${(c.bundleBytes / 1024).toFixed(1)} KiB, require median ${c.importMsMedian.toFixed(1)} ms (${c.importMsAll.join(', ')}), CPU ${c.importCpuMsMedian.toFixed(1)} ms; tokenizer after the first answer ${c.tokenizerLoadMsMedian.toFixed(0)} ms; @aws-sdk/client-dynamodb alone ${c.sdkImportMsMedian.toFixed(1)} ms; RSS ${c.rssMb.toFixed(0)} MB, ${c.rssWithTokenizerMb.toFixed(0)} MB with the tokenizer\n`);
    }
  })();
}
