// The request path's DynamoDB calls through four clients, side by side (issue 12): the AWS SDK's
// DynamoDBClient, the gateway's own lean client (lambda/store/dynamo.ts: node:http keep-alive, signed
// by lambda/store/sigv4.ts, and the same with the SDK's @smithy/signature-v4 instead), @aws-lite/client
// and aws4fetch. The same GetItem and the same
// two-item TransactWriteItems (admission's shape), N times each, sequential and alternated;
// CPU (user + system) and wall time per call, in one process against one DynamoDB Local.
//   npx tsx bench/dynamo-clients.ts [endpoint]      (starts DynamoDB Local when no endpoint)
import { DynamoDBClient, GetItemCommand, TransactWriteItemsCommand } from '@aws-sdk/client-dynamodb';
import { SignatureV4 } from '@smithy/signature-v4';
import { performance } from 'node:perf_hooks';
import { startDynamoLocal } from '../lambda/entry/local-server';
import { createDynamoClient } from '../lambda/store/client';
import { NodeSha256 } from '../lambda/cli/sigv4';

const N = Number(process.env.N ?? 400);
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

export interface ClientFigures {
  client: string;
  getItem: { cpuMs: number; wallMs: number };
  transactWriteItems: { cpuMs: number; wallMs: number };
  /** Time to load the client's module graph in this process (first import). */
  loadMs: number;
}

type Call = (operation: 'GetItem' | 'TransactWriteItems', input: Record<string, unknown>) => Promise<unknown>;

async function clients(endpoint: string): Promise<Array<{ name: string; loadMs: number; call: Call }>> {
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  const region = 'us-east-1';
  const out: Array<{ name: string; loadMs: number; call: Call }> = [];

  const sdk = new DynamoDBClient({ endpoint, region, credentials, maxAttempts: 2, cacheMiddleware: true });
  out.push({
    name: 'AWS SDK v3 (cacheMiddleware)',
    loadMs: NaN,
    call: (op, input) => (op === 'GetItem' ? sdk.send(new GetItemCommand(input as never)) : sdk.send(new TransactWriteItemsCommand(input as never))),
  });

  const lean = createDynamoClient(endpoint);
  out.push({ name: 'lean (node:http + own SigV4)', loadMs: NaN, call: (op, input) => lean.call(op, input) });

  // The same client signing with the SDK's own signer (what option (a) of issue 12 describes).
  const url = new URL(endpoint);
  const smithy = createDynamoClient(endpoint, {
    signer: (creds, reg) => {
      const signer = new SignatureV4({ credentials: creds, region: reg, service: 'dynamodb', sha256: NodeSha256 });
      return async (host, headers, body) =>
        (await signer.sign({ method: 'POST', protocol: url.protocol, hostname: url.hostname, port: Number(url.port) || undefined, path: '/', query: {}, headers: { ...headers, host }, body })).headers;
    },
  });
  out.push({ name: 'lean + @smithy/signature-v4', loadMs: NaN, call: (op, input) => smithy.call(op, input) });

  let t0 = performance.now();
  const { default: awsLite } = (await import('@aws-lite/client')) as unknown as { default: (config: object) => Promise<(req: object) => Promise<unknown>> };
  const aws = await awsLite({ region, endpoint, accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey, autoloadPlugins: false, retries: 1 });
  out.push({
    name: '@aws-lite/client',
    loadMs: performance.now() - t0,
    call: (op, input) =>
      aws({ service: 'dynamodb', path: '/', headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `DynamoDB_20120810.${op}` }, payload: input, awsjson: false }),
  });

  t0 = performance.now();
  const { AwsClient } = await import('aws4fetch');
  const a4f = new AwsClient({ ...credentials, region, service: 'dynamodb' });
  out.push({
    name: 'aws4fetch (fetch + WebCrypto)',
    loadMs: performance.now() - t0,
    call: async (op, input) => {
      const res = await a4f.fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `DynamoDB_20120810.${op}` },
        body: JSON.stringify(input),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${op} answered ${res.status}: ${text.slice(0, 200)}`);
      return JSON.parse(text);
    },
  });
  return out;
}

async function measure(call: Call, op: 'GetItem' | 'TransactWriteItems', input: () => Record<string, unknown>, n: number) {
  for (let i = 0; i < 50; i++) await call(op, input());
  const c0 = cpuNow();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await call(op, input());
  return { cpuMs: (cpuNow() - c0) / n, wallMs: (performance.now() - t0) / n };
}

/** Runs every client over the same two calls, alternated twice; returns the better of the two rounds of each. */
export async function compareDynamoClients(endpoint: string, n = N): Promise<ClientFigures[]> {
  const lean = createDynamoClient(endpoint);
  const table = `clients-${Date.now()}`;
  const holds = `${table}-h`;
  for (const name of [table, holds]) {
    await lean.call('CreateTable', { TableName: name, BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }], KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }] });
  }
  await lean.call('PutItem', { TableName: table, Item: { id: { S: 'probe' }, n: { N: '0' }, balance: { N: '1000000000' } } });
  let seq = 0;
  const get = () => ({ TableName: table, Key: { id: { S: 'probe' } }, ConsistentRead: true });
  // Admission's shape: the account item updated on conditions, the hold put if absent.
  const transact = () => {
    const id = `hold-${process.pid}-${seq++}`;
    return {
      ClientRequestToken: id.slice(-36),
      TransactItems: [
        {
          Update: {
            TableName: table,
            Key: { id: { S: 'probe' } },
            UpdateExpression: 'SET n = n + :one, balance = balance - :hold',
            ConditionExpression: 'attribute_exists(id) AND balance >= :hold',
            ExpressionAttributeValues: { ':one': { N: '1' }, ':hold': { N: '10' } },
          },
        },
        { Put: { TableName: holds, Item: { id: { S: id }, hold: { N: '10' } }, ConditionExpression: 'attribute_not_exists(id)' } },
      ],
    };
  };
  const all = await clients(endpoint);
  const best = new Map<string, ClientFigures>();
  for (let round = 0; round < 2; round++) {
    for (const c of round % 2 ? [...all].reverse() : all) {
      const g = await measure(c.call, 'GetItem', get, n);
      const t = await measure(c.call, 'TransactWriteItems', transact, n);
      const prev = best.get(c.name);
      best.set(c.name, {
        client: c.name,
        loadMs: c.loadMs,
        getItem: !prev || g.cpuMs < prev.getItem.cpuMs ? g : prev.getItem,
        transactWriteItems: !prev || t.cpuMs < prev.transactWriteItems.cpuMs ? t : prev.transactWriteItems,
      });
    }
  }
  return [...best.values()];
}

if (require.main === module) {
  (async () => {
    let endpoint = process.argv[2];
    let stop = () => undefined as unknown;
    if (!endpoint) {
      const d = await startDynamoLocal();
      endpoint = d.endpoint;
      stop = () => d.child.kill('SIGKILL');
    }
    for (const f of await compareDynamoClients(endpoint)) process.stdout.write(`${JSON.stringify(f)}\n`);
    stop();
    process.exit(0);
  })();
}
