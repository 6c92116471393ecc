// Issue 22 item 2: why the gateway's own CPU per request is higher against DynamoDB Local than
// against the Node stand-in, measured in one run with the rounds interleaved:
//   gateway                    DynamoDB Local (a JVM on the same two cores)
//   gateway-stand-in           every DynamoDB call made, answered {} at once by a Node process
//   gateway-stand-in-slow      the same, each answer held STAND_IN_DELAY_MS first (a timer: no CPU),
//                              so the gateway waits as long as on DynamoDB Local, without the JVM
//   portkey                    the peer (bench/peer), no books
// each at full load (16 connections) and at one fixed request rate for all (autocannon
// `overallRate`, default: 80 % of what the gateway sustains on DynamoDB Local in a first round),
// so that rows are compared at the same number of requests a second: a process's CPU per request
// falls as the rate rises (more events handled per wake-up), and DynamoDB Local caps the rate.
// Reported per request: the process's own CPU (utime + stime, as the bench counts it), its main
// thread's voluntary and involuntary context switches, the JVM's CPU (never counted for the
// gateway), the main thread's time runnable but not running (preempted: what a sampling profiler
// books to the native frame it was in, e.g. `writev`), and the gateway's sockets to its DynamoDB endpoint after the round (reuse).
//   npx tsx bench/dynamo-topology.ts [seconds per round] [rounds]
//   TOPO_RATE=<req/s> fixes the common rate; STAND_IN_DELAY_MS=<ms> the slow stand-in's delay
//   (default: measured, the median DynamoDB Local call seen by the gateway in the first round).
//   TOPO_BASELINE=<another checkout, with node_modules>: its gateway on the same DynamoDB Local
//   (`baseline`) and on the instant stand-in (`baseline-stand-in`), in the same interleaved rounds
//   (before/after). TOPO_NO_SLOW=1 leaves out the slow stand-in's row.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDynamoLocal } from '../lambda/entry/local-server';
import { procCpuMs, runMain, startServer, type Server } from './procs';
import { bodyFor, ensurePeer, startPeer } from './run';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon');

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const log = (line: string) => process.stderr.write(`[topology] ${line}\n`);


/** The main thread's context switches (the event loop's). */
function switches(pid: number): { voluntary: number; involuntary: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const n = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { voluntary: n('voluntary_ctxt_switches'), involuntary: n('nonvoluntary_ctxt_switches') };
}

/** The main thread's time on a CPU and waiting on a run queue (runnable, not running), in ms. */
function schedMs(pid: number): { run: number; wait: number } {
  const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ').map(Number);
  return { run: run / 1e6, wait: wait / 1e6 };
}

/** Established TCP connections of `pid` to `port` on loopback (`ss -tnp`). */
function socketsTo(pid: number, port: string): number {
  try {
    const out = execFileSync('ss', ['-tnpH', 'state', 'established', 'dport', `= :${port}`]).toString();
    return out.split('\n').filter((l) => l.includes(`pid=${pid},`)).length;
  } catch {
    return NaN;
  }
}

interface Row { requests: number; seconds: number; cpuMs: number; vol: number; invol: number; waitMs: number; jvmMs: number; latencyMs: number[]; sockets: number[] }

async function main() {
  const seconds = Number(process.argv[2] ?? 4);
  const rounds = Number(process.argv[3] ?? 2);
  const dynamo = await startDynamoLocal();
  const jvm = dynamo.child.pid!;
  const upstream = await startServer('upstream', join(__dirname, 'servers/upstream.ts'));
  const standIn = await startServer('dynamo-stand-in', join(__dirname, 'servers/dynamo-stand-in.ts'));
  const servers: Server[] = [upstream, standIn];
  const gw = (name: string, store?: string) =>
    startServer(name, join(__dirname, 'servers/gateway.ts'), { env: { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint, ...(store ? { BENCH_STORE: store } : {}) } });
  try {
    const gateway = await gw('gateway');
    servers.push(gateway);
    const fast = await gw('gateway-stand-in', `stand-in:${standIn.url}`);
    servers.push(fast);
    const baselineDir = process.env.TOPO_BASELINE;
    const before = (name: string, store?: string) =>
      startServer(name, join(baselineDir!, 'bench/servers/gateway.ts'), { env: { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint, ...(store ? { BENCH_STORE: store } : {}) } });
    const baseline = baselineDir ? await before('baseline') : undefined;
    if (baseline) servers.push(baseline);
    const baselineFast = baselineDir ? await before('baseline-stand-in', `stand-in:${standIn.url}`) : undefined;
    if (baselineFast) servers.push(baselineFast);
    if (baselineDir) log(`baseline: ${baselineDir} at ${execFileSync('git', ['-C', baselineDir, 'rev-parse', '--short', 'HEAD']).toString().trim()}`);
    const peerProblem = ensurePeer(false);
    const peer = peerProblem ? undefined : await startPeer(upstream.url);
    if (peer) servers.push(peer);
    else log(`portkey: ${peerProblem}`);

    // The DynamoDB Local call as the gateway sees it under full load: its meter's median wall time.
    const dynamoPort = new URL(dynamo.endpoint).port;
    const target = (s: Server) =>
      s === peer
        ? { url: `${s.url}/v1/chat/completions`, headers: { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${upstream.url}/v1`, authorization: 'Bearer sk-bench' }, body: bodyFor('bench-upstream')(false) }
        : { url: `${s.url}/v1/chat/completions`, headers: { authorization: `Bearer ${s.info.keys.ok}` }, body: bodyFor('bench-model')(false) };
    const drive = (s: Server, duration: number, overallRate?: number) => {
      const t = target(s);
      return autocannon({ url: t.url, method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: t.body, connections: CONNECTIONS, duration, ...(overallRate ? { overallRate } : {}) });
    };

    // Calibration, after a warm-up (JIT, DynamoDB Local's own): the gateway on DynamoDB Local at full load, metered.
    await drive(gateway, 3);
    await gateway.request({ type: 'meter-reset' });
    const cal = await drive(gateway, seconds);
    const meter = (await gateway.request<{ meter: Record<string, { wallMs: number[]; calls: number }> }>({ type: 'meter' })).meter;
    const walls = Object.values(meter).flatMap((m) => m.wallMs).sort((a, b) => a - b);
    const medianCall = walls[Math.floor(walls.length / 2)] ?? 5;
    const delay = Number(process.env.STAND_IN_DELAY_MS ?? Math.max(1, Math.round(medianCall)));
    const rate = Number(process.env.TOPO_RATE ?? Math.max(10, Math.floor((0.8 * cal.requests.total) / cal.duration)));
    log(`calibration: gateway on DynamoDB Local ${(cal.requests.total / cal.duration).toFixed(0)} req/s, median DynamoDB call ${medianCall.toFixed(1)} ms over ${walls.length} calls; slow stand-in delay ${delay} ms; common rate ${rate} req/s`);

    const noSlow = process.env.TOPO_NO_SLOW === '1';
    const slowStandIn = noSlow ? undefined : await startServer('dynamo-stand-in-slow', join(__dirname, 'servers/dynamo-stand-in.ts'), { env: { STAND_IN_DELAY_MS: String(delay) } });
    if (slowStandIn) servers.push(slowStandIn);
    const slow = slowStandIn ? await gw('gateway-stand-in-slow', `stand-in:${slowStandIn.url}`) : undefined;
    if (slow) servers.push(slow);
    const standInPort = (u: string) => new URL(u).port;
    const targets: Array<{ name: string; server: Server; port?: string }> = [
      { name: 'gateway', server: gateway, port: dynamoPort },
      ...(baseline ? [{ name: 'baseline', server: baseline, port: dynamoPort }] : []),
      { name: 'gateway-stand-in', server: fast, port: standInPort(standIn.url) },
      ...(baselineFast ? [{ name: 'baseline-stand-in', server: baselineFast, port: standInPort(standIn.url) }] : []),
      ...(slow && slowStandIn ? [{ name: 'gateway-stand-in-slow', server: slow, port: standInPort(slowStandIn.url) }] : []),
      ...(peer ? [{ name: 'portkey', server: peer }] : []),
    ];
    for (const t of targets) await drive(t.server, 2); // warm-up

    // The DynamoDB calls each gateway on DynamoDB Local makes a request in the rounds below (its meter).
    const metered = targets.filter((t) => t.port === dynamoPort);
    for (const t of metered) await t.server.request({ type: 'meter-reset' });
    const rows: Record<string, Row> = {};
    for (let round = 0; round < rounds; round++) {
      for (const mode of ['full', 'rate'] as const) {
        // Every other round in reverse order: a row is not always the one after DynamoDB Local's busiest.
        for (const t of round % 2 ? [...targets].reverse() : targets) {
          const pid = t.server.child.pid!;
          if (t.server !== peer) await t.server.request({ type: 'drain' });
          const c0 = procCpuMs(pid);
          const s0 = switches(pid);
          const j0 = procCpuMs(jvm);
          const w0 = schedMs(pid);
          const r = await drive(t.server, seconds, mode === 'rate' ? rate : undefined);
          if (t.server !== peer) await t.server.request({ type: 'drain' });
          const c1 = procCpuMs(pid);
          const s1 = switches(pid);
          const j1 = procCpuMs(jvm);
          const w1 = schedMs(pid);
          const row = (rows[`${t.name} @ ${mode === 'rate' ? `${rate}/s` : 'full load'}`] ??= { requests: 0, seconds: 0, cpuMs: 0, vol: 0, invol: 0, waitMs: 0, jvmMs: 0, latencyMs: [], sockets: [] });
          row.requests += r.requests.total;
          row.seconds += r.duration;
          row.cpuMs += c1 - c0;
          row.vol += s1.voluntary - s0.voluntary;
          row.invol += s1.involuntary - s0.involuntary;
          row.jvmMs += j1 - j0;
          row.waitMs += w1.wait - w0.wait;
          row.latencyMs.push(r.latency.p50);
          if (t.port) row.sockets.push(socketsTo(pid, t.port));
          if (r.non2xx || r.errors) log(`  ${t.name} ${mode}: ${r.non2xx} non-2xx, ${r.errors} errors`);
          log(`  ${t.name} ${mode}: ${(r.requests.total / r.duration).toFixed(0)} req/s, ${((c1 - c0) / r.requests.total).toFixed(3)} CPU-ms/req`);
        }
      }
    }
    const portkeyAt = (mode: string) => Object.entries(rows).find(([k]) => k.startsWith('portkey @') && k.endsWith(mode))?.[1];
    const lines = ['| target | req/s | CPU-ms / request | ÷ Portkey (same rate) | main-thread switches / request (vol. + invol.) | main thread runnable, not running: ms / request | JVM CPU-ms / request | median latency ms | sockets to its DynamoDB |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|'];
    for (const [name, r] of Object.entries(rows)) {
      const cpu = r.cpuMs / r.requests;
      const pk = portkeyAt(name.slice(name.indexOf('@') + 2));
      lines.push(
        `| ${name} | ${(r.requests / r.seconds).toFixed(0)} | ${cpu.toFixed(3)} | ${pk ? (cpu / (pk.cpuMs / pk.requests)).toFixed(2) : '–'} | ${(r.vol / r.requests).toFixed(1)} + ${(r.invol / r.requests).toFixed(1)} | ${(r.waitMs / r.requests).toFixed(2)} | ${name.startsWith('gateway @') || name.startsWith('baseline @') ? (r.jvmMs / r.requests).toFixed(3) : '–'} | ${r.latencyMs.join(' / ')} | ${r.sockets.length ? r.sockets.join(' / ') : '–'} |`,
      );
    }
    const calls: string[] = [];
    for (const t of metered) {
      const m = (await t.server.request<{ meter: Record<string, { calls: number }> }>({ type: 'meter' })).meter;
      const requests = Object.entries(rows).filter(([k]) => k.startsWith(`${t.name} @`)).reduce((n, [, r]) => n + r.requests, 0);
      const per = (op: string) => ((m[op]?.calls ?? 0) / requests).toFixed(2);
      calls.push(`${t.name}: ${(Object.values(m).reduce((n, x) => n + x.calls, 0) / requests).toFixed(2)} DynamoDB calls a request (TransactWriteItems ${per('TransactWriteItems')}, GetItem ${per('GetItem')}, UpdateItem ${per('UpdateItem')}) over ${requests} requests`);
    }
    process.stdout.write(`load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}; ${rounds} rounds × ${seconds} s, ${CONNECTIONS} connections, stand-in delay ${delay} ms\n\n${lines.join('\n')}\n\n${calls.join('\n')}\n`);
  } finally {
    for (const s of servers.reverse()) await s.stop();
    dynamo.child.kill('SIGKILL');
  }
}

if (require.main === module) {
  runMain(main, 'dynamo-topology');
}
