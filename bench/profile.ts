// CPU profile of the gateway under load (issue 12: "profile with --cpu-prof, top ten self-time
// entries"): DynamoDB Local, the stand-in upstream and a gateway server in a child process; after
// a warm-up, the V8 CPU profiler (what --cpu-prof runs, started over IPC by bench/prof-control.cjs
// so start-up stays out) records while autocannon drives JSON answers, then streams. Self time is
// summarised by function and by package, per request. BENCH_METER=off keeps the bench's own
// per-call CPU accounting out of the gateway.
//   npx tsx bench/profile.ts [gateway server file] [seconds per phase]
//   PROFILE_STORE=dynamodb|stand-in|memory (dynamodb), PROFILE_CONNECTIONS=16, PROFILE_RATE=<req/s> (as fast as answered)
//   PROFILE_PROMPT=long: bench/first-byte.ts's long prompt (BENCH_TTFB_LONG_CHARS, BENCH_TTFB_LONG_SHAPE)
// The server file defaults to this checkout's bench/servers/gateway.ts; another checkout's
// (e.g. the commit before a change) gives the "before" profile with the same driver.
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startDynamoLocal } from '../lambda/entry/local-server';
import { longPrompt } from './first-byte';
import { runMain, startServer } from './procs';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon');

interface ProfNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }

export function topSelfTime(file: string, top = 10): { totalMs: number; functions: Array<{ name: string; ms: number; share: number }>; packages: Array<{ name: string; ms: number; share: number }> } {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0));
  const where = (url: string, fn: string) => {
    if (!url) return fn.startsWith('(') ? '' : '(native)';
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (m) return m[1];
    if (url.startsWith('node:')) return url.replace(/^node:internal\/([^/]+).*/, 'node:$1');
    return url.replace(/^file:\/\//, '').replace(/^.*?\/(lambda|bench)\//, '$1/');
  };
  const fns = new Map<string, number>();
  const pkgs = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    if (n.callFrame.functionName === '(idle)') continue;
    busy += us;
    const w = where(n.callFrame.url, n.callFrame.functionName);
    const name = `${n.callFrame.functionName || '(anonymous)'}${w ? ` ${w}:${n.callFrame.lineNumber + 1}` : ''}`;
    fns.set(name, (fns.get(name) ?? 0) + us);
    const pkg = w.replace(/:\d+$/, '').replace(/^(lambda|bench)\/.*/, '$1 (ours)') || n.callFrame.functionName;
    pkgs.set(pkg, (pkgs.get(pkg) ?? 0) + us);
  }
  const list = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: us / 1000, share: us / busy }));
  return { totalMs: busy / 1000, functions: list(fns), packages: list(pkgs) };
}

async function main() {
  const serverFile = resolve(process.argv[2] ?? join(__dirname, 'servers/gateway.ts'));
  const seconds = Number(process.argv[3] ?? 10);
  const dir = join(__dirname, 'results/prof', String(Date.now()));
  mkdirSync(dir, { recursive: true });
  const dynamo = await startDynamoLocal();
  const upstream = await startServer('upstream', join(__dirname, 'servers/upstream.ts'));
  // PROFILE_STORE=stand-in: DynamoDB calls answered by bench/servers/dynamo-stand-in.ts; =memory: no calls.
  const store = process.env.PROFILE_STORE ?? 'dynamodb';
  const standIn = store === 'stand-in' ? await startServer('dynamo-stand-in', join(__dirname, 'servers/dynamo-stand-in.ts')) : undefined;
  const benchStore = standIn ? `stand-in:${standIn.url}` : store === 'memory' ? 'memory' : undefined;
  const gateway = await startServer('gateway', serverFile, {
    env: { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint, BENCH_METER: 'off', ...(benchStore ? { BENCH_STORE: benchStore } : {}) },
    execArgv: ['--require', join(__dirname, 'prof-control.cjs')],
  });
  // PROFILE_CONNECTIONS=1: one request at a time, as a Lambda instance serves them.
  const connections = Number(process.env.PROFILE_CONNECTIONS ?? 16);
  // PROFILE_RATE=<requests a second>: autocannon's overallRate, as npm run bench's common-rate step.
  const RATE = Number(process.env.PROFILE_RATE ?? 0);
  const file = join(dir, 'gateway.cpuprofile');
  let requests = 0;
  try {
    const prompt = process.env.PROFILE_PROMPT === 'long' ? longPrompt() : { messages: [{ role: 'user', content: 'Hello! Say something short, please.' }] };
    const body = (stream: boolean) => JSON.stringify({ model: 'bench-model', ...prompt, ...(stream ? { stream: true } : {}) });
    const run = (stream: boolean, duration: number) =>
      autocannon({
        url: `${gateway.url}/v1/chat/completions`,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${gateway.info.keys.ok}` },
        body: body(stream),
        connections,
        duration,
        ...(RATE ? { overallRate: RATE } : {}),
      });
    await run(false, 5);
    await run(true, 2);
    await gateway.request({ type: 'profile-start' });
    const json = await run(false, seconds);
    const streams = await run(true, seconds);
    await gateway.request({ type: 'profile-stop', file });
    requests = json.requests.total + streams.requests.total;
    process.stderr.write(`store ${store}, ${connections} connections. JSON: ${json.requests.total} requests (${json.non2xx} non-2xx); streams: ${streams.requests.total} (${streams.non2xx} non-2xx)\n`);
  } finally {
    await gateway.stop();
    await upstream.stop();
    await standIn?.stop();
    dynamo.child.kill('SIGKILL');
  }
  const summary = topSelfTime(file);
  const row = (e: { name: string; ms: number; share: number }) => `| ${e.name.replace(/\|/g, '\\|')} | ${((1000 * e.ms) / requests).toFixed(0)} | ${(100 * e.share).toFixed(1)} % |`;
  process.stdout.write(
    `profile: ${file}\n${requests} requests; busy (not idle) ${summary.totalMs.toFixed(0)} ms sampled, ${(summary.totalMs / requests).toFixed(3)} ms a request\n\n` +
      `| function (self time) | µs / request | share |\n|---|---|---|\n${summary.functions.map(row).join('\n')}\n\n| package | µs / request | share |\n|---|---|---|\n${summary.packages.map(row).join('\n')}\n`,
  );
}

if (require.main === module) {
  runMain(main, 'profile');
}
