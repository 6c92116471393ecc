// npx tsx bench/cpu-ab.ts: CPU a request, this checkout's gateway against another's (BENCH_BASELINE=<dir>)
// and Portkey when bench/peer has it, in short alternating load rounds (autocannon, 16 connections, JSON
// answers, as `npm run bench`'s load step), so that a neighbour's burst on this shared machine
// falls on every side of a round rather than on one whole step. Prints each round's CPU-ms a
// request, the median of the per-round ratios (more robust than the ratio of two totals), and the
// gateways' DynamoDB calls a request over the rounds (group commit shares a call among requests).
//   BENCH_AB_STORE=dynamodb|stand-in|memory (dynamodb), BENCH_AB_ROUNDS (8), BENCH_AB_SECONDS (2),
//   BENCH_AB_RATE (requests a second over all connections; 0: as fast as answered), BENCH_AB_SLOW=1
//   (the upstream answers after 300 ms; each side's median latency shows what admission adds),
//   BENCH_AB_PIN=1 (the servers compared on CPU 0, DynamoDB Local's JVM, the upstream and
//   autocannon on the other CPUs: the store off the gateway's core, as in AWS; bench/procs.ts pinApart),
//   BENCH_AB_WARM_S (seconds of load as fast as each side answers before the rounds; 0),
//   BENCH_AB_FLAGS (node flags, e.g. "--single-threaded-gc": a side 'flagged', this checkout's
//   gateway run with them, against the same gateway without)
import { join } from 'node:path';
import { startDynamoLocal } from '../lambda/entry/local-server';
import { target, timedRequest, type Target } from './client';
import type { MeterSnapshot } from './dynamo-meter';
import { pct } from './first-byte';
import { pinApart, runMain, startServer, type Server } from './procs';
import { bodyFor, ensurePeer, startPeer } from './run';
import { BENCH_MODEL, BENCH_MODEL_300 } from './servers/bench-catalog';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon');

const ROUNDS = Number(process.env.BENCH_AB_ROUNDS ?? 8);
const SECONDS = Number(process.env.BENCH_AB_SECONDS ?? 2);
const STORE = process.env.BENCH_AB_STORE ?? 'dynamodb';
// A fixed offered rate (requests a second over all connections) instead of as fast as each answers.
const RATE = Number(process.env.BENCH_AB_RATE ?? 0);
// BENCH_AB_SLOW=1: the upstream waits 300 ms before it answers (a provider's time), so that the
// rounds show what admission adds to each answer under load (median latency printed) as well.
const SLOW = process.env.BENCH_AB_SLOW === '1';
const PIN = process.env.BENCH_AB_PIN === '1';
// BENCH_AB_WARM_S: seconds of load as fast as each side answers before the rounds (0): `npm run
// bench` reaches its one-rate steps after minutes of load, with every side's JIT long settled.
const WARM_S = Number(process.env.BENCH_AB_WARM_S ?? 0);
const FLAGS = (process.env.BENCH_AB_FLAGS ?? '').split(' ').filter(Boolean);
const MESSAGES = [{ role: 'user', content: 'Hello! Say something short, please.' }];

async function loadRound(server: Server, t: Target, seconds = SECONDS, rate = RATE): Promise<{ cpuMs: number; requests: number; latencyMs: number }> {
  const before = await server.cpuMs();
  const r = await autocannon({ url: `${t.url}${t.path}`, method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: t.body(false), connections: 16, duration: seconds, ...(rate > 0 ? { overallRate: rate } : {}) });
  if (r.non2xx || r.errors) throw new Error(`${t.name}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return { cpuMs: (await server.cpuMs()) - before, requests: r.requests.total, latencyMs: r.latency.p50 };
}

async function main() {
  const baselineDir = process.env.BENCH_BASELINE;
  const dynamo = await startDynamoLocal();
  const servers: Server[] = [];
  try {
    const upstream = await startServer('upstream', join(__dirname, 'servers/upstream.ts'));
    servers.push(upstream);
    const standIn = STORE === 'stand-in' ? await startServer('dynamo-stand-in', join(__dirname, 'servers/dynamo-stand-in.ts')) : undefined;
    if (standIn) servers.push(standIn);
    const env = { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint, ...(STORE === 'memory' ? { BENCH_STORE: 'memory' } : standIn ? { BENCH_STORE: `stand-in:${standIn.url}` } : {}) };
    const sides: Array<{ name: string; server: Server; target: Target; metered?: boolean }> = [];
    const gateway = async (name: string, file: string, execArgv?: string[]) => {
      const server = await startServer(name, file, { env, execArgv });
      servers.push(server);
      const body = (stream: boolean) => JSON.stringify({ model: SLOW ? BENCH_MODEL_300 : BENCH_MODEL, messages: MESSAGES, ...(stream ? { stream: true } : {}) });
      sides.push({ name, server, target: target(name, server.url, '/v1/chat/completions', { authorization: `Bearer ${server.info.keys.ok}` }, body), metered: true });
    };
    await gateway('gateway', join(__dirname, 'servers/gateway.ts'));
    if (baselineDir) await gateway('baseline', join(baselineDir, 'bench/servers/gateway.ts'));
    if (FLAGS.length) await gateway('flagged', join(__dirname, 'servers/gateway.ts'), FLAGS);
    // Portkey when bench/peer has it (`npm run bench` installs it; never installed here).
    if (ensurePeer(false) === undefined) {
      const peer = await startPeer(upstream.url);
      servers.push(peer);
      const headers = { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${upstream.url}${SLOW ? '/delay/300' : ''}/v1`, authorization: 'Bearer sk-bench' };
      sides.push({ name: 'portkey', server: peer, target: target('portkey', peer.url, '/v1/chat/completions', headers, bodyFor('bench-upstream')) });
    }
    // BENCH_AB_PIN=1: the servers compared on CPU 0, DynamoDB Local, the upstream and autocannon on the others.
    if (PIN) {
      const undo = pinApart(sides.map((s) => s.server.child.pid!), [dynamo.child.pid!, ...servers.filter((s) => !sides.some((x) => x.server === s)).map((s) => s.child.pid!)]);
      process.stderr.write(undo ? 'pinned: the servers compared on CPU 0; DynamoDB Local, the upstream and autocannon on the others\n' : 'BENCH_AB_PIN=1: cannot pin here (one CPU or no taskset); not pinned\n');
    }
    // Warm-up: JIT, pools, caches.
    for (const s of sides) {
      for (let i = 0; i < 200; i++) await timedRequest(s.target, false);
      await loadRound(s.server, s.target);
      if (WARM_S > 0) await loadRound(s.server, s.target, WARM_S, 0);
      // The gateways' DynamoDB calls are counted from here (bench/dynamo-meter.ts, in bench/servers/gateway.ts).
      if (s.metered) await s.server.request({ type: 'meter-reset', capacity: false });
    }
    const per: Record<string, number[]> = Object.fromEntries(sides.map((s) => [s.name, []]));
    const requests: Record<string, number> = Object.fromEntries(sides.map((s) => [s.name, 0]));
    const latency: Record<string, number[]> = Object.fromEntries(sides.map((s) => [s.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // The order rotates, so no side always follows the same one.
      const order = sides.map((_, i) => sides[(i + round) % sides.length]);
      for (const s of order) {
        const r = await loadRound(s.server, s.target);
        per[s.name].push(r.cpuMs / r.requests);
        requests[s.name] += r.requests;
        latency[s.name].push(r.latencyMs);
      }
      process.stderr.write(`round ${round + 1}: ${sides.map((s) => `${s.name} ${per[s.name][round].toFixed(3)}`).join(', ')}\n`);
    }
    process.stdout.write(`store ${STORE}, ${ROUNDS} rounds of ${SECONDS} s each, CPU-ms a request (median of rounds):\n`);
    for (const s of sides) {
      let calls = '';
      if (s.metered) {
        const { meter } = await s.server.request<{ meter: MeterSnapshot }>({ type: 'meter' });
        const byOperation = Object.entries(meter).map(([operation, stats]) => `${operation} ${(stats.calls / requests[s.name]).toFixed(2)}`);
        calls = `   DynamoDB calls a request: ${byOperation.join(', ') || 'none'}`;
      }
      process.stdout.write(`  ${s.name.padEnd(10)} ${pct(per[s.name], 50).toFixed(3)}   ${Math.round(requests[s.name] / (ROUNDS * SECONDS))} requests/s, latency p50 ${pct(latency[s.name], 50)} ms${calls}\n`);
    }
    for (const other of ['baseline', 'flagged', 'portkey'].filter((name) => per[name])) {
      const ratios = per.gateway.map((g, i) => g / per[other][i]);
      process.stdout.write(`  gateway ÷ ${other}, median of the rounds' ratios: ${pct(ratios, 50).toFixed(3)} (rounds: ${ratios.map((r) => r.toFixed(2)).join(' ')})\n`);
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    dynamo.child.kill('SIGKILL');
  }
}

runMain(main, 'cpu-ab');
