// npx tsx bench/age.ts: does the gateway's CPU a request at one rate change as it ages? Phases of
// BENCH_AGE_ROUNDS (3) rounds of 2 s at BENCH_AGE_RATE (300) requests a second, each phase followed
// by BENCH_AGE_FULL_S (30) seconds as fast as it answers, BENCH_AGE_PHASES (4) times: per round the
// gateway's and DynamoDB Local's JVM's CPU-ms a request, per phase both processes' resident memory.
// The gateway is this checkout's, or BENCH_BASELINE's (docs/BENCHMARKS.md, twentieth pass).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDynamoLocal } from '../lambda/entry/local-server';
import { procCpuMs, runMain, startServer, type Server } from './procs';
import { bodyFor } from './run';
import { BENCH_MODEL } from './servers/bench-catalog';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon');

const RATE = Number(process.env.BENCH_AGE_RATE ?? 300);
const ROUNDS = Number(process.env.BENCH_AGE_ROUNDS ?? 3);
const FULL_S = Number(process.env.BENCH_AGE_FULL_S ?? 30);
const PHASES = Number(process.env.BENCH_AGE_PHASES ?? 4);

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

async function main() {
  const dynamo = await startDynamoLocal();
  const servers: Server[] = [];
  try {
    const upstream = await startServer('upstream', join(__dirname, 'servers/upstream.ts'));
    servers.push(upstream);
    const dir = process.env.BENCH_BASELINE ?? join(__dirname, '..');
    const gateway = await startServer('gateway', join(dir, 'bench/servers/gateway.ts'), { env: { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamo.endpoint } });
    servers.push(gateway);
    const load = (seconds: number, rate: number) =>
      autocannon({ url: `${gateway.url}/v1/chat/completions`, method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${gateway.info.keys.ok}` }, body: bodyFor(BENCH_MODEL)(false), connections: 16, duration: seconds, ...(rate ? { overallRate: rate } : {}) });
    await load(3, RATE);
    for (let phase = 0; phase < PHASES; phase++) {
      const rounds: string[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const [gw, jvm] = [await gateway.cpuMs(), procCpuMs(dynamo.child.pid!)];
        const r = await load(2, RATE);
        const [gw2, jvm2] = [await gateway.cpuMs(), procCpuMs(dynamo.child.pid!)];
        rounds.push(`${((gw2 - gw) / r.requests.total).toFixed(3)} / ${((jvm2 - jvm) / r.requests.total).toFixed(2)}`);
      }
      process.stdout.write(`phase ${phase + 1}: CPU-ms a request at ${RATE} req/s, gateway / JVM: ${rounds.join(', ')}; resident: gateway ${rssMb(gateway.child.pid!).toFixed(0)} MB, JVM ${rssMb(dynamo.child.pid!).toFixed(0)} MB\n`);
      if (phase === PHASES - 1) break;
      const full = await load(FULL_S, 0);
      process.stdout.write(`  then ${FULL_S} s as fast as it answers: ${Math.round(full.requests.total / full.duration)} req/s\n`);
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    dynamo.child.kill('SIGKILL');
  }
}

runMain(main, 'age');
