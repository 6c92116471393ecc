import type { CatalogFile } from '../../lambda/catalog';
import { addKey, catalogOf, createAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { completionBody, startUpstream } from '../support/upstream';

/** DynamoDB calls per request, counted by an SDK middleware on the gateway's own client. */
let gw: TestGateway;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
const calls: string[] = [];
const callsSeenByUpstream: string[][] = [];

beforeAll(async () => {
  upstream = await startUpstream((_req, body, res) => {
    callsSeenByUpstream.push([...calls]);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, 'ok')));
  });
  const catalog: CatalogFile = {
    models: {
      m: {
        owned_by: 'test',
        pricing: { input_per_mtok: 1, output_per_mtok: 2 },
        context_window: 1000,
        max_output_tokens: 100,
        routes: [{ provider: 'openai-compatible', base_url: upstream.url, model: 'm' }],
      },
    },
  };
  gw = await startTestGateway({ catalog: catalogOf(catalog), seedDemo: false });
  gw.dynamo.intercept((operation, input, next) => {
    // The usage roll-up: in the settlement's own transaction locally, the usage stream's consumer in AWS.
    const rollup = operation === 'TransactWriteItems' && JSON.stringify(input).includes(gw.gateway.stores.rollups.tableName);
    calls.push(rollup ? 'TransactWriteItems (with the roll-up)' : operation);
    return next();
  });
});

afterAll(async () => {
  await gw.stop();
  await upstream.close();
});

async function complete(key: string) {
  callsSeenByUpstream.length = 0;
  calls.length = 0;
  const res = await fetch(`${gw.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 }),
  });
  expect(res.status).toBe(200);
  await res.json();
  await gw.gateway.background.drain();
  return { beforeUpstream: callsSeenByUpstream[0], total: [...calls] };
}

describe('DynamoDB calls per request', () => {
  it('makes exactly one call before the upstream call when the key is cached, and one transaction after (the settlement, roll-up included)', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000 });
    await complete(acct.key); // warms the key, tier and account caches
    const warm = await complete(acct.key);
    expect(warm.beforeUpstream).toEqual(['TransactWriteItems']);
    // Admission, then the settlement carrying the usage roll-up (local mode): two calls in all.
    expect(warm.total).toEqual(['TransactWriteItems', 'TransactWriteItems (with the roll-up)']);
  });

  it('makes two calls before the upstream call when the key is not cached', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000 });
    await complete(acct.key);
    const second = await addKey(gw, acct.accountId, { tier: 'enterprise', rpm: 1000, tpm: 1_000_000 });
    const cold = await complete(second.key);
    expect(cold.beforeUpstream).toEqual(['GetItem', 'TransactWriteItems']);
  });
});
