import { openAiValidator } from '../support/openai-schema';
import { addKey, createAccount, startTestGateway, type TestGateway } from '../support/gateway';

let gw: TestGateway;
let auth: Record<string, string>;

beforeAll(async () => {
  gw = await startTestGateway();
  auth = { authorization: `Bearer ${gw.apiKey}`, 'content-type': 'application/json' };
});

afterAll(async () => {
  await gw.stop();
});

const RATE_HEADERS = [
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-tokens',
];

async function call(path: string, init: RequestInit = {}) {
  const res = await fetch(`${gw.baseUrl}${path}`, init);
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { res, body };
}

function expectError(body: unknown, type: string, code: string) {
  const validate = openAiValidator('ErrorResponse');
  expect(validate(body) ? [] : validate.errors).toEqual([]);
  expect(body).toMatchObject({ error: { type, code } });
  expect(Object.keys((body as { error: object }).error).sort()).toEqual(['code', 'message', 'param', 'type']);
}

const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };

describe('the HTTP contract', () => {
  it('answers bad JSON with 400 invalid_json', async () => {
    const { res, body } = await call('/chat/completions', { method: 'POST', headers: auth, body: '{"model": ' });
    expect(res.status).toBe(400);
    expectError(body, 'invalid_request_error', 'invalid_json');
  });

  it('answers a wrong content type with 415 in the OpenAI shape', async () => {
    const { res, body } = await call('/chat/completions', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'text/plain' },
      body: JSON.stringify(chat),
    });
    expect(res.status).toBe(415);
    expectError(body, 'invalid_request_error', 'unsupported_content_type');
  });

  it('answers an unknown route with 404 not_found, never HTML', async () => {
    const { res, body } = await call('/nothing-here', { headers: auth });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expectError(body, 'invalid_request_error', 'not_found');
  });

  it('answers a wrong method with 405', async () => {
    const { res, body } = await call('/chat/completions', { method: 'GET', headers: auth });
    expect(res.status).toBe(405);
    expectError(body, 'invalid_request_error', 'method_not_allowed');
  });

  it('answers a body over the limit with 413', async () => {
    const big = { ...chat, messages: [{ role: 'user', content: 'x'.repeat(7 * 1024 * 1024) }] };
    const { res, body } = await call('/chat/completions', { method: 'POST', headers: auth, body: JSON.stringify(big) });
    expect(res.status).toBe(413);
    expectError(body, 'invalid_request_error', 'request_too_large');
  });

  it('answers a validation failure with 400 naming the param', async () => {
    const { res, body } = await call('/chat/completions', {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ ...chat, messages: [{ role: 'user', content: [{ type: 'video' }] }] }),
    });
    expect(res.status).toBe(400);
    expectError(body, 'invalid_request_error', 'invalid_value');
    expect(body.error.param).toBe('messages[0].content[0].type');
  });

  describe('401 for every kind of bad credential', () => {
    it.each([
      ['missing header', {}],
      ['wrong scheme', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }],
      ['malformed key', { authorization: 'Bearer sk-abc' }],
      ['unknown key', { authorization: `Bearer it_${'A'.repeat(40)}` }],
    ])('%s', async (_name, headers) => {
      const { res, body } = await call('/models', { headers });
      expect(res.status).toBe(401);
      expectError(body, 'authentication_error', 'invalid_api_key');
      expect(res.headers.get('x-request-id')).toMatch(/^req_/);
    });

    it('revoked key', async () => {
      const acct = await createAccount(gw);
      expect((await call('/models', { headers: { authorization: `Bearer ${acct.key}` } })).res.status).toBe(200);
      await gw.gateway.stores.keys.revoke(acct.record.keyId);
      gw.gateway.auth.forget(acct.record.keyHash);
      const { res, body } = await call('/models', { headers: { authorization: `Bearer ${acct.key}` } });
      expect(res.status).toBe(401);
      expectError(body, 'authentication_error', 'invalid_api_key');
    });

    it('expired key', async () => {
      const acct = await createAccount(gw);
      const expired = await addKey(gw, acct.accountId, { expiresAtMs: Date.now() - 1000 });
      const { res, body } = await call('/models', { headers: { authorization: `Bearer ${expired.key}` } });
      expect(res.status).toBe(401);
      expectError(body, 'authentication_error', 'invalid_api_key');
    });
  });

  it('puts x-request-id and the six rate-limit headers on successes, errors and streams', async () => {
    const ok = await call('/chat/completions', { method: 'POST', headers: auth, body: JSON.stringify(chat) });
    const bad = await call('/chat/completions', { method: 'POST', headers: auth, body: JSON.stringify({ ...chat, n: 0 }) });
    const streamed = await fetch(`${gw.baseUrl}/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ ...chat, stream: true }) });
    await streamed.text();
    for (const res of [ok.res, bad.res, streamed]) {
      expect(res.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{24}$/);
      for (const name of RATE_HEADERS) expect(res.headers.get(name)).toBeTruthy();
      expect(res.headers.get('x-ratelimit-reset-requests')).toMatch(/^(\d+ms|\d+(\.\d+)?s|\d+m\d+(\.\d+)?s)$/);
    }
    expect(ok.res.headers.get('x-itapi-route')).toBe('mock:gpt-4o-mini');
    expect(ok.res.headers.get('x-request-id')).not.toBe(bad.res.headers.get('x-request-id'));
  });
});
