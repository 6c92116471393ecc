// Cold start: the chat bundle as deployed (minified CJS, AWS SDK external), its size, and the
// time a fresh `node` takes to require it, with a stand-in for the runtime's `awslambda` global.
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleChat } from '../scripts/bundle';

const PROBE = `
globalThis.awslambda = {
  streamifyResponse: (h) => h,
  HttpResponseStream: { from: (s) => s },
};
const { performance } = require('node:perf_hooks');
const which = process.argv[2];
const t0 = performance.now();
if (which === 'sdk') require('@aws-sdk/client-dynamodb');
else require(process.argv[3]);
const ms = performance.now() - t0;
process.stdout.write(JSON.stringify({ ms, rssMb: process.memoryUsage().rss / 1048576 }));
`;

export interface ColdStart {
  bundleBytes: number;
  tokenizerBytes: number;
  runs: number;
  importMsMedian: number;
  importMsAll: number[];
  /** Of which: requiring @aws-sdk/client-dynamodb alone in a fresh process (the runtime provides it, but loads it at init all the same). */
  sdkImportMsMedian: number;
  rssMb: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function coldStart(outdir: string, runs = 7): Promise<ColdStart> {
  mkdirSync(outdir, { recursive: true });
  const { handlerFile, tokenizerFile, bytes } = await bundleChat(outdir);
  const probe = join(outdir, 'probe.cjs');
  writeFileSync(probe, PROBE);
  const env = {
    ...process.env,
    AWS_REGION: 'us-east-1',
    ITAPI_TOKENIZER_MODULE: tokenizerFile,
    NODE_PATH: join(__dirname, '../node_modules'),
    NODE_OPTIONS: '',
  };
  const run = (which: string) => JSON.parse(execFileSync(process.execPath, [probe, which, handlerFile], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as { ms: number; rssMb: number };
  run('bundle'); // warm the OS file cache
  const all: number[] = [];
  const sdk: number[] = [];
  let rss = 0;
  for (let i = 0; i < runs; i++) {
    const r = run('bundle');
    all.push(r.ms);
    rss = r.rssMb;
    sdk.push(run('sdk').ms);
  }
  return {
    bundleBytes: bytes,
    tokenizerBytes: statSync(tokenizerFile).size,
    runs,
    importMsMedian: median(all),
    importMsAll: all.map((x) => Math.round(x * 10) / 10),
    sdkImportMsMedian: median(sdk),
    rssMb: rss,
  };
}
