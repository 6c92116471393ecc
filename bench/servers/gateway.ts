// The gateway in local mode, in a process of its own so that its CPU accounting is its own:
// real DynamoDB Local (started by the bench, reached at DYNAMO_ENDPOINT), the full admission
// path (one conditional write per request, settlement after the last byte), warm key cache.
// Talks to the bench over IPC: accounts and keys at start, CPU and DynamoDB figures on demand.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { displayPrefix, generateApiKey, hashApiKey } from '../../lambda/auth/api-key';
import { parseCatalog } from '../../lambda/catalog';
import { startLocal, type LocalGateway } from '../../lambda/entry/local-server';
import { createDynamoClient } from '../../lambda/store/client';
import type { Dynamo, DynamoStep } from '../../lambda/store/dynamo';
import { DynamoMeter } from '../dynamo-meter';
import { benchCatalogDocument } from './bench-catalog';

const upstream = process.env.UPSTREAM_URL!;
const endpoint = process.env.DYNAMO_ENDPOINT!;

export { BENCH_MODEL } from './bench-catalog';

async function account(local: LocalGateway, name: string, o: { rpm: number; tpm: number; creditsMicroUsd: number }) {
  const { stores } = local.gateway;
  const accountId = `bench_${name}_${randomBytes(4).toString('hex')}`;
  await stores.accounts.create({ id: accountId, name, tier: 'enterprise', balanceMicroUsd: 0, status: 'active', createdAtMs: Date.now(), rpm: o.rpm, tpm: o.tpm });
  if (o.creditsMicroUsd) await stores.accounts.topUp(accountId, o.creditsMicroUsd, 'initial');
  const key = generateApiKey();
  await stores.keys.create({
    keyHash: hashApiKey(key),
    keyId: `key_${randomBytes(6).toString('hex')}`,
    accountId,
    name,
    prefix: displayPrefix(key),
    status: 'active',
    createdAtMs: Date.now(),
    accountTier: 'enterprise',
    accountRpm: o.rpm,
    accountTpm: o.tpm,
  });
  return key;
}

async function main() {
  const suffix = randomBytes(4).toString('hex');
  const catalog = parseCatalog(benchCatalogDocument(upstream), 'bench');
  const tables = { keys: `bench-keys-${suffix}`, tiers: `bench-tiers-${suffix}`, accounts: `bench-accounts-${suffix}`, usage: `bench-usage-${suffix}`, holds: `bench-holds-${suffix}`, sessions: `bench-sessions-${suffix}`, responses: `bench-responses-${suffix}`, rollups: `bench-rollups-${suffix}` };
  const local = await startLocal({
    port: 0,
    // Group commit on (the local server's default), said explicitly: a baseline checkout from when it was opt-in gets it too.
    env: { ITAPI_ADMIN_TOKEN: `bench-${suffix}`, ITAPI_GROUP_COMMIT: '1' },
    dynamoEndpoint: endpoint,
    tables,
    dataDir: mkdtempSync(join(tmpdir(), 'itapi-bench-')),
    catalog,
    seedDemo: false,
  });
  // Counting from a `meter-reset` to a `meter-off` (bench/dynamo-meter.ts). BENCH_METER=off
  // (bench/profile.ts): not even the step on the client.
  const meter = process.env.BENCH_METER === 'off' ? undefined : new DynamoMeter(local.dynamo);
  const keys = {
    ok: await account(local, 'ok', { rpm: 100_000_000, tpm: 1_000_000_000_000, creditsMicroUsd: 1_000_000_000_000 }),
    broke: await account(local, 'broke', { rpm: 100_000_000, tpm: 1_000_000_000_000, creditsMicroUsd: 0 }),
    limited: await account(local, 'limited', { rpm: 1, tpm: 1_000_000_000_000, creditsMicroUsd: 1_000_000_000 }),
  };

  // BENCH_STORE=memory: the store answered from memory once the accounts exist (issue 12: the
  // gateway's own ceiling). Reads are answered from the first answer to the same input, writes
  // are acknowledged and kept nowhere: no DynamoDB client work, no DynamoDB Local.
  if (process.env.BENCH_STORE === 'memory') local.dynamo.intercept(memoryStore());
  // BENCH_STORE=stand-in:<url>: the same, but every write still goes out, signed, over HTTP to a
  // Node process that answers {} (the client's whole cost, without DynamoDB Local's JVM).
  if (process.env.BENCH_STORE?.startsWith('stand-in:')) local.dynamo.intercept(memoryStore(createDynamoClient(process.env.BENCH_STORE.slice('stand-in:'.length))));

  process.on('message', async (msg: { type: string; id?: number; capacity?: boolean; n?: number }) => {
    const reply = (body: object) => process.send!({ ...body, type: msg.type, id: msg.id });
    if (msg.type === 'cpu') {
      await local.gateway.background.drain();
      reply({ usage: process.cpuUsage() });
    } else if (msg.type === 'meter-reset') {
      await local.gateway.background.drain();
      meter?.reset(msg.capacity === true);
      reply({});
    } else if (msg.type === 'meter-off') {
      await local.gateway.background.drain();
      meter?.off();
      reply({});
    } else if (msg.type === 'meter') {
      await local.gateway.background.drain();
      reply({ meter: meter?.snapshot() ?? {} });
    } else if (msg.type === 'drain') {
      await local.gateway.background.drain();
      reply({});
    }
  });
  // The tables travel with the keys: the Lambda bundle (bench/lambda-host.cjs) serves the same accounts.
  process.send!({ type: 'ready', url: local.baseUrl.replace(/\/v1$/, ''), keys, tables });
}

function memoryStore(writes?: Dynamo): DynamoStep {
  const reads = new Map<string, Promise<Record<string, unknown>>>();
  return (operation, input, next) => {
    if (operation === 'GetItem' || operation === 'BatchGetItem' || operation === 'Query') {
      const key = `${operation}${JSON.stringify(input)}`;
      let answer = reads.get(key);
      if (!answer) reads.set(key, (answer = next()));
      return answer;
    }
    // A write whose answer the gateway reads (the low-balance alert's disarm, `ALL_NEW`, about once
    // a minute per account: its failed condition tells the account has no alert) is answered by the
    // real store; answered {}, it threw on every settlement (a stack trace and an error log line a
    // request that real DynamoDB never causes, about 0.15 CPU-ms; issue 22).
    if ((input as { ReturnValues?: string }).ReturnValues === 'ALL_NEW') return next();
    return writes ? writes.call(operation, input).then(() => ({})) : Promise.resolve({});
  };
}

main().catch((err) => {
  process.stderr.write(`gateway failed to start: ${err?.stack ?? err}\n`);
  process.exit(1);
});
