// Run by test/lambda/cold-start.test.ts in a fresh `node --import tsx`: requires the chat entry's
// source as the bundle's require does, then invokes its handler once per event given, and writes
// which project modules and Node built-ins each step loaded to ITAPI_PROBE_OUT (stdout carries logs).
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { functionUrlEvent, installAwsLambdaGlobal, ResponseStreamRecorder } from '../support/awslambda-standin';

type Step = { name: string; status?: number; modules: string[]; builtins: string[] };

const ROOT = join(__dirname, '../..');
const ours = () => Object.keys(require.cache).map((f) => relative(ROOT, f));
/** Node's own list of the built-ins loaded so far (`process.moduleLoadList`, not in @types/node). */
const builtins = () =>
  (process as unknown as { moduleLoadList: string[] }).moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length));
const since = (before: string[], now: string[]) => now.filter((x) => !before.includes(x));

(async () => {
  installAwsLambdaGlobal();
  const steps: Step[] = [];
  let modules = ours();
  let natives = builtins();
  const record = (name: string, status?: number) => {
    const [m, b] = [ours(), builtins()];
    steps.push({ name, ...(status !== undefined && { status }), modules: since(modules, m), builtins: since(natives, b) });
    [modules, natives] = [m, b];
  };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { handler } = require('../../lambda/entry/lambda') as typeof import('../../lambda/entry/lambda');
  record('init');
  const requests = JSON.parse(process.env.ITAPI_PROBE_REQUESTS ?? '[]') as Array<{ name: string; method: string; path: string; headers: Record<string, string>; body?: string }>;
  for (const r of requests) {
    const stream = new ResponseStreamRecorder();
    await handler(functionUrlEvent(r.method, r.path, r.headers, r.body), stream, { awsRequestId: r.name });
    await stream.finished;
    record(r.name, stream.parse().prelude.statusCode);
  }
  writeFileSync(process.env.ITAPI_PROBE_OUT!, JSON.stringify(steps));
  // Keep-alive sockets (DynamoDB, the upstream) would hold the process open.
  process.exit(0);
})().catch((err) => {
  process.stderr.write(String(err?.stack ?? err));
  process.exit(1);
});
