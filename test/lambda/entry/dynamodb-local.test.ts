import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { compiledLauncher, startDynamoLocal, type DynamoLocal } from '../../../lambda/entry/dynamodb-local';
import { isLoopback, listeningSocketsOf } from '../../support/listening-sockets';

/** DynamoDB Local through its loopback launcher (lambda/entry/dynamodb-local/). */

function ended(local: DynamoLocal): Promise<void> {
  return local.child.exitCode !== null || local.child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => local.child.once('exit', () => resolve()));
}

it('listens on the port it reports, on loopback only, with telemetry off, and ends when its stdin closes', async () => {
  const local = await startDynamoLocal();
  try {
    const sockets = listeningSocketsOf(local.child.pid!);
    expect(sockets.map((s) => s.port)).toEqual([local.port]);
    expect(sockets.filter((s) => !isLoopback(s.address))).toEqual([]);
    expect(readFileSync(`/proc/${local.child.pid}/cmdline`, 'utf8').split('\0')).toContain('-disableTelemetry');
    // Once started, what it prints is read and dropped: nothing keeps it (no listener gathering it for its lifetime).
    expect(local.child.stdout!.listenerCount('data')).toBe(0);
    expect(local.child.stderr!.listenerCount('data')).toBe(0);
    const answer = await fetch(local.endpoint, { method: 'POST' });
    expect(answer.status).toBeGreaterThanOrEqual(400); // an unsigned request, answered by DynamoDB Local
    // What the parent's death looks like from the child's side: its end of the pipe closes.
    const exited = ended(local);
    local.child.stdin!.end();
    await exited;
    expect(local.child.exitCode).toBe(0);
  } finally {
    local.child.kill('SIGKILL');
  }
}, 60_000);

it('fails on a taken port, naming it, with nothing left running', async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as AddressInfo).port;
  try {
    await expect(startDynamoLocal(undefined, port)).rejects.toThrow(new RegExp(`could not listen on 127\\.0\\.0\\.1:${port}`));
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
  }
}, 60_000);

it('compiles the launcher for each Java it is given: a Java that cannot run is an error, even after another compiled it', async () => {
  await expect(compiledLauncher('java')).resolves.toEqual(expect.any(String));
  await expect(compiledLauncher('/nonexistent/bin/java')).rejects.toThrow(/'\/nonexistent\/bin\/java -version' failed/);
}, 60_000);
