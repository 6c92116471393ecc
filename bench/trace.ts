// npx tsx bench/trace.ts: where a streamed request's first byte goes with a 300 ms upstream, inside
// each server. The bare relay, the gateway (local mode, DynamoDB Local) and optionally another
// checkout's gateway (BENCH_BASELINE=<dir>), and with BENCH_TRACE_LAMBDA=1 the chat function's
// bundle under bench/lambda-host.cjs (the baseline's own bundle too), run with bench/trace-preload.cjs, which timestamps at
// Node's HTTP and socket layers (the servers' code unchanged): `before` = request in → upstream
// request on its socket, `after` = upstream's first body bytes in → first body write to the
// client. Rounds interleave the targets as bench/ttfb.ts does, after the same warm-up; `client
// added` is each target's first byte less the upstream's own in the same round. The hooks cost a
// little themselves (every socket write is scanned): read the columns side by side, not as
// bench/ttfb.ts's figures. BENCH_TRACE_LONG=1: the measured streams with bench/ttfb.ts's long
// prompt. See docs/BENCHMARKS.md, "The first byte".
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { join } from 'node:path';
import { startDynamoLocal } from '../lambda/entry/local-server';
import { target, timedRequest, type Target } from './client';
import { pct } from './first-byte';
import { startBaselineLambdaTarget, startLambdaTarget } from './lambda';
import { runMain, SERVER_NODE, serverNodeVersion, startServer, type Server } from './procs';
import { LONG_PROMPT_CHARS, LONG_PROMPT_SHAPE, withLongPrompt } from './first-byte';
import { BENCH_MODEL, BENCH_MODEL_300 } from './servers/bench-catalog';

const ROUNDS = Number(process.env.BENCH_TRACE_ROUNDS ?? 40);
const WARMUP_JSON = Number(process.env.BENCH_TTFB_WARMUP_JSON ?? 200);
const WARMUP_STREAMS = Number(process.env.BENCH_TTFB_WARMUP_STREAMS ?? 30);
const PRELOAD = join(__dirname, 'trace-preload.cjs');
const PATH = '/v1/chat/completions';
const MESSAGES = [{ role: 'user', content: 'Hello! Say something short, please.' }];
const bodyFor = (model: string) => (stream: boolean) => JSON.stringify({ model, messages: MESSAGES, ...(stream ? { stream: true } : {}) });
const log = (line: string) => process.stderr.write(`[trace] ${line}\n`);

interface Row {
  before: number;
  wait: number;
  after: number;
  total: number;
}

async function main() {
  log(`Node ${serverNodeVersion()}${SERVER_NODE === process.execPath ? '' : ' (BENCH_NODE)'}, ${os.availableParallelism()} CPUs, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${ROUNDS} interleaved rounds`);
  const dynamo = await startDynamoLocal();
  const servers: Server[] = [];
  try {
    const start = async (name: string, file: string, env: Record<string, string>, traced: boolean) => {
      const server = await startServer(name, file, { env, execArgv: traced ? ['--require', PRELOAD] : [] });
      servers.push(server);
      return server;
    };
    const upstream = await start('upstream', join(__dirname, 'servers/upstream.ts'), {}, false);
    const relay = await start('relay', join(__dirname, 'bare-relay.ts'), { UPSTREAM_URL: upstream.url, RELAY_CLIENT: 'http' }, true);
    const gateway = await start('gateway', join(__dirname, 'servers/gateway.ts'), { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint }, true);
    const slow = `/delay/300${PATH}`;
    const traced: Array<{ target: Target; server: Server }> = [
      { target: target('relay', relay.url, slow, {}, bodyFor('bench-upstream')), server: relay },
      { target: target('gateway', gateway.url, PATH, { authorization: `Bearer ${gateway.info.keys.ok}` }, bodyFor(BENCH_MODEL_300)), server: gateway },
    ];
    const baselineDir = process.env.BENCH_BASELINE;
    if (baselineDir) {
      const commit = execFileSync('git', ['-C', baselineDir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
      log(`baseline: ${baselineDir} at ${commit}`);
      const baseline = await start('baseline', join(baselineDir, 'bench/servers/gateway.ts'), { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint }, true);
      traced.push({ target: target('baseline', baseline.url, PATH, { authorization: `Bearer ${baseline.info.keys.ok}` }, bodyFor(BENCH_MODEL_300)), server: baseline });
    }
    if (process.env.BENCH_TRACE_LAMBDA === '1') {
      log('bundling the chat handler for gateway-lambda');
      const { bundleChat } = await import('../scripts/bundle');
      const bundle = await bundleChat(join(__dirname, 'results/bundle'));
      const lambda = await startLambdaTarget(bundle, upstream.url, dynamo.endpoint, gateway.info.tables, ['--require', PRELOAD]);
      servers.push(lambda);
      // The same tables, so the same keys, as `gateway`.
      traced.push({ target: target('gateway-lambda', lambda.url, PATH, { authorization: `Bearer ${gateway.info.keys.ok}` }, bodyFor(BENCH_MODEL_300)), server: lambda });
      if (baselineDir) {
        const baseLambda = await startBaselineLambdaTarget(baselineDir, upstream.url, dynamo.endpoint, gateway.info.tables, ['--require', PRELOAD]);
        servers.push(baseLambda);
        traced.push({ target: target('baseline-lambda', baseLambda.url, PATH, { authorization: `Bearer ${gateway.info.keys.ok}` }, bodyFor(BENCH_MODEL_300)), server: baseLambda });
      }
    }
    const direct = target('direct', upstream.url, slow, {}, bodyFor('bench-upstream'));
    const fast = (t: Target): Target =>
      t.path.startsWith('/delay/300') ? target(t.name, t.url, t.path.slice('/delay/300'.length), t.headers, t.body) : target(t.name, t.url, t.path, t.headers, bodyFor(BENCH_MODEL));
    log(`warm-up: ${WARMUP_JSON} JSON answers and ${WARMUP_STREAMS} streams per target, then 5 rounds with the 300 ms upstream`);
    for (let i = 0; i < WARMUP_JSON; i++) for (const { target: t } of traced) await timedRequest(fast(t), false);
    for (let i = 0; i < WARMUP_STREAMS; i++) for (const { target: t } of traced) await timedRequest(fast(t), true);
    for (let i = 0; i < 5; i++) for (const { target: t } of traced) await timedRequest(t, true);
    for (const { server } of traced) await server.request({ type: 'trace' });

    // BENCH_TRACE_LONG=1: the measured streams carry bench/first-byte.ts's long prompt (BENCH_TTFB_LONG_CHARS, BENCH_TTFB_LONG_SHAPE).
    const long = process.env.BENCH_TRACE_LONG === '1';
    if (long) log(`the measured streams carry a prompt of ${LONG_PROMPT_CHARS} characters (${LONG_PROMPT_SHAPE})`);
    const measured = (t: Target) => (long ? withLongPrompt(t) : t);
    const added: Record<string, number[]> = Object.fromEntries(traced.map(({ target: t }) => [t.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < traced.length; i++) {
        const { target: t } = traced[(round + i) % traced.length];
        const d = await timedRequest(measured(direct), true);
        const r = await timedRequest(measured(t), true);
        if (d.status === 200 && r.status === 200 && d.ttfbMs >= 0 && r.ttfbMs >= 0) added[t.name].push(r.ttfbMs - d.ttfbMs);
      }
    }
    const f = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
    const lines = [
      `inside each server, median of ${ROUNDS} streams (ms): before = request in → upstream request on its socket; after = upstream's first bytes in → first write to the client`,
      `${'target'.padEnd(15)}${'before'.padStart(9)}${'after'.padStart(9)}${'sum'.padStart(9)}${'client added'.padStart(14)}`,
    ];
    for (const { target: t, server } of traced) {
      const { rows } = await server.request<{ rows: Row[] }>({ type: 'trace' });
      const ok = rows.filter((r) => Number.isFinite(r.before) && Number.isFinite(r.after));
      const before = pct(ok.map((r) => r.before), 50);
      const after = pct(ok.map((r) => r.after), 50);
      lines.push(`${t.name.padEnd(15)}${f(before).padStart(9)}${f(after).padStart(9)}${f(before + after).padStart(9)}${f(pct(added[t.name], 50)).padStart(14)}`);
    }
    lines.push(`load at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    dynamo.child.kill('SIGKILL');
  }
}

if (require.main === module) {
  runMain(main, 'trace');
}
