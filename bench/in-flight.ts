// Write units per request with N requests of one account in flight (issue 10): a local gateway
// over the given DynamoDB, a stand-in upstream that holds every answer until all N have arrived,
// and ReturnConsumedCapacity on the gateway's own DynamoDB client. Used by `npm run bench` and by
// test/money/scale.test.ts.
import { randomBytes } from 'node:crypto';
import { Agent, createServer, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { displayPrefix, generateApiKey, hashApiKey } from '../lambda/auth/api-key';
import { parseCatalog } from '../lambda/catalog';
import { startLocal, type LocalGateway } from '../lambda/entry/local-server';

export interface InFlightFigures {
  inFlight: number;
  /** Requests the upstream saw before any was answered: all of them were admitted at once. */
  admittedTogether: number;
  /** The account's `in_flight` while they were held. */
  accountInFlight: number;
  answered200: number;
  admissionUnitsPerRequest: number;
  settlementUnitsPerRequest: number;
  /** Size of the account item (JSON of its attributes) while they were held, in bytes. */
  accountItemBytes: number;
  seconds: number;
}

/** A POST over node:http, with no client-side timeout (fetch gives up on headers after 300 s); 0 when it fails. */
function post(url: string, key: string, body: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', agent: CLIENT_AGENT, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

const CLIENT_AGENT = new Agent({ keepAlive: true, maxSockets: Infinity });

const mean = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function writeUnitsInFlight(dynamoEndpoint: string, counts: number[], timeoutMs = 300_000): Promise<InFlightFigures[]> {
  const waiting: ServerResponse[] = [];
  const upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => waiting.push(res));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
  const suffix = randomBytes(6).toString('hex');
  const gw: LocalGateway = await startLocal({
    port: 0,
    env: { ITAPI_ADMIN_TOKEN: `inflight-${suffix}` },
    dynamoEndpoint,
    tables: { keys: `if-keys-${suffix}`, tiers: `if-tiers-${suffix}`, accounts: `if-accounts-${suffix}`, usage: `if-usage-${suffix}`, holds: `if-holds-${suffix}`, sessions: `if-sessions-${suffix}`, responses: `if-responses-${suffix}`, rollups: `if-rollups-${suffix}` },
    dataDir: mkdtempSync(join(tmpdir(), 'itapi-inflight-')),
    seedDemo: false,
    // The upstream holds every answer until all have arrived, which can take DynamoDB Local minutes.
    timeouts: { firstByteMs: timeoutMs + 60_000 },
    log: { info: () => undefined, error: () => undefined },
    catalog: parseCatalog(
      {
        models: {
          m: {
            owned_by: 'bench',
            pricing: { input_per_mtok: 1, output_per_mtok: 2 },
            context_window: 100_000,
            max_output_tokens: 100,
            routes: [{ provider: 'openai-compatible', base_url: upstreamUrl, model: 'up' }],
          },
        },
      },
      'in-flight',
    ),
  });
  const units = { admission: [] as number[], settlement: [] as number[] };
  const holdsTable = gw.gateway.stores.holds.tableName;
  gw.dynamo.intercept(async (operation, input, next) => {
    if (operation !== 'TransactWriteItems') return next();
    const items = input.TransactItems as Array<Record<string, { TableName?: string }>>;
    input.ReturnConsumedCapacity = 'TOTAL';
    const out = await next();
    const total = ((out.ConsumedCapacity as Array<{ CapacityUnits?: number }> | undefined) ?? []).reduce((s, c) => s + (c.CapacityUnits ?? 0), 0);
    if (items.some((i) => i.Put?.TableName === holdsTable)) units.admission.push(total);
    if (items.some((i) => i.Delete?.TableName === holdsTable)) units.settlement.push(total);
    return out;
  });
  try {
    const { stores } = gw.gateway;
    const accountId = `acct_${suffix}`;
    await stores.accounts.create({ id: accountId, name: 'in-flight', tier: 'enterprise', balanceMicroUsd: 0, status: 'active', createdAtMs: Date.now(), rpm: 10_000_000, tpm: 10_000_000_000 });
    await stores.accounts.topUp(accountId, 1_000_000_000, 'initial');
    const key = generateApiKey();
    await stores.keys.create({
      keyHash: hashApiKey(key),
      keyId: `key_${suffix}`,
      accountId,
      name: 'in-flight',
      prefix: displayPrefix(key),
      status: 'active',
      createdAtMs: Date.now(),
      accountTier: 'enterprise',
      accountRpm: 10_000_000,
      accountTpm: 10_000_000_000,
    });
    const out: InFlightFigures[] = [];
    for (const count of counts) {
      const started = Date.now();
      units.admission.length = 0;
      units.settlement.length = 0;
      waiting.length = 0;
      let ended = 0;
      let lastEnded = 0;
      const answers: Array<Promise<number>> = [];
      for (let i = 0; i < count; i++) {
        answers.push(
          post(`${gw.baseUrl}/chat/completions`, key, JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 })).then((status) => {
            ended++;
            lastEnded = status;
            return status;
          }),
        );
        // Connections opened in waves: a thousand at once overflow the server's listen backlog (511).
        if (i % 100 === 99) await sleep(100);
      }
      for (const deadline = Date.now() + timeoutMs; waiting.length < count; await sleep(50)) {
        if (ended > 0) throw new Error(`${ended} of ${count} requests ended before any was answered (the last with status ${lastEnded})`);
        if (Date.now() > deadline) throw new Error(`only ${waiting.length} of ${count} requests reached the upstream in ${timeoutMs} ms`);
      }
      // A call may reach the upstream while its admission is still in flight (overlapped admission, issue 22): the
      // answers are held until every request is also admitted, so no settlement overlaps an admission here.
      let account = await stores.accounts.get(accountId);
      for (const deadline = Date.now() + timeoutMs; (account?.inFlight ?? 0) < count && ended === 0; account = await stores.accounts.get(accountId)) {
        if (Date.now() > deadline) throw new Error(`only ${account?.inFlight} of ${count} requests were admitted in ${timeoutMs} ms`);
        await sleep(50);
      }
      const admittedTogether = waiting.length;
      // The size of the item as DynamoDB holds it (the parsed account would hide an attribute that grows).
      const item = JSON.stringify((await gw.dynamo.call('GetItem', { TableName: stores.accounts.tableName, Key: { account_id: { S: accountId } } })).Item);
      const body = JSON.stringify({
        id: 'c',
        object: 'chat.completion',
        created: 1,
        model: 'up',
        choices: [{ index: 0, message: { role: 'assistant', content: 'ok', refusal: null }, logprobs: null, finish_reason: 'stop' }],
        usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
      });
      for (const res of waiting) res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      const statuses = await Promise.all(answers);
      await gw.gateway.background.drain();
      out.push({
        inFlight: count,
        admittedTogether,
        accountInFlight: account?.inFlight ?? 0,
        answered200: statuses.filter((s) => s === 200).length,
        admissionUnitsPerRequest: mean(units.admission),
        settlementUnitsPerRequest: mean(units.settlement),
        accountItemBytes: item.length,
        seconds: (Date.now() - started) / 1000,
      });
    }
    return out;
  } finally {
    await gw.stop();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  }
}
