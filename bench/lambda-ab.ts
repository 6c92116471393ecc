// npx tsx bench/lambda-ab.ts: what one invocation of the chat function costs, this checkout's bundle
// against another checkout's (BENCH_BASELINE=<dir>, bundled by its own scripts/bundle.ts), both
// under bench/lambda-host.cjs on the same DynamoDB Local tables and keys. Requests go one at a
// time, as a Lambda instance serves them (no group commit: each invocation writes its own admission
// and settlement), in alternating rounds so that a neighbour's burst falls on both sides. Per
// invocation, as the host measures it: the process's CPU over the invocation (settlement and
// metrics after the last byte included: what Lambda bills as duration at a fraction of a vCPU),
// and the CPU up to the client's last byte. Beside them, local mode (`npm start`'s gateway, the
// same tables, one request at a time too, so no group commit either) and each side's process CPU
// a request over the rounds (/proc, the settlements after a round's last answer included), the
// one figure all three have. Prints medians of each side, JSON answers and streams.
//   BENCH_LAMBDA_AB_ROUNDS (6), BENCH_LAMBDA_AB_REQUESTS (50 a round and kind)
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { join } from 'node:path';
import { startDynamoLocal } from '../lambda/entry/local-server';
import { bundleChat } from '../scripts/bundle';
import { target, timedRequest, type Target } from './client';
import { pct } from './first-byte';
import { startBaselineLambdaTarget, startLambdaTarget } from './lambda';
import { procCpuMs, runMain, startBaseServers, type Server } from './procs';
import { bodyFor } from './run';
import { BENCH_MODEL } from './servers/bench-catalog';

const ROUNDS = Number(process.env.BENCH_LAMBDA_AB_ROUNDS ?? 6);
const REQUESTS = Number(process.env.BENCH_LAMBDA_AB_REQUESTS ?? 50);
const log = (line: string) => process.stderr.write(`[lambda-ab] ${line}\n`);

interface Invocation {
  streamEndCpuMs: number;
  handlerMs: number;
  cpuMs: number;
}

async function main() {
  log(`${os.availableParallelism()} CPUs, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${ROUNDS} rounds of ${REQUESTS} requests a kind, one at a time`);
  const dynamo = await startDynamoLocal();
  const servers: Server[] = [];
  try {
    const { upstream, gateway } = await startBaseServers(dynamo.endpoint, servers);
    // Every side on the same tables, with local mode's key.
    const side = (name: string, server: Server, lambda: boolean) => ({ name, server, lambda, target: target(name, server.url, '/v1/chat/completions', { authorization: `Bearer ${gateway.info.keys.ok}` }, bodyFor(BENCH_MODEL)) });
    const sides: Array<{ name: string; server: Server; target: Target; lambda: boolean }> = [side('gateway (local)', gateway, false)];
    const lambda = await startLambdaTarget(await bundleChat(join(__dirname, 'results/bundle')), upstream.url, dynamo.endpoint, gateway.info.tables);
    servers.push(lambda);
    sides.push(side('gateway-lambda', lambda, true));
    const baselineDir = process.env.BENCH_BASELINE;
    if (baselineDir) {
      const commit = execFileSync('git', ['-C', baselineDir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
      log(`baseline: ${baselineDir} at ${commit}`);
      const server = await startBaselineLambdaTarget(baselineDir, upstream.url, dynamo.endpoint, gateway.info.tables);
      servers.push(server);
      sides.push(side('baseline-lambda', server, true));
    }
    // Warm-up: JIT, pools, caches, the tokenizer loaded after the first answers.
    for (const s of sides) {
      for (let i = 0; i < 200; i++) await timedRequest(s.target, false);
      for (let i = 0; i < 30; i++) await timedRequest(s.target, true);
      if (s.lambda) {
        await s.server.request({ type: 'drain' });
        await s.server.request({ type: 'invocations' });
      }
    }
    const kinds = [
      ['JSON', false],
      ['stream', true],
    ] as const;
    const got: Record<string, Record<string, Invocation[]>> = Object.fromEntries(sides.map((s) => [s.name, { JSON: [], stream: [] }]));
    const processCpu: Record<string, Record<string, number>> = Object.fromEntries(sides.map((s) => [s.name, { JSON: 0, stream: 0 }]));
    let failed = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const order = sides.map((_, i) => sides[(i + round) % sides.length]);
      for (const s of order) {
        for (const [kind, stream] of kinds) {
          const before = procCpuMs(s.server.child.pid!);
          for (let i = 0; i < REQUESTS; i++) if ((await timedRequest(s.target, stream)).status !== 200) failed++;
          // Local mode settles in the background: time for the last settlement, on every side alike.
          await new Promise((resolve) => setTimeout(resolve, 200));
          processCpu[s.name][kind] += procCpuMs(s.server.child.pid!) - before;
          if (!s.lambda) continue;
          await s.server.request({ type: 'drain' });
          got[s.name][kind].push(...(await s.server.request<{ invocations: Invocation[] }>({ type: 'invocations' })).invocations);
        }
      }
    }
    const f = (x: number) => x.toFixed(3);
    const lines = [
      `one invocation at a time, median of ${ROUNDS * REQUESTS} a kind (ms): CPU over the invocation / CPU to the client's last byte / the invocation's wall time`,
      `${'target'.padEnd(17)}${'JSON cpu'.padStart(10)}${'to last'.padStart(9)}${'wall'.padStart(8)}${'stream cpu'.padStart(12)}${'to last'.padStart(9)}${'wall'.padStart(9)}`,
    ];
    for (const s of sides.filter((x) => x.lambda)) {
      const row = (k: string) => {
        const xs = got[s.name][k];
        return [pct(xs.map((x) => x.cpuMs), 50), pct(xs.map((x) => x.streamEndCpuMs), 50), pct(xs.map((x) => x.handlerMs), 50)];
      };
      const [jc, jl, jw] = row('JSON');
      const [sc, sl, sw] = row('stream');
      lines.push(`${s.name.padEnd(17)}${f(jc).padStart(10)}${f(jl).padStart(9)}${jw.toFixed(2).padStart(8)}${f(sc).padStart(12)}${f(sl).padStart(9)}${sw.toFixed(2).padStart(9)}`);
    }
    lines.push('', `process CPU a request over the rounds (ms): ${sides.map((s) => `${s.name} JSON ${f(processCpu[s.name].JSON / (ROUNDS * REQUESTS))}, stream ${f(processCpu[s.name].stream / (ROUNDS * REQUESTS))}`).join('; ')}`);
    const lambdas = sides.filter((x) => x.lambda);
    if (lambdas.length === 2) {
      const ratio = (k: string) => pct(got[lambdas[0].name][k].map((x) => x.cpuMs), 50) / pct(got[lambdas[1].name][k].map((x) => x.cpuMs), 50);
      lines.push(`CPU over the invocation, ${lambdas[0].name} ÷ ${lambdas[1].name}: JSON ${ratio('JSON').toFixed(3)}, stream ${ratio('stream').toFixed(3)}`);
    }
    lines.push(`failed requests: ${failed}; load at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    dynamo.child.kill('SIGKILL');
  }
}

if (require.main === module) runMain(main, 'lambda-ab');
