// npx tsx bench/ttfb.ts: only the first byte with a 300 ms upstream, side by side in one run (about a
// minute): the upstream itself (`direct`), the bare relays, the gateway in local mode on DynamoDB
// Local, and optionally the Lambda bundle (BENCH_TTFB_LAMBDA=1) and another checkout's gateway
// (BENCH_BASELINE=<dir>, before/after). Prints each target's first byte less the upstream's of
// the same round, median and p95, and the ratio to the relay's; then the same with a long prompt
// (BENCH_TTFB_LONG_CHARS, 100,000 characters, 0 skips it; BENCH_TTFB_LONG_SHAPE=agent makes it a
// coding agent's history), and a client's next turn sent at once
// (BENCH_TTFB_NEXT_ROUNDS; 0 skips it). See docs/BENCHMARKS.md.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { join } from 'node:path';
import { startDynamoLocal } from '../lambda/entry/local-server';
import { target, timedRequest, type Target } from './client';
import { firstByte300, LONG_PROMPT_CHARS, LONG_PROMPT_SHAPE, pct, withLongPrompt } from './first-byte';
import { startBaselineLambdaTarget, startLambdaTarget } from './lambda';
import { runMain, SERVER_NODE, serverNodeVersion, startBaseServers, startServer, type Server } from './procs';
import { BENCH_MODEL, BENCH_MODEL_300 } from './servers/bench-catalog';

const ROUNDS = Number(process.env.BENCH_TTFB_ROUNDS ?? 40);
const WARMUP = Number(process.env.BENCH_TTFB_WARMUP ?? 5);
/** A pause before each measured request (ms): each server then idles between its requests about as long as in `npm run bench`'s step (0 by default). */
const GAP_MS = Number(process.env.BENCH_TTFB_GAP_MS ?? 0);
/**
 * Requests each target serves first from the upstream's undelayed path, round by round (JSON
 * answers, then streams of 20 chunks), so that every target is measured in its steady state (code
 * compiled by the JIT, pools and caches warm), as a server in service is and as `npm run bench`
 * finds them after its latency step.
 */
const WARMUP_JSON = Number(process.env.BENCH_TTFB_WARMUP_JSON ?? 200);
const WARMUP_STREAMS = Number(process.env.BENCH_TTFB_WARMUP_STREAMS ?? 30);
/**
 * A second step (BENCH_TTFB_LONG_CHARS=0 skips it): the same first byte with a prompt of
 * BENCH_TTFB_LONG_CHARS characters (100,000), BENCH_TTFB_LONG_ROUNDS rounds: what the prompt's size
 * costs before the upstream call (bench/first-byte.ts `withLongPrompt`).
 */
const LONG_ROUNDS = Number(process.env.BENCH_TTFB_LONG_ROUNDS ?? 15);
/**
 * A third step (0 skips it): a client's next turn sent the moment its last answer ended (an agent
 * going on at once), BENCH_TTFB_NEXT_ROUNDS pairs a target, interleaved: the second stream's first
 * byte, less the upstream's own second of the same round. In local mode the last answer is then
 * still being settled in the background.
 */
const NEXT_ROUNDS = Number(process.env.BENCH_TTFB_NEXT_ROUNDS ?? 15);
const PATH = '/v1/chat/completions';
const MESSAGES = [{ role: 'user', content: 'Hello! Say something short, please.' }];
const bodyFor = (model: string) => (stream: boolean) => JSON.stringify({ model, messages: MESSAGES, ...(stream ? { stream: true } : {}) });

const t0 = Date.now();
const log = (line: string) => process.stderr.write(`[ttfb ${((Date.now() - t0) / 1000).toFixed(0).padStart(3)}s] ${line}\n`);

async function main() {
  log(`Node ${serverNodeVersion()}${SERVER_NODE === process.execPath ? '' : ' (BENCH_NODE)'}, ${os.availableParallelism()} CPUs, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${ROUNDS} interleaved rounds`);
  const dynamo = await startDynamoLocal();
  const servers: Server[] = [];
  const stopAll = async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    dynamo.child.kill('SIGKILL');
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    const { upstream, relay, relayFetch, gateway } = await startBaseServers(dynamo.endpoint, servers);
    const slow = `/delay/300${PATH}`;
    const targets: Target[] = [
      target('direct', upstream.url, slow, {}, bodyFor('bench-upstream')),
      target('relay', relay.url, slow, {}, bodyFor('bench-upstream')),
      target('relay-fetch', relayFetch.url, slow, {}, bodyFor('bench-upstream')),
      target('gateway', gateway.url, PATH, { authorization: `Bearer ${gateway.info.keys.ok}` }, bodyFor(BENCH_MODEL_300)),
    ];
    const baselineDir = process.env.BENCH_BASELINE;
    if (baselineDir) {
      const commit = execFileSync('git', ['-C', baselineDir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
      log(`baseline: ${baselineDir} at ${commit}`);
      const baseline = await startServer('baseline', join(baselineDir, 'bench/servers/gateway.ts'), { env: { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint } });
      servers.push(baseline);
      targets.push(target('baseline', baseline.url, PATH, { authorization: `Bearer ${baseline.info.keys.ok}` }, bodyFor(BENCH_MODEL_300)));
    }
    if (process.env.BENCH_TTFB_LAMBDA === '1') {
      log('bundling the chat handler for gateway-lambda');
      const { bundleChat } = await import('../scripts/bundle');
      const bundle = await bundleChat(join(__dirname, 'results/bundle'));
      const lambda = await startLambdaTarget(bundle, upstream.url, dynamo.endpoint, gateway.info.tables);
      servers.push(lambda);
      // The same tables, so the same keys, as `gateway` (its own account view, in its own process).
      targets.push(target('gateway-lambda', lambda.url, PATH, { authorization: `Bearer ${gateway.info.keys.ok}` }, bodyFor(BENCH_MODEL_300)));
      if (baselineDir) {
        const baseLambda = await startBaselineLambdaTarget(baselineDir, upstream.url, dynamo.endpoint, gateway.info.tables);
        servers.push(baseLambda);
        targets.push(target('baseline-lambda', baseLambda.url, PATH, { authorization: `Bearer ${gateway.info.keys.ok}` }, bodyFor(BENCH_MODEL_300)));
      }
    }
    log(`warm-up: ${WARMUP_JSON} JSON answers and ${WARMUP_STREAMS} streams per target from the undelayed upstream, then ${WARMUP} rounds with the 300 ms upstream`);
    // The same target on the upstream's undelayed path: no path prefix, or the model routed to it.
    const fast = (t: Target): Target =>
      t.path.startsWith('/delay/300') ? target(t.name, t.url, t.path.slice('/delay/300'.length), t.headers, t.body) : target(t.name, t.url, t.path, t.headers, bodyFor(BENCH_MODEL));
    const fastTargets = targets.map(fast);
    for (let i = 0; i < WARMUP_JSON; i++) for (const t of fastTargets) await timedRequest(t, false);
    for (let i = 0; i < WARMUP_STREAMS; i++) for (const t of fastTargets) await timedRequest(t, true);
    for (let i = 0; i < WARMUP; i++) for (const t of targets) await timedRequest(t, true);
    log(`first byte with a 300 ms upstream: ${ROUNDS} interleaved rounds of streams${GAP_MS ? `, ${GAP_MS} ms before each request` : ''}`);
    const figures = await firstByte300(targets, ROUNDS, GAP_MS);
    const f = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1));
    const table = (title: string, rows: Awaited<ReturnType<typeof firstByte300>>) => {
      const relayAdded = rows.relay?.addedMedianMs ?? NaN;
      return [
        title,
        `${'target'.padEnd(16)}${'median'.padStart(9)}${'added med'.padStart(11)}${'added p95'.padStart(11)}${'×relay'.padStart(8)}${'failed'.padStart(8)}`,
        ...targets.map((t) => {
          const r = rows[t.name];
          const ratio = t.name === 'direct' ? '' : f((r.addedMedianMs ?? NaN) / relayAdded);
          return `${t.name.padEnd(16)}${f(r.medianMs).padStart(9)}${f(r.addedMedianMs).padStart(11)}${f(r.addedP95Ms).padStart(11)}${ratio.padStart(8)}${String(r.failures).padStart(8)}`;
        }),
      ];
    };
    const lines = table(`first byte, 300 ms upstream, ${ROUNDS} rounds (added = the target's first byte less the upstream's in the same round)`, figures);
    if (LONG_PROMPT_CHARS > 0 && LONG_ROUNDS > 0) {
      log(`first byte with a 300 ms upstream and a prompt of ${LONG_PROMPT_CHARS} characters (${LONG_PROMPT_SHAPE}): ${LONG_ROUNDS} interleaved rounds`);
      const long = targets.map((t) => withLongPrompt(t));
      for (const t of long) await timedRequest(t, true);
      lines.push(...table(`first byte, 300 ms upstream, prompt of ${LONG_PROMPT_CHARS} characters (${LONG_PROMPT_SHAPE}), ${LONG_ROUNDS} rounds`, await firstByte300(long, LONG_ROUNDS, GAP_MS)));
    }
    if (NEXT_ROUNDS > 0) {
      log(`a next turn at once: ${NEXT_ROUNDS} interleaved rounds of two streams in a row a target`);
      const seconds: Record<string, number[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
      for (let round = 0; round < NEXT_ROUNDS; round++) {
        for (let i = 0; i < targets.length; i++) {
          const t = targets[(round + i) % targets.length];
          await timedRequest(t, true);
          const r = await timedRequest(t, true);
          seconds[t.name][round] = r.status === 200 && r.ttfbMs >= 0 ? r.ttfbMs : NaN;
        }
      }
      lines.push(`first byte of a next turn sent as the last answer ended, 300 ms upstream, ${NEXT_ROUNDS} rounds (added = less the upstream's own second, same round)`);
      lines.push(`${'target'.padEnd(16)}${'median'.padStart(9)}${'added med'.padStart(11)}${'added p95'.padStart(11)}${'failed'.padStart(8)}`);
      for (const t of targets) {
        const own = seconds[t.name].filter((x) => !Number.isNaN(x));
        const added = seconds[t.name].map((x, round) => x - seconds.direct[round]).filter((x) => !Number.isNaN(x));
        const isDirect = t.name === 'direct';
        // A second stream that failed is left out of the figures and counted here, as in the tables above.
        const failed = NEXT_ROUNDS - own.length;
        lines.push(`${t.name.padEnd(16)}${f(pct(own, 50)).padStart(9)}${(isDirect ? '-' : f(pct(added, 50))).padStart(11)}${(isDirect ? '-' : f(pct(added, 95))).padStart(11)}${String(failed).padStart(8)}`);
      }
    }
    lines.push(`load at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await stopAll();
  }
}

runMain(main, 'ttfb');
