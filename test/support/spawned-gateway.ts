import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** A gateway with its own caches and runtime, for tests of limits across instances and of instances that die. */
export const GATEWAY_PROCESS = join(__dirname, 'gateway-process.ts');
/** What `npm start` runs (package.json): local mode, bundled as it starts. */
export const NPM_START = join(__dirname, '..', '..', 'scripts', 'local-mode.cjs');

export interface Started {
  /** The `ITAPI_NAME=value` lines printed so far. */
  lines: Record<string, string>;
  /** Standard output up to the moment it was ready. */
  stdout: string;
  /** Standard error as it stands when called. */
  stderr: () => string;
}

export interface SpawnedGateway {
  child: ChildProcess;
  /** The exit code (null when a signal ended it). */
  exited: Promise<number | null>;
  /** Once `ready` holds of what it printed; rejects if it exits first. */
  started: Promise<Started>;
}

const spawned: ChildProcess[] = [];
// A test that failed or timed out never reached its own cleanup: no gateway outlives the file that spawned it.
afterAll(() => {
  for (const child of spawned) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/**
 * Runs `entry` in a process of its own: a `.cjs` file as it is (`npm start`'s launcher), a
 * TypeScript one with `--import tsx` rather than the tsx CLI. One process either way, so a signal
 * reaches the gateway itself and SIGKILL leaves no orphan holding Jest's pipes.
 */
export function spawnGateway(
  entry: string,
  env: NodeJS.ProcessEnv,
  ready: (lines: Record<string, string>) => boolean = (lines) => lines.ITAPI_BASE_URL !== undefined,
): SpawnedGateway {
  const child = spawn(process.execPath, entry.endsWith('.cjs') ? [entry] : ['--import', 'tsx', entry], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  spawned.push(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const started = new Promise<Started>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      // Whole lines only: a chunk may end inside one.
      const lines = Object.fromEntries([...out.slice(0, out.lastIndexOf('\n') + 1).matchAll(/^(ITAPI_[A-Z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
      if (ready(lines)) resolve({ lines, stdout: out, stderr: () => err });
    });
    child.once('exit', (code, signal) => reject(new Error(`${entry} exited with ${code ?? signal} before it was ready: ${out} ${err.slice(-2000)}`)));
  });
  return { child, exited, started };
}

/** A gateway process (test/support/gateway-process.ts) over the tables and settings `env` names, once it serves. */
export async function startGatewayProcess(env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; baseUrl: string }> {
  const gateway = spawnGateway(GATEWAY_PROCESS, env);
  const { lines } = await gateway.started;
  return { child: gateway.child, baseUrl: lines.ITAPI_BASE_URL };
}
