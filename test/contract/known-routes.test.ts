import type { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { ADMIN_ROUTES } from '../../lambda/admin/app';
import { GATEWAY_ROUTES } from '../../lambda/app';
import { CONSOLE_ROUTES, createConsoleApp, type ConsoleDeps } from '../../lambda/console';
import { GatewayError, invalidApiKey } from '../../lambda/contract/errors';
import { allowedMethods, toGatewayError, type KnownRoutes } from '../../lambda/contract/http';
import { consoleApi, consoleOrigin, signIn, type ConsoleSession } from '../support/console';
import { createAccount, memoryLogger, startTestGateway, type TestGateway } from '../support/gateway';
import { openAiValidator } from '../support/openai-schema';

/**
 * 405s come from one list of known paths per app (GATEWAY_ROUTES, ADMIN_ROUTES, CONSOLE_ROUTES):
 * every path of each list answers every other method with 405, `Allow` and the error shape of its
 * wire, and each list is exactly what the app's router serves, so a new route cannot be left out.
 */

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** A request path for a route pattern. */
const concrete = (pattern: string) =>
  pattern.replace(':model{.+}', 'gpt-4o-mini').replace(':file', 'console.js').replace(/:id\b/g, 'x_1');

const wrongMethods = (methods: readonly string[]) => METHODS.filter((m) => !allowedMethods(methods as KnownRoutes[string]).includes(m));

/** The paths and methods a Hono app routes (catch-alls and middleware, registered for ALL, aside). */
function routesOf(app: Hono<any>, under: string): Record<string, string[]> {
  const found: Record<string, string[]> = {};
  for (const r of app.routes) {
    if (r.method === 'ALL' || !r.path.startsWith(under)) continue;
    const path = r.path.slice(under === '/' ? 0 : under.length) || '/';
    (found[path] ??= []).includes(r.method) || found[path].push(r.method);
  }
  return found;
}

const sorted = (routes: KnownRoutes | Record<string, string[]>) =>
  Object.fromEntries(
    Object.entries(routes)
      .map(([path, methods]): [string, string[]] => [path, [...methods].sort()])
      .sort(([a], [b]) => a.localeCompare(b)),
  );

let gw: TestGateway;
let key: string;
let session: ConsoleSession;

beforeAll(async () => {
  gw = await startTestGateway();
  const account = await createAccount(gw);
  key = account.key;
  session = await signIn(gw, account.accountId);
}, 60_000);

afterAll(async () => {
  await gw.stop();
});

const validateOpenAiError = openAiValidator('ErrorResponse');

async function expect405(res: Response, method: string, allowed: readonly string[], shape: 'openai' | 'anthropic') {
  expect({ method, status: res.status }).toEqual({ method, status: 405 });
  expect(res.headers.get('allow')).toBe(allowedMethods(allowed as KnownRoutes[string]).join(', '));
  if (method === 'HEAD') return;
  const body = await res.json();
  if (shape === 'anthropic') {
    expect(body).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining(`Method ${method}`) }, request_id: expect.stringMatching(/^req_/) });
    expect(res.headers.get('request-id')).toBe(body.request_id);
    expect(res.headers.get('x-request-id')).toBe(body.request_id);
  } else {
    expect(validateOpenAiError(body) ? [] : validateOpenAiError.errors).toEqual([]);
    expect(body.error).toMatchObject({ type: 'invalid_request_error', code: 'method_not_allowed' });
  }
}

describe('the gateway API (GATEWAY_ROUTES)', () => {
  it('is exactly what the app routes under /v1', () => {
    const v1 = Object.fromEntries(Object.entries(routesOf(gw.gateway.app, '/')).filter(([path]) => path.startsWith('/v1/')));
    expect(sorted(v1)).toEqual(sorted(GATEWAY_ROUTES));
  });

  const cases = Object.entries(GATEWAY_ROUTES).flatMap(([path, allowed]) => wrongMethods(allowed).map((method) => [path, method, allowed] as const));
  it.each(cases)('%s answers %s with 405 in its wire’s error shape', async (path, method, allowed) => {
    const anthropic = path.startsWith('/v1/messages');
    // A key (of either kind) changes nothing: the method is refused before the key is read.
    const headers: Record<string, string> = anthropic ? { 'x-api-key': key, 'anthropic-version': '2023-06-01' } : { authorization: `Bearer ${key}` };
    const res = await fetch(`${consoleOrigin(gw)}${concrete(path)}`, { method, headers });
    await expect405(res, method, allowed, anthropic ? 'anthropic' : 'openai');
  });

  it.each(Object.entries(GATEWAY_ROUTES))('%s serves its own methods (%s): no 405', async (path, allowed) => {
    for (const method of allowed) {
      const res = await fetch(`${consoleOrigin(gw)}${concrete(path)}`, { method, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
      // Without a key every route is refused as unauthenticated: the route was found and the method served.
      expect({ method, status: res.status }).toEqual({ method, status: 401 });
    }
  });

  it('keeps Anthropic’s shape for model discovery by an Anthropic client, OpenAI’s for others', async () => {
    const anthropic = await fetch(`${gw.baseUrl}/models/nope`, { headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01' } });
    expect(anthropic.status).toBe(404);
    expect(await anthropic.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    const openai = await fetch(`${gw.baseUrl}/models/nope`, { headers: { authorization: `Bearer ${key}` } });
    expect(openai.status).toBe(404);
    expect((await openai.json()).error).toMatchObject({ code: 'model_not_found' });
  });
});

describe('the admin API (ADMIN_ROUTES)', () => {
  it('is exactly what the admin app routes', () => {
    expect(sorted(routesOf(gw.gateway.app, '/admin'))).toEqual(sorted(ADMIN_ROUTES));
  });

  const cases = Object.entries(ADMIN_ROUTES).flatMap(([path, allowed]) => wrongMethods(allowed).map((method) => [path, method, allowed] as const));
  it.each(cases)('%s answers %s with 405', async (path, method, allowed) => {
    const res = await fetch(`${gw.adminUrl}${concrete(path)}`, { method, headers: { authorization: `Bearer ${gw.adminToken}` } });
    await expect405(res, method, allowed, 'openai');
  });
});

describe('the console (CONSOLE_ROUTES)', () => {
  it('is exactly what the console app routes', () => {
    // Only the router is read: no request reaches these deps.
    const app = createConsoleApp({ log: memoryLogger() } as unknown as ConsoleDeps);
    expect(sorted(routesOf(app, '/'))).toEqual(sorted(CONSOLE_ROUTES));
  });

  const cases = Object.entries(CONSOLE_ROUTES).flatMap(([path, allowed]) => wrongMethods(allowed).map((method) => [path, method, allowed] as const));
  it.each(cases)('%s answers %s with 405, signed in', async (path, method, allowed) => {
    const res = path.startsWith('/console/api/')
      ? await consoleApi(gw, session, method, concrete(path).slice('/console/api/'.length))
      : await fetch(`${consoleOrigin(gw)}${concrete(path)}`, { method, headers: { cookie: session.cookie, 'x-csrf-token': session.csrf, 'sec-fetch-site': 'same-origin' } });
    expect({ method, status: res.status }).toEqual({ method, status: 405 });
    expect(res.headers.get('allow')).toBe(allowedMethods(allowed).join(', '));
    if (path.startsWith('/console/api/') && method !== 'HEAD') expect((res as { json: { error: { code: string } } }).json.error.code).toBe('method_not_allowed');
  });
});

describe('toGatewayError: any failure as the error the client is answered with', () => {
  it('passes a GatewayError as it is', () => {
    const error = invalidApiKey();
    expect(toGatewayError(error)).toBe(error);
  });

  it('maps Hono’s HTTPException by its status: a body over bodyLimit is 413, the validator’s malformed JSON 400', () => {
    expect(toGatewayError(new HTTPException(413, { res: new Response('Payload Too Large', { status: 413 }) }))).toMatchObject({ status: 413, code: 'request_too_large' });
    const malformed = toGatewayError(new HTTPException(400, { message: 'Malformed JSON in request body' }));
    expect(malformed).toMatchObject({ status: 400, type: 'invalid_request_error', message: 'Malformed JSON in request body' });
    expect(toGatewayError(new HTTPException(401))).toMatchObject({ status: 401, type: 'authentication_error' });
    expect(toGatewayError(new HTTPException(503))).toMatchObject({ status: 500, code: 'internal_error' });
  });

  it('fails closed with 503 when an AWS dependency fails or cannot be reached', () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
    expect(toGatewayError(throttled)).toMatchObject({ status: 503, type: 'server_overloaded' });
    expect(toGatewayError(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }))).toMatchObject({ status: 503 });
    expect(toGatewayError(new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }))).toMatchObject({ status: 503 });
  });

  it('answers anything else, a stray SyntaxError from an upstream’s text included, as a 500 that keeps its cause', () => {
    const bug = new SyntaxError('Unexpected token < in JSON');
    const error = toGatewayError(bug);
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ status: 500, code: 'internal_error', cause: bug });
    expect(toGatewayError('a string')).toMatchObject({ status: 500 });
  });
});
