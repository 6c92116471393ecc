import type { ChildProcess } from 'node:child_process';

/** Stops the run's DynamoDB Local: an in-memory database, so there is nothing to shut down gracefully. */
export default async function globalTeardown(): Promise<void> {
  const child = (globalThis as { __DYNAMODB_LOCAL__?: ChildProcess }).__DYNAMODB_LOCAL__;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdout?.destroy();
  child.stderr?.destroy();
  child.kill('SIGKILL');
  await exited;
}
