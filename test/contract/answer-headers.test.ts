// Issue 22: every endpoint's answer is built with the request scope's headers in it (x-request-id,
// the six rate-limit headers, the route, the lowered output limit, Anthropic's request-id), so
// that the app's outermost layer leaves it as built: no Web Headers read back and set one by one
// on the way to a stream's first byte. What the client gets is what the layer used to add.
import { SCOPED_HEADERS, type ScopedResponse } from '../../lambda/chat/pipeline';
import { createGateway, type Gateway } from '../../lambda/runtime';
import { fundedAccount } from '../support/accounts';
import { createTestTables, deleteTestTables } from '../support/dynamo';
import { memoryLogger, mockCatalog } from '../support/gateway';
import type { Dynamo } from '../../lambda/store/dynamo';
import type { TableNames } from '../../lambda/store/tables';

let gateway: Gateway;
let client: Dynamo;
let tables: TableNames;
let key: string;

beforeAll(async () => {
  ({ client, tables } = await createTestTables());
  gateway = createGateway({ dynamo: client, tables, catalog: mockCatalog(), providerKeys: { get: async () => undefined }, log: memoryLogger() });
  await gateway.stores.tiers.seed();
  ({ key } = await fundedAccount(gateway.stores, { tier: 'pro', creditsMicroUsd: 50_000_000, createdAtMs: 0 }));
});

afterAll(async () => {
  await gateway.background.drain();
  await deleteTestTables(client, tables);
});

const post = (path: string, body: object, headers: Record<string, string> = {}) =>
  gateway.app.fetch(
    new Request(`http://gateway.test${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    }),
  );

const RATE = ['limit', 'remaining', 'reset'].flatMap((p) => ['requests', 'tokens'].map((k) => `x-ratelimit-${p}-${k}`));

describe('answers carry the scope’s headers as built', () => {
  it.each([
    ['chat, JSON', '/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, 'application/json'],
    ['chat, stream', '/v1/chat/completions', { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }, 'text/event-stream'],
    ['messages, stream', '/v1/messages', { model: 'claude-3-5-sonnet-20241022', stream: true, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }, 'text/event-stream'],
    ['responses, stream', '/v1/responses', { model: 'gpt-4o-mini', stream: true, input: 'hi' }, 'text/event-stream'],
    ['embeddings', '/v1/embeddings', { model: 'text-embedding-3-small', input: 'hi' }, 'application/json'],
  ])('%s', async (_name, path, body, type) => {
    const res = (await post(path, body, path === '/v1/messages' ? { 'anthropic-version': '2023-06-01' } : {})) as ScopedResponse;
    const text = await res.text();
    expect(res.status).toBe(200);
    // Built with them: the outermost layer had nothing to add.
    expect(res[SCOPED_HEADERS]).toBeGreaterThan(0);
    expect(res.headers.get('content-type')).toContain(type);
    expect(res.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{24}$/);
    for (const name of RATE) expect(res.headers.get(name)).toBeTruthy();
    expect(res.headers.get('x-itapi-route')).toMatch(/^mock:/);
    if (path === '/v1/messages') expect(res.headers.get('request-id')).toBe(res.headers.get('x-request-id'));
    expect(text.length).toBeGreaterThan(0);
  });

  it('an answer refused before admission still gets the limits as last seen and its request id', async () => {
    const res = await post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], n: 0 });
    expect(res.status).toBe(400);
    await res.text();
    expect(res.headers.get('x-request-id')).toMatch(/^req_/);
    for (const name of RATE) expect(res.headers.get(name)).toBeTruthy();
  });
});
