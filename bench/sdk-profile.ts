// Where an AWS SDK call's CPU goes: N sequential calls against DynamoDB Local, CPU per call for a
// few client configurations, and (with --cpu-prof) a profile summarised by package.
//   npx tsx bench/sdk-profile.ts [endpoint]          (starts DynamoDB Local when no endpoint)
//   node --cpu-prof --cpu-prof-dir=bench/results/prof --import tsx bench/sdk-profile.ts
import { CreateTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { performance } from 'node:perf_hooks';
import { startDynamoLocal } from '../lambda/entry/local-server';
import { createDynamoClient } from '../lambda/store/client';

const N = Number(process.env.N ?? 1000);
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function measure(name: string, client: DynamoDBClient, table: string) {
  const send = (i: number) =>
    i % 2
      ? client.send(new GetItemCommand({ TableName: table, Key: { id: { S: 'probe' } }, ConsistentRead: true }))
      : client.send(new UpdateItemCommand({ TableName: table, Key: { id: { S: 'probe' } }, UpdateExpression: 'SET n = n + :one', ConditionExpression: 'attribute_exists(id)', ExpressionAttributeValues: { ':one': { N: '1' } }, ReturnValues: 'ALL_NEW' }));
  for (let i = 0; i < 300; i++) await send(i);
  const c0 = cpu();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await send(i);
  const r = { name, cpuMsPerCall: (cpu() - c0) / N, wallMsPerCall: (performance.now() - t0) / N };
  process.stdout.write(`${JSON.stringify(r)}\n`);
  return r;
}

async function main() {
  let endpoint = process.argv[2];
  let stop = () => undefined as unknown;
  if (!endpoint) {
    const d = await startDynamoLocal();
    endpoint = d.endpoint;
    stop = () => d.child.kill('SIGKILL');
  }
  const table = `sdk-profile-${Date.now()}`;
  const base = createDynamoClient(endpoint);
  await base.send(new CreateTableCommand({ TableName: table, AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }], KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }], BillingMode: 'PAY_PER_REQUEST' }));
  await base.send(new PutItemCommand({ TableName: table, Item: { id: { S: 'probe' }, n: { N: '0' } } }));
  const only = process.env.ONLY;
  const configs: Array<[string, () => DynamoDBClient]> = [
    ['default', () => createDynamoClient(endpoint, { cacheMiddleware: false })],
    ['cacheMiddleware', () => createDynamoClient(endpoint, { cacheMiddleware: true })],
    ['cacheMiddleware+accountIdEndpointMode=disabled', () => createDynamoClient(endpoint, { cacheMiddleware: true, accountIdEndpointMode: 'disabled' })],
  ];
  // Alternated, twice, so that a noisy neighbour does not favour one configuration.
  const clients = configs.map(([name, make]) => [name, make()] as const);
  for (let rep = 0; rep < Number(process.env.REPS ?? 2); rep++) {
    for (const [name, client] of clients) {
      if (only && !name.includes(only)) continue;
      await measure(name, client, table);
    }
  }
  stop();
}

main().then(() => process.exit(0));
