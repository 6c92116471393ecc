// npx tsx bench/hops.ts: where a streamed request's first byte goes with a 300 ms upstream, hop by
// hop across the processes (about two minutes). Every process of the run (this client, the
// upstream, the bare relay, the gateway in local mode on DynamoDB Local, and another checkout's
// gateway with BENCH_BASELINE=<dir>) is run with bench/hops-preload.cjs, which logs the moments a
// request passes through Node's HTTP layer on the clock all processes share. For each target,
// paired round by round with the upstream asked directly:
//   wake in     the client's request written → the server's request event (the server wakes, parses)
//   before      → the upstream request on its socket: the server's own work before the call
//   to upstream → the upstream's request event
//   wait        → the upstream's first bytes written (its 300 ms timer, and how late it fires)
//   back        → the server's first upstream body bytes in (the server wakes again)
//   after       → its first bytes to the client on their socket: the server's own work after the call
//   out         → the client's first body bytes in
// `added` is the target's first byte less the upstream's own in the same round (as in
// bench/ttfb.ts); `work` = before + after, what the server's code costs; `hops` = the rest of
// `added` less how much later the upstream's timer fired than in its direct round: what the extra
// process in the path costs this machine (wake-ups, loopback), whatever runs in it.
// BENCH_HOPS_ROUNDS (40). See docs/BENCHMARKS.md, "The first byte, hop by hop".
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startDynamoLocal } from '../lambda/entry/local-server';
import { target, timedRequest, type Target } from './client';
import { pct } from './first-byte';
import { runMain, SERVER_NODE, serverNodeVersion, startServer, type Server } from './procs';
import { BENCH_MODEL, BENCH_MODEL_300 } from './servers/bench-catalog';

const ROUNDS = Number(process.env.BENCH_HOPS_ROUNDS ?? 40);
const WARMUP_JSON = Number(process.env.BENCH_TTFB_WARMUP_JSON ?? 200);
const WARMUP_STREAMS = Number(process.env.BENCH_TTFB_WARMUP_STREAMS ?? 30);
const PRELOAD = join(__dirname, 'hops-preload.cjs');
const PATH = '/v1/chat/completions';
const SLOW = '/delay/300';
const MESSAGES = [{ role: 'user', content: 'Hello! Say something short, please.' }];
const bodyFor = (model: string) => (stream: boolean) => JSON.stringify({ model, messages: MESSAGES, ...(stream ? { stream: true } : {}) });
const log = (line: string) => process.stderr.write(`[hops] ${line}\n`);

/** One line of the preload's log. */
export interface HopEvent {
  us: number;
  pid: number;
  name: string;
  moment: string;
  path: string;
}

export function parseHopLog(text: string): HopEvent[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [us, pid, name, moment, path] = line.split(' ');
      return { us: Number(us), pid: Number(pid), name, moment, path };
    })
    .sort((a, b) => a.us - b.us);
}

export const SEGMENTS = ['wake in', 'before', 'to upstream', 'wait', 'back', 'after', 'out'] as const;
export type Segment = (typeof SEGMENTS)[number];

/** One measured request: each segment in ms (the direct request has only `wait` and `total`), or undefined when a moment is missing. */
export interface HopRow {
  target: string;
  round: number;
  total: number;
  segments: Partial<Record<Segment, number>>;
}

/**
 * The measured requests of a log: each between the client's `M-begin <target>/<round>` and
 * `M-end` marks. `direct` is the upstream asked by the client itself (its `wait` runs from the
 * client's request written to its first byte written; its `total` to the client's first byte).
 */
export function hopRows(events: HopEvent[], client = 'client', upstream = 'upstream'): HopRow[] {
  const rows: HopRow[] = [];
  for (let i = 0; i < events.length; i++) {
    const begin = events[i];
    if (begin.name !== client || begin.moment !== 'M-begin') continue;
    const [targetName, round] = begin.path.split('/');
    const span: HopEvent[] = [];
    for (let j = i + 1; j < events.length && !(events[j].name === client && events[j].moment === 'M-end'); j++) span.push(events[j]);
    const first = (pred: (e: HopEvent) => boolean, after = -Infinity) => span.find((e) => e.us >= after && pred(e));
    const sent = first((e) => e.name === client && e.moment === 'C-w');
    const got = sent && first((e) => e.name === client && e.moment === 'C-d', sent.us);
    const upIn = first((e) => e.name === upstream && e.moment === 'S-in' && e.path.startsWith(SLOW));
    const upOut = upIn && first((e) => e.name === upstream && e.moment === 'S-out', upIn.us);
    if (!sent || !got || !upIn || !upOut) continue;
    const ms = (from: HopEvent | undefined, to: HopEvent | undefined) => (from && to ? (to.us - from.us) / 1000 : undefined);
    const row: HopRow = { target: targetName, round: Number(round), total: ms(sent, got)!, segments: {} };
    if (targetName === 'direct') {
      row.segments.wait = ms(upIn, upOut);
    } else {
      const server = (moment: string, after: number, path?: (p: string) => boolean) =>
        first((e) => e.name === targetName && e.moment === moment && (!path || path(e.path)), after);
      const sIn = server('S-in', sent.us);
      const call = sIn && server('C-w', sIn.us, (p) => p.startsWith(SLOW));
      const back = server('C-d', upOut.us, (p) => p.startsWith(SLOW));
      const out = back && server('S-out', back.us);
      Object.assign(row.segments, {
        'wake in': ms(sent, sIn),
        before: ms(sIn, call),
        'to upstream': ms(call, upIn),
        wait: ms(upIn, upOut),
        back: ms(upOut, back),
        after: ms(back, out),
        out: ms(out, got),
      });
    }
    rows.push(row);
  }
  return rows;
}

export interface HopSummary {
  target: string;
  rounds: number;
  /** Median of each segment, ms. */
  segments: Partial<Record<Segment, number>>;
  /** Paired with `direct` of the same round: the first byte added, the server's work (before + after), and the rest less the upstream's lateness. */
  added: number;
  work: number;
  hops: number;
}

const median = (xs: number[]) => pct(xs, 50);

export function summarizeHops(rows: HopRow[]): HopSummary[] {
  const direct = new Map(rows.filter((r) => r.target === 'direct').map((r) => [r.round, r]));
  const targets = [...new Set(rows.map((r) => r.target))].filter((t) => t !== 'direct');
  return targets.map((name) => {
    const mine = rows.filter((r) => r.target === name && direct.has(r.round) && SEGMENTS.every((s) => r.segments[s] !== undefined));
    const segments = Object.fromEntries(SEGMENTS.map((s) => [s, median(mine.map((r) => r.segments[s]!))]));
    const added = mine.map((r) => r.total - direct.get(r.round)!.total);
    const work = mine.map((r) => r.segments.before! + r.segments.after!);
    const hops = mine.map((r, i) => added[i] - work[i] - (r.segments.wait! - direct.get(r.round)!.segments.wait!));
    return { target: name, rounds: mine.length, segments, added: median(added), work: median(work), hops: median(hops) };
  });
}

async function main() {
  const dir = mkdtempSync(join(os.tmpdir(), 'itapi-hops-'));
  const file = join(dir, 'hops.log');
  process.env.HOPS_LOG = file;
  process.env.HOPS_NAME = 'client';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { mark } = require('./hops-preload.cjs') as { mark: (moment: string, path?: string) => void };
  log(`Node ${serverNodeVersion()}${SERVER_NODE === process.execPath ? '' : ' (BENCH_NODE)'}, ${os.availableParallelism()} CPUs, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${ROUNDS} rounds, log ${file}`);
  const dynamo = await startDynamoLocal();
  const servers: Server[] = [];
  try {
    const start = async (name: string, file_: string, env: Record<string, string>) => {
      const server = await startServer(name, file_, { env: { ...env, HOPS_NAME: name }, execArgv: ['--require', PRELOAD] });
      servers.push(server);
      return server;
    };
    const upstream = await start('upstream', join(__dirname, 'servers/upstream.ts'), {});
    const relay = await start('relay', join(__dirname, 'bare-relay.ts'), { UPSTREAM_URL: upstream.url, RELAY_CLIENT: 'http' });
    const gateway = await start('gateway', join(__dirname, 'servers/gateway.ts'), { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint });
    const targets: Target[] = [
      target('relay', relay.url, SLOW + PATH, {}, bodyFor('bench-upstream')),
      target('gateway', gateway.url, PATH, { authorization: `Bearer ${gateway.info.keys.ok}` }, bodyFor(BENCH_MODEL_300)),
    ];
    const baselineDir = process.env.BENCH_BASELINE;
    if (baselineDir) {
      const commit = execFileSync('git', ['-C', baselineDir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
      log(`baseline: ${baselineDir} at ${commit}`);
      const baseline = await start('baseline', join(baselineDir, 'bench/servers/gateway.ts'), { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint });
      targets.push(target('baseline', baseline.url, PATH, { authorization: `Bearer ${baseline.info.keys.ok}` }, bodyFor(BENCH_MODEL_300)));
    }
    const direct = target('direct', upstream.url, SLOW + PATH, {}, bodyFor('bench-upstream'));
    const fast = (t: Target): Target =>
      t.path.startsWith(SLOW) ? target(t.name, t.url, t.path.slice(SLOW.length), t.headers, t.body) : target(t.name, t.url, t.path, t.headers, bodyFor(BENCH_MODEL));
    log(`warm-up: ${WARMUP_JSON} JSON answers and ${WARMUP_STREAMS} streams per target, then 5 rounds with the 300 ms upstream`);
    for (let i = 0; i < WARMUP_JSON; i++) for (const t of targets) await timedRequest(fast(t), false);
    for (let i = 0; i < WARMUP_STREAMS; i++) for (const t of targets) await timedRequest(fast(t), true);
    for (let i = 0; i < 5; i++) for (const t of targets) await timedRequest(t, true);
    log(`${ROUNDS} rounds: each target's stream after the upstream's own, the targets' order rotating`);
    const measured = async (t: Target, round: number) => {
      mark('M-begin', `${t.name}/${round}`);
      const r = await timedRequest(t, true);
      mark('M-end');
      if (r.status !== 200) throw new Error(`${t.name}: status ${r.status}`);
    };
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < targets.length; i++) {
        await measured(direct, round * targets.length + i);
        await measured(targets[(round + i) % targets.length], round * targets.length + i);
      }
    }
    const summaries = summarizeHops(hopRows(parseHopLog(readFileSync(file, 'utf8'))));
    const f = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(2));
    const cols = [...SEGMENTS, 'added', 'work', 'hops'];
    const lines = [
      `the first byte hop by hop, 300 ms upstream, median of ${ROUNDS} streams a target (ms); added, work and hops paired with the upstream's own stream of the same round`,
      `${'target'.padEnd(10)}${cols.map((c) => c.padStart(12)).join('')}`,
      ...summaries.map((s) => `${s.target.padEnd(10)}${[...SEGMENTS.map((c) => s.segments[c]), s.added, s.work, s.hops].map((x) => f(x).padStart(12)).join('')}`),
      `rounds paired: ${summaries.map((s) => `${s.target} ${s.rounds}`).join(', ')}; load at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    dynamo.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  runMain(main, 'hops');
}
