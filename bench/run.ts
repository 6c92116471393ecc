// npm run bench: the gateway beside the upstream, a bare relay and a peer gateway, on loopback.
// Prints a table with each figure beside its target (issue 6) and writes bench/results/latest.json
// and docs/benchmarks-latest.json. See docs/BENCHMARKS.md.
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { freePort, startDynamoLocal } from '../lambda/entry/local-server';
import { target, timedRequest, type Target, type Timed } from './client';
import { coldStart, type ColdStart } from './coldstart';
import { firstByte300, LONG_PROMPT_CHARS, LONG_PROMPT_SHAPE, pct, withLongPrompt } from './first-byte';
import { lambdaMemory, startLambdaTarget, type MemoryResults } from './lambda';
import { BENCH_MODEL_300 } from './servers/bench-catalog';
import { compareDynamoClients } from './dynamo-clients';
import { writeUnitsInFlight } from './in-flight';
import type { MeterSnapshot } from './dynamo-meter';
import { pinApart, procCpuMs, runMain, serverNodeVersion, startBaseServers, startServer, type Server } from './procs';
import { report, type Results } from './report';
import { CHUNKS } from './servers/upstream-shape';
import type { ChatBundleFiles } from '../scripts/bundle';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon');

const ROOT = join(__dirname, '..');
const PEER_DIR = join(__dirname, 'peer');
const PEER_VERSION = '1.15.2';
const HONO_NODE_SERVER = '1.13.8';

// BENCH_QUICK=1: every step, few rounds, under a minute: a smoke check of the bench itself, never figures to quote.
const QUICK = process.env.BENCH_QUICK === '1';
const knob = (name: string, full: number, quick: number) => Number(process.env[name] ?? (QUICK ? quick : full));
const LATENCY_ROUNDS = knob('BENCH_LATENCY_ROUNDS', 400, 20);
const STREAM_ROUNDS = knob('BENCH_STREAM_ROUNDS', 10, 2);
/** Streams whose upstream waits 300 ms before its first byte, per target. */
const TTFB_ROUNDS = knob('BENCH_TTFB_ROUNDS', 40, 4);
/** The same with a long prompt (BENCH_TTFB_LONG_CHARS characters, 100,000), per target; 0 skips the step. */
const TTFB_LONG_ROUNDS = knob('BENCH_TTFB_LONG_ROUNDS', 10, 2);
const KIND_REQUESTS = knob('BENCH_KIND_REQUESTS', 100, 5);
const LOAD_SECONDS = knob('BENCH_LOAD_SECONDS', 5, 1);
const LOAD_ROUNDS = knob('BENCH_LOAD_ROUNDS', 2, 1);
// The common-rate steps: more, shorter rounds than the throughput step, each pair back to back,
// read by a sign test over the rounds (bench/report.ts `signTest`): on this shared machine one
// process's CPU a request swings by half from one 3 s round to the next.
const COMMON_ROUNDS = knob('BENCH_COMMON_ROUNDS', 20, 3);
const COMMON_SECONDS = knob('BENCH_COMMON_SECONDS', 2, 1);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const IN_FLIGHT = (process.env.BENCH_IN_FLIGHT ?? (QUICK ? '10' : '10,1000')).split(',').map(Number);
const CLIENT_CALLS = knob('BENCH_CLIENT_CALLS', 400, 20);
const COLD_RUNS = knob('BENCH_COLD_RUNS', 7, 3);
/** The memory step: 1 s JSON answers and 20 s streams, one at a time through the Lambda bundle. */
const MEMORY_JSON_ROUNDS = knob('BENCH_MEMORY_JSON_ROUNDS', 10, 2);
const MEMORY_STREAM_ROUNDS = knob('BENCH_MEMORY_STREAM_ROUNDS', 3, 1);
if (QUICK) process.env.BENCH_MEMORY_STREAM ??= '50x20';

const log = (line: string) => process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(0).padStart(3)}s] ${line}\n`);
const t0 = Date.now();

const MESSAGES = [{ role: 'user', content: 'Hello! Say something short, please.' }];
export const bodyFor = (model: string) => (stream: boolean) => JSON.stringify({ model, messages: MESSAGES, ...(stream ? { stream: true } : {}) });

/** Portkey's open-source gateway in bench/peer (never in the project's dependencies). */
export function ensurePeer(install = true): string | undefined {
  const pkg = join(PEER_DIR, 'node_modules/@portkey-ai/gateway/package.json');
  const hono = join(PEER_DIR, 'node_modules/@hono/node-server/package.json');
  const nested = join(PEER_DIR, 'node_modules/@portkey-ai/gateway/node_modules/@hono/node-server');
  const installed = () =>
    existsSync(pkg) &&
    JSON.parse(readFileSync(pkg, 'utf8')).version === PEER_VERSION &&
    existsSync(hono) &&
    JSON.parse(readFileSync(hono, 'utf8')).version === HONO_NODE_SERVER &&
    !existsSync(nested);
  if (installed()) return undefined;
  if (!install) return 'not installed (BENCH_QUICK never installs it; a full run does)';
  mkdirSync(PEER_DIR, { recursive: true });
  // The override keeps Portkey on @hono/node-server 1.13.8: later versions do not stream its SSE.
  writeFileSync(
    join(PEER_DIR, 'package.json'),
    JSON.stringify(
      { private: true, dependencies: { '@portkey-ai/gateway': PEER_VERSION, '@hono/node-server': HONO_NODE_SERVER }, overrides: { '@hono/node-server': HONO_NODE_SERVER } },
      null,
      2,
    ),
  );
  try {
    log(`installing @portkey-ai/gateway@${PEER_VERSION} into bench/peer`);
    execFileSync('npm', ['install', '--prefix', PEER_DIR, '--no-audit', '--no-fund', '--ignore-scripts', `@portkey-ai/gateway@${PEER_VERSION}`, `@hono/node-server@${HONO_NODE_SERVER}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 180_000,
    });
  } catch (err) {
    return `npm install of the peer failed: ${String((err as { stderr?: Buffer }).stderr ?? err).slice(0, 300)}`;
  }
  return installed() ? undefined : 'the peer installed, but not with @hono/node-server 1.13.8 alone';
}

export async function startPeer(upstreamUrl: string): Promise<Server> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  return startServer('portkey', join(PEER_DIR, 'node_modules/@portkey-ai/gateway/build/start-server.js'), {
    ts: false,
    cwd: PEER_DIR,
    args: [`--port=${port}`, '--headless'],
    env: { NODE_ENV: 'production' },
    readyTimeoutMs: 30_000,
    waitReady: async (child: ChildProcess) => {
      for (;;) {
        if (child.exitCode !== null) throw new Error('portkey exited');
        try {
          const res = await fetch(`${url}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${upstreamUrl}/v1`, authorization: 'Bearer sk-bench' },
            body: bodyFor('bench-upstream')(false),
          });
          await res.text();
          if (res.ok) return { url };
        } catch {
          // not listening yet
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    },
  });
}


async function latency(targets: Target[]): Promise<Record<string, { median: number; p99: number; failures: number }>> {
  const times: Record<string, number[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
  const failures: Record<string, number> = Object.fromEntries(targets.map((t) => [t.name, 0]));
  for (let round = 0; round < LATENCY_ROUNDS; round++) {
    // Interleaved, and the order rotates so no target always follows the same one.
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(round + i) % targets.length];
      const r = await timedRequest(t, false);
      if (r.status !== 200) failures[t.name]++;
      else times[t.name].push(r.totalMs);
    }
  }
  return Object.fromEntries(targets.map((t) => [t.name, { median: pct(times[t.name], 50), p99: pct(times[t.name], 99), failures: failures[t.name] }]));
}

interface StreamFigures {
  ttfbMedianMs: number;
  /** Median over runs of the longest gap between two of the content chunks. */
  worstGapMedianMs: number;
  worstGapMaxMs: number;
  /** Content events received, median per run (a coalescing gateway delivers fewer separate arrivals). */
  distinctArrivalsMedian: number;
  failures: number;
}

async function streams(targets: Target[]): Promise<Record<string, StreamFigures>> {
  const runs: Record<string, Timed[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
  const failures: Record<string, number> = Object.fromEntries(targets.map((t) => [t.name, 0]));
  for (let round = 0; round < STREAM_ROUNDS; round++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(round + i) % targets.length];
      const r = await timedRequest(t, true);
      if (r.status !== 200 || r.eventsMs.length < CHUNKS) failures[t.name]++;
      else runs[t.name].push(r);
    }
  }
  const out: Record<string, StreamFigures> = {};
  for (const t of targets) {
    const rs = runs[t.name];
    const worst = rs.map((r) => {
      const ev = r.eventsMs.slice(0, CHUNKS);
      let max = 0;
      for (let i = 1; i < ev.length; i++) max = Math.max(max, ev[i] - ev[i - 1]);
      return max;
    });
    const arrivals = rs.map((r) => new Set(r.eventsMs.slice(0, CHUNKS)).size);
    out[t.name] = {
      ttfbMedianMs: pct(rs.map((r) => r.eventsMs[0]), 50),
      worstGapMedianMs: pct(worst, 50),
      worstGapMaxMs: Math.max(...worst),
      distinctArrivalsMedian: pct(arrivals, 50),
      failures: failures[t.name],
    };
  }
  return out;
}

async function load(t: Target, seconds: number, rate?: number): Promise<{ requests: number; non2xx: number; errors: number; seconds: number }> {
  const result = await autocannon({
    url: `${t.url}${t.path}`,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...t.headers },
    body: t.body(false),
    connections: CONNECTIONS,
    duration: seconds,
    // Requests a second over all connections: one offered rate for every target (commonRate).
    ...(rate ? { overallRate: rate } : {}),
  });
  return { requests: result.requests.total, non2xx: result.non2xx, errors: result.errors + result.timeouts, seconds: result.duration };
}

/** Targets whose store is the bench's DynamoDB Local: its JVM's CPU during their load is reported beside theirs. */
const ON_DYNAMODB_LOCAL = new Set(['gateway', 'gateway-lambda', 'baseline']);


/**
 * CPU a request at one offered rate for the books-included gateway and Portkey (nine tenths of the
 * slower one's rate in the throughput step): as fast as each answers, the gateway on DynamoDB Local
 * runs at a fraction of Portkey's rate, and a process serving fewer requests a second spends more
 * CPU on each (more wake-ups, fewer requests per wake-up), Portkey too. Rounds alternate the two.
 */
async function commonRate(targets: Target[], servers: Record<string, Server>, tput: Record<string, { rps: number }>, pinned?: { others: number[] }) {
  const pair = targets.filter((t) => t.name === 'gateway' || t.name === 'portkey');
  if (pair.length < 2) return undefined;
  const rate = Math.max(10, Math.floor(0.9 * Math.min(...pair.map((t) => tput[t.name].rps))));
  let undo: (() => void) | undefined;
  if (pinned) {
    undo = pinApart(
      pair.map((t) => servers[t.name].child.pid!),
      pinned.others,
    );
    if (!undo) return undefined;
    // Moved to another core, each starts with cold caches: one unmeasured round each first.
    for (const t of pair) await load(t, COMMON_SECONDS, rate);
  }
  try {
    return await commonRateRounds(pair, servers, rate);
  } finally {
    undo?.();
  }
}

async function commonRateRounds(pair: Target[], servers: Record<string, Server>, rate: number) {
  const acc: Record<string, { requests: number; seconds: number; cpuMs: number; non2xx: number; rounds: number[] }> = {};
  for (let round = 0; round < COMMON_ROUNDS; round++) {
    for (const t of round % 2 ? [...pair].reverse() : pair) {
      const server = servers[t.name];
      const before = await server.cpuMs();
      const r = await load(t, COMMON_SECONDS, rate);
      const after = await server.cpuMs();
      const a = (acc[t.name] ??= { requests: 0, seconds: 0, cpuMs: 0, non2xx: 0, rounds: [] });
      a.requests += r.requests;
      a.seconds += r.seconds;
      a.cpuMs += after - before;
      a.non2xx += r.non2xx + r.errors;
      a.rounds.push((after - before) / r.requests);
      log(`  ${rate} req/s offered, ${t.name}: ${Math.round(r.requests / r.seconds)} req/s, ${((after - before) / r.requests).toFixed(3)} CPU-ms/req, non-2xx ${r.non2xx}`);
    }
  }
  const of = (name: string) => ({
    rps: acc[name].requests / acc[name].seconds,
    cpuMsPerRequest: acc[name].cpuMs / acc[name].requests,
    roundsCpuMsPerRequest: acc[name].rounds,
    requests: acc[name].requests,
    failed: acc[name].non2xx,
  });
  return { rate, connections: CONNECTIONS, gateway: of('gateway'), portkey: of('portkey') };
}

async function throughput(targets: Target[], servers: Record<string, Server>, dynamoPid?: number) {
  const acc: Record<string, { requests: number; non2xx: number; errors: number; seconds: number; cpuMs: number; storeCpuMs?: number }> = {};
  const storeCpu = () => (dynamoPid === undefined ? undefined : procCpuMs(dynamoPid));
  for (let round = 0; round < LOAD_ROUNDS; round++) {
    for (const t of targets) {
      const server = servers[t.name];
      const before = await server.cpuMs();
      const storeBefore = ON_DYNAMODB_LOCAL.has(t.name) ? storeCpu() : undefined;
      const r = await load(t, LOAD_SECONDS);
      // The gateway's answer waits for its settlements to finish, so they count to its requests.
      const after = await server.cpuMs();
      const storeAfter = storeBefore === undefined ? undefined : storeCpu();
      const a = (acc[t.name] ??= { requests: 0, non2xx: 0, errors: 0, seconds: 0, cpuMs: 0 });
      a.requests += r.requests;
      a.non2xx += r.non2xx;
      a.errors += r.errors;
      a.seconds += r.seconds;
      a.cpuMs += after - before;
      if (storeAfter !== undefined) a.storeCpuMs = (a.storeCpuMs ?? 0) + storeAfter - storeBefore!;
      const jvm = storeAfter === undefined ? '' : `, DynamoDB Local ${((storeAfter - storeBefore!) / r.requests).toFixed(3)} CPU-ms/req`;
      log(`  load ${t.name}: ${Math.round(r.requests / r.seconds)} req/s, ${((after - before) / r.requests).toFixed(3)} CPU-ms/req${jvm}, non-2xx ${r.non2xx}`);
    }
  }
  return Object.fromEntries(
    Object.entries(acc).map(([name, a]) => [
      name,
      {
        rps: a.requests / a.seconds,
        cpuMsPerRequest: a.cpuMs / a.requests,
        ...(a.storeCpuMs !== undefined && { storeCpuMsPerRequest: a.storeCpuMs / a.requests }),
        requests: a.requests,
        non2xx: a.non2xx,
        errors: a.errors,
        connections: CONNECTIONS,
      },
    ]),
  );
}

function summarise(snapshot: MeterSnapshot, requests: number) {
  const out: Record<string, unknown> = {};
  let calls = 0;
  let cpu = 0;
  let units = 0;
  let ruleUnits = 0;
  let reported = true;
  for (const [name, s] of Object.entries(snapshot)) {
    calls += s.calls;
    ruleUnits += s.ruleUnits;
    const cpuSum = s.cpuMs.reduce((a, b) => a + b, 0);
    cpu += cpuSum;
    units += s.capacityUnits;
    if (s.capacityReported < s.calls) reported = false;
    out[name] = {
      callsPerRequest: s.calls / requests,
      errors: s.errors,
      wallMsMedian: pct(s.wallMs, 50),
      cpuMsMedian: pct(s.cpuMs, 50),
      capacityUnitsReported: s.capacityUnits,
      capacityReportedFor: s.capacityReported,
    };
  }
  return {
    requests,
    callsPerRequest: calls / requests,
    clientCpuMsPerRequest: cpu / requests,
    ruleUnitsPerRequest: ruleUnits / requests,
    capacityUnitsPerRequest: units / requests,
    capacityFullyReported: reported,
    byCommand: out,
  };
}

async function dynamoWork(gw: Server, t: Target) {
  const keys = gw.info.keys as Record<'ok' | 'broke' | 'limited', string>;
  const kinds: Array<{ kind: string; key: string; status: number; body?: string }> = [
    { kind: 'success', key: keys.ok, status: 200 },
    { kind: '402', key: keys.broke, status: 402 },
    { kind: '402 (max_tokens set)', key: keys.broke, status: 402, body: JSON.stringify({ model: 'bench-model', messages: MESSAGES, max_tokens: 100 }) },
    { kind: '429', key: keys.limited, status: 429 },
  ];
  // The limited account (1 request/minute) spends its one request here, so every later one is a 429.
  await timedRequest({ ...t, headers: { authorization: `Bearer ${keys.limited}` } }, false);
  const out: Record<string, unknown> = {};
  for (const k of kinds) {
    const kt: Target = { ...t, headers: { authorization: `Bearer ${k.key}` }, body: k.body ? () => k.body! : t.body };
    // Warm: the key and the account are cached after the first request.
    for (let i = 0; i < 5; i++) await timedRequest(kt, false);
    await gw.request({ type: 'meter-reset', capacity: true });
    let wrong = 0;
    for (let i = 0; i < KIND_REQUESTS; i++) {
      const r = await timedRequest(kt, false);
      if (r.status !== k.status) wrong++;
      // One request at a time, its settlement included, so the CPU of each SDK call is its own.
      await gw.request({ type: 'drain' });
    }
    const { meter } = await gw.request<{ meter: MeterSnapshot }>({ type: 'meter' });
    out[k.kind] = { ...summarise(meter, KIND_REQUESTS), unexpectedStatus: wrong };
  }
  await gw.request({ type: 'meter-off' });
  return out;
}

async function main() {
  let baselineCommit: string | undefined;
  const machine = {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    serversNode: serverNodeVersion(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    memGb: Math.round(os.totalmem() / 2 ** 30),
    loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
  log(`machine: ${machine.cpus} CPUs, ${machine.cpuModel}, Node ${machine.node} (servers on ${machine.serversNode}), load ${machine.loadAvgAtStart.join(' ')}`);

  log('cold start: bundling the chat handler and importing it in fresh processes');
  let cold: ColdStart | { error: string };
  let bundle: ChatBundleFiles | undefined;
  try {
    const { files, ...figures } = await coldStart(join(__dirname, 'results/bundle'), COLD_RUNS);
    bundle = files;
    cold = figures;
  } catch (err) {
    cold = { error: String(err) };
  }

  const peerProblem = ensurePeer(!QUICK);
  if (peerProblem) log(`peer unavailable: ${peerProblem}`);

  log('starting DynamoDB Local (in memory)');
  const dynamo = await startDynamoLocal();
  const servers: Server[] = [];
  const stopAll = async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    dynamo.child.kill('SIGKILL'); // in memory: nothing to keep
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    const { upstream, relay, relayFetch, gateway } = await startBaseServers(dynamo.endpoint, servers);
    // The chat function's bundle as Lambda runs it, on the same tables (and so the same keys) as `gateway`.
    let gatewayLambda: Server | undefined;
    if (bundle) {
      try {
        gatewayLambda = await startLambdaTarget(bundle, upstream.url, dynamo.endpoint, gateway.info.tables);
        servers.push(gatewayLambda);
      } catch (err) {
        log(`the Lambda bundle did not start: ${String(err).slice(0, 300)}`);
      }
    }
    const gatewayMemory = await startServer('gateway-memory', join(__dirname, 'servers/gateway.ts'), { env: { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint, BENCH_STORE: 'memory' } });
    servers.push(gatewayMemory);
    // The gateway's DynamoDB calls all made (signed, over HTTP), answered by a Node stand-in instead of
    // DynamoDB Local's JVM: waking the JVM on these two shared cores costs the caller more CPU per call
    // than the call itself (docs/BENCHMARKS.md), which real DynamoDB, across a network, does not.
    const dynamoStandIn = await startServer('dynamo-stand-in', join(__dirname, 'servers/dynamo-stand-in.ts'));
    servers.push(dynamoStandIn);
    const gatewayStandIn = await startServer('gateway-stand-in', join(__dirname, 'servers/gateway.ts'), {
      env: { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint, BENCH_STORE: `stand-in:${dynamoStandIn.url}` },
    });
    servers.push(gatewayStandIn);
    // The same, each DynamoDB answer held BENCH_STAND_IN_DELAY_MS (default 5: a call to DynamoDB in its
    // region) by a timer, no CPU: the gateway waiting on its store as in AWS, without a JVM on these cores.
    // Against DynamoDB Local, most of the gateway's extra CPU a request is that wait (fewer requests a
    // second, so fewer events handled per wake-up) and the JVM beside it; bench/dynamo-topology.ts isolates both.
    const standInDelay = process.env.BENCH_STAND_IN_DELAY_MS ?? '5';
    const dynamoStandInSlow = await startServer('dynamo-stand-in-slow', join(__dirname, 'servers/dynamo-stand-in.ts'), { env: { STAND_IN_DELAY_MS: standInDelay } });
    servers.push(dynamoStandInSlow);
    const gatewayStandInSlow = await startServer('gateway-stand-in-slow', join(__dirname, 'servers/gateway.ts'), {
      env: { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint, BENCH_STORE: `stand-in:${dynamoStandInSlow.url}` },
    });
    servers.push(gatewayStandInSlow);
    // BENCH_BASELINE=<another checkout>: its gateway measured beside this one, in the same run (before/after).
    const baselineDir = process.env.BENCH_BASELINE;
    baselineCommit = baselineDir ? execFileSync('git', ['-C', baselineDir, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim() : undefined;
    const baseline = baselineDir
      ? await startServer('baseline', join(baselineDir, 'bench/servers/gateway.ts'), { env: { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint } })
      : undefined;
    if (baseline) servers.push(baseline);
    // …and with the same DynamoDB stand-in as `gateway-stand-in` (before/after of the gateway's own CPU).
    const baselineStandIn = baselineDir
      ? await startServer('baseline-stand-in', join(baselineDir, 'bench/servers/gateway.ts'), {
          env: { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint, BENCH_STORE: `stand-in:${dynamoStandIn.url}` },
        })
      : undefined;
    if (baselineStandIn) servers.push(baselineStandIn);
    let peer: Server | undefined;
    let peerError = peerProblem;
    if (!peerProblem) {
      try {
        peer = await startPeer(upstream.url);
        servers.push(peer);
      } catch (err) {
        peerError = `Portkey did not start: ${String(err).slice(0, 300)}`;
        log(peerError);
      }
    }

    const path = '/v1/chat/completions';
    const targets: Target[] = [
      target('direct', upstream.url, path, {}, bodyFor('bench-upstream')),
      target('relay', relay.url, path, {}, bodyFor('bench-upstream')),
      target('relay-fetch', relayFetch.url, path, {}, bodyFor('bench-upstream')),
      target('gateway', gateway.url, path, { authorization: `Bearer ${gateway.info.keys.ok}` }, bodyFor('bench-model')),
      ...(gatewayLambda ? [target('gateway-lambda', gatewayLambda.url, path, { authorization: `Bearer ${gateway.info.keys.ok}` }, bodyFor('bench-model'))] : []),
      target('gateway-stand-in', gatewayStandIn.url, path, { authorization: `Bearer ${gatewayStandIn.info.keys.ok}` }, bodyFor('bench-model')),
      target('gateway-stand-in-slow', gatewayStandInSlow.url, path, { authorization: `Bearer ${gatewayStandInSlow.info.keys.ok}` }, bodyFor('bench-model')),
      target('gateway-memory', gatewayMemory.url, path, { authorization: `Bearer ${gatewayMemory.info.keys.ok}` }, bodyFor('bench-model')),
      ...(baseline ? [target('baseline', baseline.url, path, { authorization: `Bearer ${baseline.info.keys.ok}` }, bodyFor('bench-model'))] : []),
      ...(baselineStandIn ? [target('baseline-stand-in', baselineStandIn.url, path, { authorization: `Bearer ${baselineStandIn.info.keys.ok}` }, bodyFor('bench-model'))] : []),
    ];
    if (peer) {
      targets.push(
        target('portkey', peer.url, path, { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${upstream.url}/v1`, authorization: 'Bearer sk-bench' }, bodyFor('bench-upstream')),
      );
    }
    const byName: Record<string, Server> = { direct: upstream, relay, 'relay-fetch': relayFetch, gateway, ...(gatewayLambda ? { 'gateway-lambda': gatewayLambda } : {}), 'gateway-stand-in': gatewayStandIn, 'gateway-stand-in-slow': gatewayStandInSlow, 'gateway-memory': gatewayMemory, ...(baseline ? { baseline } : {}), ...(baselineStandIn ? { 'baseline-stand-in': baselineStandIn } : {}), ...(peer ? { portkey: peer } : {}) };

    // The bundle's first request, the tokenizer not yet loaded: what a cold instance's first client sees after init.
    let lambdaFirst: Results['lambdaFirstRequest'];
    const lambdaTarget = targets.find((t) => t.name === 'gateway-lambda');
    if (gatewayLambda && lambdaTarget) {
      await gatewayLambda.request({ type: 'invocations' });
      const first = await timedRequest(lambdaTarget, false);
      await gatewayLambda.request({ type: 'drain' });
      const [inv] = (await gatewayLambda.request<{ invocations: Array<{ handlerMs: number; streamEndMs: number }> }>({ type: 'invocations' })).invocations;
      lambdaFirst = { initMs: gatewayLambda.info.initMs, initCpuMs: gatewayLambda.info.initCpuMs, firstRequestMs: first.totalMs, status: first.status, invocationMs: inv?.handlerMs ?? NaN };
    }

    log('warm-up');
    for (let i = 0; i < (QUICK ? 20 : 200); i++) for (const t of targets) await timedRequest(t, false);
    for (const t of targets) {
      const r = await timedRequest(t, true);
      if (r.eventsMs.length < CHUNKS) log(`warning: ${t.name} streamed ${r.eventsMs.length} events (status ${r.status})`);
    }

    log(`non-streaming latency: ${LATENCY_ROUNDS} interleaved rounds`);
    await gateway.request({ type: 'meter-reset', capacity: false });
    const lat = await latency(targets);
    const latMeter = (await gateway.request<{ meter: MeterSnapshot }>({ type: 'meter' })).meter;
    // The steps that measure the gateway's CPU run without the meter's own work (bench/dynamo-meter.ts).
    await gateway.request({ type: 'meter-off' });
    // Admission and settlement are both TransactWriteItems of a few small items: one round trip each.
    const admissionWrites = latMeter.TransactWriteItems?.wallMs ?? [];

    log(`stream fidelity: ${STREAM_ROUNDS} interleaved rounds of ${CHUNKS} chunks`);
    const str = await streams(targets);

    log(`first byte with a 300 ms upstream: ${TTFB_ROUNDS} interleaved rounds of streams`);
    // The same targets, each pointed at the upstream's 300 ms path: a path prefix for the relays and
    // Portkey's custom host, a model routed to it for the gateways.
    const slow = (t: Target): Target => {
      if (t.name === 'direct' || t.name.startsWith('relay') || t.name === 'portkey') {
        const headers = t.name === 'portkey' ? { ...t.headers, 'x-portkey-custom-host': `${upstream.url}/delay/300/v1` } : t.headers;
        return target(t.name, t.url, t.name === 'portkey' ? t.path : `/delay/300${t.path}`, headers, t.body);
      }
      return target(t.name, t.url, t.path, t.headers, bodyFor(BENCH_MODEL_300));
    };
    // The baseline too: a checkout from issue 22 on has the 300 ms model in its bench catalog (an
    // older one's rows show every round failed).
    const ttfb300 = await firstByte300(targets.map(slow), TTFB_ROUNDS);
    let ttfbLong: Results['ttfbLong'];
    if (TTFB_LONG_ROUNDS > 0 && LONG_PROMPT_CHARS > 0) {
      log(`first byte with a 300 ms upstream and a prompt of ${LONG_PROMPT_CHARS} characters (${LONG_PROMPT_SHAPE}): ${TTFB_LONG_ROUNDS} interleaved rounds`);
      const long = targets.map(slow).map((t) => withLongPrompt(t));
      for (const t of long) await timedRequest(t, true);
      ttfbLong = { chars: LONG_PROMPT_CHARS, shape: LONG_PROMPT_SHAPE, figures: await firstByte300(long, TTFB_LONG_ROUNDS) };
    }

    log('DynamoDB work per request kind');
    const kinds = await dynamoWork(gateway, targets.find((t) => t.name === 'gateway')!);
    log('DynamoDB clients side by side (GetItem, admission-shaped TransactWriteItems)');
    const clients = await compareDynamoClients(dynamo.endpoint, CLIENT_CALLS);

    log(`throughput: ${LOAD_ROUNDS} rounds of ${LOAD_SECONDS}s per target, ${CONNECTIONS} connections`);
    const tput = await throughput(targets, byName, dynamo.child.pid);
    log('CPU per request at one common rate: the gateway (DynamoDB Local) and Portkey');
    const common = await commonRate(targets, byName, tput);
    // The same with the store off the servers' core (as in AWS, where DynamoDB is on other machines):
    // the gateway and Portkey on CPU 0, DynamoDB Local's JVM, the upstream, the other servers and
    // autocannon on the other CPUs (bench/procs.ts pinApart). Skipped with one CPU or no taskset.
    log('the same, the store on its own core: the gateway and Portkey pinned to CPU 0, the rest of the bench to the others');
    const pinnedOthers = [dynamo.child.pid!, ...servers.filter((x) => x !== gateway && x !== peer).map((x) => x.child.pid!)];
    const commonPinned = common ? await commonRate(targets, byName, tput, { others: pinnedOthers }) : undefined;
    if (common && !commonPinned) log('  not measured: cannot pin here (one CPU, or no taskset)');

    log(`write units per request with ${IN_FLIGHT.join(' and ')} requests of one account in flight`);
    let inFlight: Results['inFlight'];
    try {
      inFlight = await writeUnitsInFlight(dynamo.endpoint, IN_FLIGHT);
    } catch (err) {
      inFlight = { error: String(err).slice(0, 300) };
    }

    let memory: MemoryResults | { error: string } = { error: 'the Lambda bundle was not measured' };
    if (gatewayLambda && 'importCpuMsMedian' in cold) {
      log(`Lambda memory: ${MEMORY_JSON_ROUNDS} JSON answers after 1 s and ${MEMORY_STREAM_ROUNDS} streams of ${process.env.BENCH_MEMORY_STREAM ?? '1000x20'} (chunks x ms) through the bundle, one at a time`);
      try {
        memory = await lambdaMemory(gatewayLambda, gateway.info.keys.ok, cold, { json: MEMORY_JSON_ROUNDS, stream: MEMORY_STREAM_ROUNDS });
      } catch (err) {
        memory = { error: String(err).slice(0, 300) };
      }
    }

    const results: Results = {
      when: new Date().toISOString(),
      command: QUICK ? 'BENCH_QUICK=1 npm run bench' : 'npm run bench',
      quick: QUICK,
      machine,
      settings: { baseline: baselineCommit ? { dir: process.env.BENCH_BASELINE, commit: baselineCommit } : undefined, latencyRounds: LATENCY_ROUNDS, streamRounds: STREAM_ROUNDS, ttfbRounds: TTFB_ROUNDS, coldRuns: COLD_RUNS, memoryRounds: { json: MEMORY_JSON_ROUNDS, stream: MEMORY_STREAM_ROUNDS, streamShape: process.env.BENCH_MEMORY_STREAM ?? '1000x20' }, kindRequests: KIND_REQUESTS, loadSeconds: LOAD_SECONDS, loadRounds: LOAD_ROUNDS, commonRounds: COMMON_ROUNDS, commonSeconds: COMMON_SECONDS, connections: CONNECTIONS, standInDelayMs: Number(standInDelay), relay: 'node:http server; upstream call by node:http request on a keep-alive agent, piped both ways', relayFetch: 'the same with global fetch (undici), as the gateway calls upstreams' },
      peer: peer ? { name: 'portkey', version: PEER_VERSION, honoNodeServer: HONO_NODE_SERVER } : { error: peerError ?? 'not started' },
      latency: lat,
      admissionWriteMs: { median: pct(admissionWrites, 50), p99: pct(admissionWrites, 99), count: admissionWrites.length },
      streams: str,
      ttfb300,
      ttfbLong,
      memory,
      lambdaFirstRequest: lambdaFirst,
      throughput: tput,
      commonRate: common,
      commonRatePinned: commonPinned,
      dynamo: { kinds, clients },
      coldStart: cold,
      inFlight,
      loadAvgAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
      durationS: (Date.now() - t0) / 1000,
    };
    const text = report(results);
    process.stdout.write(text);
    mkdirSync(join(__dirname, 'results'), { recursive: true });
    const json = `${JSON.stringify({ ...results, table: text.split('\n') }, null, 2)}\n`;
    writeFileSync(join(__dirname, 'results/latest.json'), json);
    // A quick run is a smoke check: its figures never replace the ones the docs quote.
    if (QUICK) log('wrote bench/results/latest.json (BENCH_QUICK: docs/benchmarks-latest.json left as it was)');
    else {
      writeFileSync(join(ROOT, 'docs/benchmarks-latest.json'), json);
      log('wrote bench/results/latest.json and docs/benchmarks-latest.json');
    }
  } finally {
    await stopAll();
  }
}

// Imported by bench/dynamo-topology.ts for the peer: run only as the script itself.
if (require.main === module) {
  runMain(main, 'bench');
}
