// Child processes of the bench: each server in its own process, reporting its own CPU over IPC.
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { availableParallelism } from 'node:os';

export const PROBE = join(__dirname, 'cpu-probe.cjs');

/**
 * BENCH_NODE=<a node binary>: every server of the bench (relays, gateways, Portkey, the stand-ins,
 * the chat bundle's host) and the bundle's import-time probe run on that Node, the driver on the one
 * running it. Lambda runs the chat function on nodejs24.x; this machine's Node may be older
 * (docs/BENCHMARKS.md, "Running it").
 */
export const SERVER_NODE = process.env.BENCH_NODE || process.execPath;

/** The servers' Node version (`process.version` of SERVER_NODE). */
export function serverNodeVersion(): string {
  return SERVER_NODE === process.execPath ? process.version : execFileSync(SERVER_NODE, ['-p', 'process.version'], { encoding: 'utf8' }).trim();
}

export interface Server {
  name: string;
  url: string;
  child: ChildProcess;
  info: any;
  request<T = any>(msg: object, timeoutMs?: number): Promise<T>;
  cpuMs(): Promise<number>;
  stop(): Promise<void>;
}

let nextId = 1;

/**
 * A checkout's gateway server (`bench/servers/gateway.ts`) runs as that checkout's `npm start` runs
 * local mode: bundled by its scripts/local-mode.cjs, without tsx; in a checkout from before that
 * launcher (a `BENCH_BASELINE`), through tsx as its `npm start` did. Anything else is left as given.
 * (docs/BENCHMARKS.md, "The first byte, seventeenth pass".)
 */
async function asLocalMode(file: string): Promise<string | undefined> {
  if (!file.endsWith(join('bench', 'servers', 'gateway.ts'))) return undefined;
  const launcher = join(dirname(file), '..', '..', 'scripts', 'local-mode.cjs');
  if (!existsSync(launcher)) return undefined;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { bundleLocal } = require(launcher) as { bundleLocal: (entry: string) => Promise<string> };
  return bundleLocal(file);
}

/** Forks a server that sends {type:'ready', url} when it listens. */
export async function startServer(
  name: string,
  given: string,
  opts: { env?: NodeJS.ProcessEnv; args?: string[]; execArgv?: string[]; ts?: boolean; cwd?: string; readyTimeoutMs?: number; waitReady?: (child: ChildProcess) => Promise<any> } = {},
): Promise<Server> {
  const bundle = opts.ts === false ? undefined : await asLocalMode(given);
  const file = bundle ?? given;
  // A bundle runs on plain node, with source maps on as the launcher turns them on.
  if (bundle) opts = { ...opts, ts: false, execArgv: ['--enable-source-maps', ...(opts.execArgv ?? [])] };
  const execArgv = ['--require', PROBE, ...(opts.execArgv ?? []), ...(opts.ts === false ? [] : ['--import', 'tsx'])];
  const child = fork(file, opts.args ?? [], {
    execPath: SERVER_NODE,
    execArgv,
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready: ${stderr.trim()}`))));
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${name} did not start in time: ${stderr.trim()}`)), opts.readyTimeoutMs ?? 60_000).unref());
  const ready = opts.waitReady
    ? opts.waitReady(child)
    : new Promise<any>((resolve) => {
        const onMsg = (m: any) => {
          if (m?.type === 'ready') {
            child.off('message', onMsg);
            resolve(m);
          }
        };
        child.on('message', onMsg);
      });
  let info: any;
  try {
    info = await Promise.race([ready, exited, timeout]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  exited.catch(() => undefined);
  const request = <T>(msg: object, timeoutMs = 120_000) =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => reject(new Error(`${name}: no answer to ${JSON.stringify(msg)}`)), timeoutMs);
      const onMsg = (m: any) => {
        if (m?.id !== id) return;
        clearTimeout(timer);
        child.off('message', onMsg);
        resolve(m as T);
      };
      child.on('message', onMsg);
      child.send({ ...msg, id });
    });
  return {
    name,
    url: info.url,
    child,
    info,
    request,
    async cpuMs() {
      const m = await request<{ usage: NodeJS.CpuUsage }>({ type: 'cpu' });
      return (m.usage.user + m.usage.system) / 1000;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/**
 * The servers every side-by-side run starts first: the stand-in upstream, the bare relays (node:http
 * and fetch) in front of it, and the gateway in local mode on `dynamoEndpoint`; each pushed to
 * `servers` as it starts, so the caller's clean-up stops what did start.
 */
export async function startBaseServers(dynamoEndpoint: string, servers: Server[]): Promise<{ upstream: Server; relay: Server; relayFetch: Server; gateway: Server }> {
  const started = async (name: string, file: string, env?: Record<string, string>) => {
    const server = await startServer(name, file, env && { env });
    servers.push(server);
    return server;
  };
  const upstream = await started('upstream', join(__dirname, 'servers/upstream.ts'));
  const relay = await started('relay', join(__dirname, 'bare-relay.ts'), { UPSTREAM_URL: upstream.url, RELAY_CLIENT: 'http' });
  const relayFetch = await started('relay-fetch', join(__dirname, 'bare-relay.ts'), { UPSTREAM_URL: upstream.url, RELAY_CLIENT: 'fetch' });
  const gateway = await started('gateway', join(__dirname, 'servers/gateway.ts'), { UPSTREAM_URL: upstream.url, DYNAMO_ENDPOINT: dynamoEndpoint });
  return { upstream, relay, relayFetch, gateway };
}

const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim() || 100);

/** utime + stime of a whole process (all its threads), in ms. */
export function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/**
 * Pins the servers under test to CPU 0 and the rest of the bench (DynamoDB Local's JVM, the
 * upstream, the measuring client: `others`, and this process) to the other CPUs, as in AWS, where
 * the store and the provider are on other machines and never take the gateway's core; each
 * process with all its threads (`taskset -a`). Returns the undo (every pid back on all CPUs), or
 * undefined where it cannot pin (one CPU, or no `taskset`): then nothing was changed.
 */
export function pinApart(underTest: number[], others: number[]): (() => void) | undefined {
  const cpus = availableParallelism();
  if (cpus < 2) return undefined;
  const set = (list: string, pid: number) => {
    execFileSync('taskset', ['-a', '-pc', list, String(pid)], { stdio: 'ignore' });
    // taskset -a answers 0 for a pid that is gone: read back what the kernel holds (throws if gone).
    const now = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    if (now !== list && !(list === '1-1' && now === '1')) throw new Error(`pid ${pid} on CPUs ${now}, not ${list}`);
  };
  // Every process back on all CPUs; one that has exited meanwhile (a server that died) is skipped.
  const unpin = () => {
    for (const pid of [...underTest, ...others, process.pid]) {
      try {
        set(`0-${cpus - 1}`, pid);
      } catch {
        // gone, or taskset missing
      }
    }
  };
  try {
    for (const pid of underTest) set('0', pid);
    for (const pid of [...others, process.pid]) set(`1-${cpus - 1}`, pid);
  } catch {
    unpin();
    return undefined;
  }
  return unpin;
}

/** A bench script's entry: exits 0 when `main` resolves, 1 with the error's stack when it fails. */
export function runMain(main: () => Promise<void>, name: string): void {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`${name} failed: ${err?.stack ?? err}\n`);
      process.exit(1);
    },
  );
}
