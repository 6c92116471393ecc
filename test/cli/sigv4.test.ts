import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createHash, createHmac } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { main } from '../../lambda/cli/main';
import { apiGatewayRegion } from '../../lambda/cli/sigv4';

const CREDS = { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLETEST', AWS_SECRET_ACCESS_KEY: 'secret/EXAMPLE+key' };
const seen: Array<{ ok: boolean; reason?: string; method: string; path: string }> = [];

/** An independent SigV4 check (AWS's documented algorithm, written out here, not the signer the CLI uses). */
function verify(method: string, url: URL, headers: Headers, body: string, secret: string): string | undefined {
  const auth = headers.get('authorization') ?? '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return `bad authorization header '${auth.slice(0, 40)}'`;
  const [, akid, day, region, service, signedHeaders, signature] = m;
  if (akid !== CREDS.AWS_ACCESS_KEY_ID) return 'wrong access key id';
  if (service !== 'execute-api') return `wrong service ${service}`;
  const amzDate = headers.get('x-amz-date') ?? '';
  if (!amzDate.startsWith(day)) return 'x-amz-date does not match the scope';
  const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const query = [...url.searchParams].map(([k, v]) => [enc(k), enc(v)]).sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : 1) : a < b ? -1 : 1));
  const canonicalQuery = query.map(([k, v]) => `${k}=${v}`).join('&');
  const names = signedHeaders.split(';');
  if (!names.includes('host') || !names.includes('x-amz-date')) return 'host and x-amz-date must be signed';
  const canonicalHeaders = names.map((n) => `${n}:${(headers.get(n) ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonicalUri = url.pathname.split('/').map((s) => enc(decodeURIComponent(s))).map((s) => enc(s)).join('/');
  const hash = (s: string) => createHash('sha256').update(s).digest('hex');
  const canonical = [method, canonicalUri, canonicalQuery, canonicalHeaders, signedHeaders, hash(body)].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, hash(canonical)].join('\n');
  const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();
  const kSigning = hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), service), 'aws4_request');
  const expected = createHmac('sha256', kSigning).update(toSign).digest('hex');
  return expected === signature ? undefined : 'signature mismatch';
}

let server: ReturnType<typeof serve>;
let base: string;

beforeAll(async () => {
  const app = new Hono();
  app.all('*', async (c) => {
    const body = await c.req.text();
    const reason = verify(c.req.method, new URL(c.req.url), c.req.raw.headers, body, CREDS.AWS_SECRET_ACCESS_KEY);
    seen.push({ ok: !reason, reason, method: c.req.method, path: new URL(c.req.url).pathname });
    if (reason) return c.json({ message: `The request signature we calculated does not match: ${reason}` }, 403);
    if (c.req.header('authorization')?.startsWith('Bearer')) return c.json({ message: 'no bearer here' }, 400);
    if (c.req.path.endsWith('/tiers')) return c.json({ object: 'list', data: [{ object: 'tier', id: 'free', rpm: 10, tpm: 20000, models: null, description: null }] });
    return c.json({ object: 'tier', id: 'pro', rpm: 1, tpm: 2, models: null, description: null });
  });
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve());
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/prod/admin`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

test('with ITAPI_ADMIN_AUTH=sigv4 the CLI signs GET and PUT (body and query included) so an independent verifier accepts them', async () => {
  let out = '';
  let err = '';
  const io = {
    stdout: (t: string) => (out += t),
    stderr: (t: string) => (err += t),
    env: { ...CREDS, ITAPI_ADMIN_URL: base, ITAPI_ADMIN_AUTH: 'sigv4', AWS_REGION: 'eu-west-1', ITAPI_ADMIN_TOKEN: 'must-not-be-sent' },
  };
  expect(await main(['tiers', 'list'], io)).toBe(0);
  expect(out).toMatch(/^free\s+10\s+20000/m);
  expect(await main(['tiers', 'set', 'pro', '--rpm', '1', '--tpm', '2', '--description', 'a b  c'], io)).toBe(0);
  expect(await main(['usage', 'acct-1', '--from', '2024-01-01T00:00:00Z', '--to', '1700000000000', '--json'], io)).toBe(0);
  expect(err).toBe('');
  expect(seen.map((s) => [s.ok, s.reason, s.method, s.path])).toEqual([
    [true, undefined, 'GET', '/prod/admin/tiers'],
    [true, undefined, 'PUT', '/prod/admin/tiers/pro'],
    [true, undefined, 'GET', '/prod/admin/accounts/acct-1/usage'],
  ]);
});

test('a wrong secret is refused by the verifier and the CLI exits 1 with API Gateway’s message', async () => {
  let err = '';
  const code = await main(['tiers', 'list'], {
    stdout: () => undefined,
    stderr: (t) => (err += t),
    env: { AWS_ACCESS_KEY_ID: CREDS.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: 'wrong', ITAPI_ADMIN_URL: base, ITAPI_ADMIN_AUTH: 'sigv4', AWS_REGION: 'eu-west-1' },
  });
  expect(code).toBe(1);
  expect(err).toContain('HTTP 403');
  expect(err).toContain('signature mismatch');
});

test('execute-api URLs select SigV4 and give the region', () => {
  expect(apiGatewayRegion(new URL('https://abc123.execute-api.eu-west-1.amazonaws.com/prod/admin'))).toBe('eu-west-1');
  expect(apiGatewayRegion(new URL('https://example.com/admin'))).toBeUndefined();
  expect(apiGatewayRegion(new URL('http://127.0.0.1:8787/admin'))).toBeUndefined();
});
