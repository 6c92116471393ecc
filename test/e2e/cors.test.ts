import { startTestGateway, type TestGateway } from '../support/gateway';
import { SseBody } from '../../lambda/chat/sse-body';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({ env: { ITAPI_ADMIN_TOKEN: 'cors-admin', ITAPI_CORS_ORIGINS: 'https://app.example.com' } });
});
afterAll(() => gw.stop());

describe('CORS', () => {
  it('answers a preflight from an allowed origin, without credentials', async () => {
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(res.headers.get('access-control-allow-headers')).toMatch(/authorization/);
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('allows the methods the API has, DELETE included (DELETE /v1/responses/{id})', async () => {
    const res = await fetch(`${gw.baseUrl}/responses/resp_123`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(res.headers.get('access-control-allow-methods')!.split(',')).toEqual(['GET', 'POST', 'DELETE']);
  });

  it('gives the console (same-origin) no CORS headers', async () => {
    const res = await fetch(`${new URL(gw.baseUrl).origin}/console/`, { headers: { origin: 'https://app.example.com' } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('exposes the rate-limit headers on real answers to an allowed origin', async () => {
    const res = await fetch(`${gw.baseUrl}/models`, { headers: { origin: 'https://app.example.com', authorization: `Bearer ${gw.apiKey}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(res.headers.get('access-control-expose-headers')).toMatch(/x-ratelimit-remaining-requests/);
  });

  it('sets the CORS headers on error answers too, so a browser client can read the error (401, 404)', async () => {
    for (const [path, headers] of [
      ['/models', { authorization: 'Bearer it_not_a_key' }],
      ['/no-such-route', { authorization: `Bearer ${gw.apiKey}` }],
    ] as const) {
      const res = await fetch(`${gw.baseUrl}${path}`, { headers: { origin: 'https://app.example.com', ...headers } });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      expect(res.headers.get('access-control-expose-headers')).toMatch(/x-request-id/);
    }
  });

  it('does not echo an origin it was not given', async () => {
    const res = await fetch(`${gw.baseUrl}/models`, { headers: { origin: 'https://evil.example', authorization: `Bearer ${gw.apiKey}` } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('sets them on a stream without taking it off the direct write (no Web stream built)', async () => {
    // Hono's cors middleware set them before the handler, and Hono then rewrapped the answer over its Web body.
    const webStream = jest.spyOn(SseBody.prototype, 'stream');
    try {
      const res = await fetch(`${gw.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { origin: 'https://app.example.com', authorization: `Bearer ${gw.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
      expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      expect(res.headers.get('access-control-expose-headers')).toMatch(/x-ratelimit-remaining-tokens/);
      expect(res.headers.get('vary')).toMatch(/origin/i);
      expect(res.headers.get('x-request-id')).toMatch(/^req_/);
      expect(await res.text()).toContain('data: [DONE]');
      expect(webStream).not.toHaveBeenCalled();
    } finally {
      webStream.mockRestore();
    }
  });

  it('says Vary: Origin to a request from no origin, and sets no CORS header on it', async () => {
    const res = await fetch(`${gw.baseUrl}/models`, { headers: { authorization: `Bearer ${gw.apiKey}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('vary')).toMatch(/origin/i);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('access-control-expose-headers')).toBeNull();
  });
});

describe('corsAfterHandler', () => {
  it('sets the headers on an answer whose headers are immutable too (a copy over the same body), keeping its own and its body', async () => {
    const { Hono } = await import('hono');
    const { corsAfterHandler } = await import('../../lambda/app');
    const app = new Hono();
    app.use('/v1/*', corsAfterHandler(['https://app.example.com']));
    app.get('/v1/fetched', async () => {
      // A fetch answer's headers are immutable (a data: URL: no network).
      const res = await fetch('data:text/plain,fetched%20body');
      expect(() => res.headers.set('x', 'y')).toThrow(/immutable/);
      return res;
    });
    const res = await app.request('/v1/fetched', { headers: { origin: 'https://app.example.com' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    expect(await res.text()).toBe('fetched body');
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(res.headers.get('vary')).toBe('Origin');
  });
});
