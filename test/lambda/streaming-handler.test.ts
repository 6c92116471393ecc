import { tableEnv } from '../../lambda/store/tables';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { createSignInLink } from '../../lambda/auth/sign-in';
import { createStores } from '../../lambda/runtime';
import { bundleChat } from '../../scripts/bundle';
import { chatFunctionBundle } from '../infra/cdk-bundle';
import { functionUrlEvent, installAwsLambdaGlobal, ResponseStreamRecorder, restApiEvent } from '../support/awslambda-standin';
import { fundedAccount } from '../support/accounts';
import { createTestTables } from '../support/dynamo';
import { validateChunk, validateCompletion, validateResponseEvent } from '../support/openai-schema';
import { startUpstream, streamEvents, completionBody } from '../support/upstream';

/**
 * The chat handler as it deploys, loaded in this process under a stand-in for the runtime's
 * `awslambda` global and driven with Function URL (v2) and REST API (v1) events: both the esbuild
 * bundle of lambda/entry/lambda.ts and the very bundle CDK produced for the stack.
 */
type Handler = (event: unknown, stream: ResponseStreamRecorder, context: unknown) => Promise<void>;

const CHUNK_GAP_MS = 40;
let key: string;
let catalogFile: string;
let workDir: string;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
let stores: ReturnType<typeof createStores>;

beforeAll(async () => {
  upstream = await startUpstream(async (_req, body, res) => {
    if (!body.stream) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, 'hello from upstream')));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const event of streamEvents(body.model, ['one ', 'two ', 'three ', 'four'])) {
      res.write(event);
      await new Promise((r) => setTimeout(r, CHUNK_GAP_MS));
    }
    res.end();
  });
  const { client, tables } = await createTestTables();
  stores = createStores(client, tables);
  await stores.tiers.seed();
  ({ key } = await fundedAccount(stores, { accountId: 'lambda-acct', creditsMicroUsd: 5_000_000 }));

  workDir = mkdtempSync(join(tmpdir(), 'itapi-bundle-'));
  catalogFile = join(workDir, 'catalog.json');
  const gpt = DEFAULT_CATALOG.models['gpt-4o'];
  writeFileSync(catalogFile, JSON.stringify({ models: { 'gpt-4o': { ...gpt, routes: [{ provider: 'openai-compatible', base_url: upstream.url, model: 'gpt-4o' }] } } }));
  Object.assign(process.env, {
    ITAPI_DYNAMODB_ENDPOINT: process.env.ITAPI_TEST_DYNAMODB_ENDPOINT,
    ...tableEnv(tables),
    ITAPI_MODELS: catalogFile,
    ITAPI_METRICS_NAMESPACE: 'ItapiTest',
    POWERTOOLS_METRICS_DISABLED: 'true',
    // As the template sets it for `corsOrigins` (lib/itapi-chat-function.ts): CORS is the app's alone.
    ITAPI_CORS_ORIGINS: CORS_ORIGIN,
  });
  installAwsLambdaGlobal();
}, 60_000);

/** Loads a bundle's handler as the runtime would: module scope runs once, with the function's environment. */
function loadHandler(dir: string): Handler {
  process.env.ITAPI_TOKENIZER_MODULE = join(dir, 'tokenizer.js');
  return require(join(dir, 'index.js')).handler;
}

afterAll(async () => {
  await upstream.close();
});

const CORS_ORIGIN = 'https://app.example.com';

const chatBody = (stream: boolean) => JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'count' }], stream, max_tokens: 20 });

const BUNDLES: Array<[string, () => Promise<string>]> = [
  ['esbuild bundle', async () => dirname((await bundleChat(join(workDir, 'esbuild'))).handlerFile)],
  ['bundle CDK produced', async () => chatFunctionBundle().dir],
];

describe.each(BUNDLES)('the %s', (_bundle, build) => {
  let handler: Handler;
  let dir: string;
  beforeAll(async () => {
    dir = await build();
    expect(existsSync(join(dir, 'tokenizer.js'))).toBe(true);
    expect(existsSync(join(dir, 'console.js'))).toBe(true);
    expect(existsSync(join(dir, 'console-client.js'))).toBe(true);
    handler = loadHandler(dir);
  }, 120_000);

  async function invoke(event: unknown) {
    const stream = new ResponseStreamRecorder();
    await handler(event, stream, { awsRequestId: 'test' });
    await stream.finished;
    return stream.parse();
  }

  describe.each([
    ['Function URL (payload v2)', functionUrlEvent],
    ['REST API (payload v1)', restApiEvent],
  ])('driven by %s', (_name, makeEvent) => {
  const headers = () => ({ authorization: `Bearer ${key}`, 'content-type': 'application/json' });

  it('streams SSE chunk by chunk with status and headers in the prelude', async () => {
    const { prelude, body, bodyWrites } = await invoke(makeEvent('POST', '/v1/chat/completions', headers(), chatBody(true)));
    expect(prelude.statusCode).toBe(200);
    expect(prelude.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(prelude.headers['x-request-id']).toMatch(/^req_/);
    expect(prelude.headers['x-ratelimit-limit-requests']).toBe('300');
    const events = body.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
    expect(events[events.length - 1]).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    chunks.forEach(validateChunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('one two three four');
    // Relayed as they came: the body arrived in several writes spread over the upstream's gaps.
    expect(bodyWrites.length).toBeGreaterThanOrEqual(chunks.length);
    expect(bodyWrites[bodyWrites.length - 1].atMs - bodyWrites[0].atMs).toBeGreaterThanOrEqual(3 * CHUNK_GAP_MS);
  });

  it('streams a Responses API answer event by event, stored before response.completed', async () => {
    const body = JSON.stringify({ model: 'gpt-4o', input: 'count', stream: true, max_output_tokens: 20 });
    const { prelude, body: text, bodyWrites } = await invoke(makeEvent('POST', '/v1/responses', headers(), body));
    expect(prelude.statusCode).toBe(200);
    expect(prelude.headers['content-type']).toMatch(/^text\/event-stream/);
    const events = text.split('\n\n').filter(Boolean).map((e) => JSON.parse(e.split('\n').find((l) => l.startsWith('data: '))!.slice(6)));
    events.forEach(validateResponseEvent);
    const last = events[events.length - 1];
    expect(last.type).toBe('response.completed');
    expect(last.response.output[0].content[0].text).toBe('one two three four');
    expect(bodyWrites.length).toBeGreaterThan(3);
    const stored = await invoke(makeEvent('GET', `/v1/responses/${last.response.id}`, headers()));
    expect(stored.prelude.statusCode).toBe(200);
    expect(JSON.parse(stored.body).output).toEqual(last.response.output);
  });

  it('answers JSON completions', async () => {
    const { prelude, body } = await invoke(makeEvent('POST', '/v1/chat/completions', headers(), chatBody(false)));
    expect(prelude.statusCode).toBe(200);
    const completion = JSON.parse(body);
    validateCompletion(completion);
    expect(completion.choices[0].message.content).toBe('hello from upstream');
  });

  it('reads a JSON API body from the event itself: bad JSON, a body over the limit, and every POST route', async () => {
    const bad = await invoke(makeEvent('POST', '/v1/chat/completions', headers(), '{"model": "gpt-4o", '));
    expect(bad.prelude.statusCode).toBe(400);
    expect(JSON.parse(bad.body).error.code).toBe('invalid_json');
    const huge = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x'.repeat(4 * 1024 * 1024) }] });
    const tooLarge = await invoke(makeEvent('POST', '/v1/chat/completions', headers(), huge));
    expect(tooLarge.prelude.statusCode).toBe(413);
    expect(JSON.parse(tooLarge.body).error.type).toBe('invalid_request_error');
    // Each route answers from what its body says (a model it does not serve), so each read it.
    const count = await invoke(makeEvent('POST', '/v1/messages/count_tokens', headers(), JSON.stringify({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] })));
    expect(count.body).toMatch(/no-such-model/);
    const embeddings = await invoke(makeEvent('POST', '/v1/embeddings', headers(), JSON.stringify({ model: 'no-such-model', input: 'hi' })));
    expect(embeddings.body).toMatch(/no-such-model/);
    const responses = await invoke(makeEvent('POST', '/v1/responses', headers(), JSON.stringify({ model: 'no-such-model', input: 'hi' })));
    expect(responses.body).toMatch(/no-such-model/);
    const messages = await invoke(makeEvent('POST', '/v1/messages', headers(), JSON.stringify({ model: 'no-such-model', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] })));
    expect(messages.body).toMatch(/no-such-model/);
  });

  it('answers a CORS preflight for DELETE itself, the allowed origin set once', async () => {
    const { prelude } = await invoke(
      makeEvent('OPTIONS', '/v1/responses/resp_123', { origin: CORS_ORIGIN, 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization' }),
    );
    expect(prelude.statusCode).toBe(204);
    expect(prelude.headers['access-control-allow-origin']).toBe(CORS_ORIGIN);
    expect(prelude.headers['access-control-allow-methods']!.split(',')).toEqual(['GET', 'POST', 'DELETE']);
    expect(prelude.headers['access-control-allow-headers']).toMatch(/authorization/);
  });

  it('sets CORS headers on a real answer once, and none for another origin', async () => {
    const { prelude } = await invoke(makeEvent('GET', '/v1/models', { ...headers(), origin: CORS_ORIGIN }));
    expect(prelude.statusCode).toBe(200);
    expect(prelude.headers['access-control-allow-origin']).toBe(CORS_ORIGIN);
    expect(prelude.headers['access-control-expose-headers']).toMatch(/x-request-id/);
    const other = await invoke(makeEvent('GET', '/v1/models', { ...headers(), origin: 'https://evil.example' }));
    expect(other.prelude.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers errors with their status and the OpenAI error body', async () => {
    const { prelude, body } = await invoke(makeEvent('GET', '/v1/models', { authorization: 'Bearer it_wrong' }));
    expect(prelude.statusCode).toBe(401);
    expect(JSON.parse(body).error.code).toBe('invalid_api_key');
  });

  it('settles before the invocation ends, after the last byte', async () => {
    const before = (await stores.usage.all('lambda-acct')).length;
    const { prelude } = await invoke(makeEvent('POST', '/v1/chat/completions', headers(), chatBody(true)));
    expect(prelude.statusCode).toBe(200);
    // No drain here: the handler itself awaited settlement.
    expect((await stores.usage.all('lambda-acct')).length).toBe(before + 1);
  });
});

  describe.each([
    ['Function URL (payload v2)', functionUrlEvent],
    ['REST API (payload v1)', restApiEvent],
  ])('serves the console (loaded from console.js on first use) to %s', (_name, makeEvent) => {
    it('signs in with a one-time link: a __Host- cookie, Secure and SameSite=Strict, then the API answers with it', async () => {
      const link = await createSignInLink(stores.sessions, 'lambda-acct', 'https://abc.lambda-url.us-east-1.on.aws/console/', Date.now());
      const token = new URL(link.url).hash.slice(1);
      const page = await invoke(makeEvent('GET', '/console/sign-in', {}));
      expect(page.prelude.statusCode).toBe(200);
      expect(page.prelude.headers['content-security-policy']).toContain("script-src 'self'");
      expect(page.body).toContain('data-page="sign-in"');

      const signIn = await invoke(
        makeEvent('POST', '/console/session', { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' }, `token=${token}`),
      );
      expect(signIn.prelude.statusCode).toBe(303);
      expect(signIn.prelude.headers.location).toBe('./');
      expect(signIn.prelude.cookies).toHaveLength(1);
      const cookie = signIn.prelude.cookies![0];
      expect(cookie).toMatch(/^__Host-itapi_console=[A-Za-z0-9_-]{43}; Max-Age=43200; Path=\/; HttpOnly; Secure; SameSite=Strict$/);

      const account = await invoke(makeEvent('GET', '/console/api/account', { cookie: cookie.split(';')[0] }));
      expect(account.prelude.statusCode).toBe(200);
      expect(JSON.parse(account.body)).toMatchObject({ object: 'account', id: 'lambda-acct' });
      // The same cookie without the __Host- prefix is not the session on https.
      const plain = await invoke(makeEvent('GET', '/console/api/account', { cookie: cookie.split(';')[0].replace('__Host-', '') }));
      expect(plain.prelude.statusCode).toBe(401);

      const script = await invoke(makeEvent('GET', '/console/assets/console.js', {}));
      expect(script.prelude.statusCode).toBe(200);
      expect(script.body).toBe(readFileSync(join(dir, 'console-client.js'), 'utf8'));
    });
  });
});

/** A client that goes away after the first body bytes: every later write fails, as a closed connection's do. */
class ClientGoneStream extends ResponseStreamRecorder {
  private bodyWrites = 0;

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (err?: Error) => void): void {
    const isPrelude = this.writes.length < 2;
    if (!isPrelude && ++this.bodyWrites > 1) return callback(new Error('client went away'));
    super._write(chunk, encoding, callback);
  }
}

describe('the streaming entry', () => {
  let dir: string;
  beforeAll(async () => {
    dir = dirname((await bundleChat(join(workDir, 'entry'))).handlerFile);
  }, 120_000);

  /** A fresh module instance of the bundle, as a new Lambda execution environment loads it. */
  function loadFresh(): Handler {
    process.env.ITAPI_TOKENIZER_MODULE = join(dir, 'tokenizer.js');
    let loaded: Handler | undefined;
    jest.isolateModules(() => {
      loaded = require(join(dir, 'index.js')).handler;
    });
    return loaded!;
  }

  const headers = () => ({ authorization: `Bearer ${key}`, 'content-type': 'application/json' });

  afterEach(() => installAwsLambdaGlobal());

  it('takes the runtime’s streamifyResponse as it is: read-only, it serves all the same', async () => {
    installAwsLambdaGlobal();
    // Only these two: the AWS SDK itself adds a property to the global (InvokeStore).
    const runtime = (globalThis as Record<string, unknown>).awslambda as Record<string, unknown>;
    Object.defineProperty(runtime, 'streamifyResponse', { writable: false, configurable: false });
    Object.freeze(runtime.HttpResponseStream);
    const handler = loadFresh();
    for (let i = 0; i < 2; i++) {
      const stream = new ResponseStreamRecorder();
      await handler(functionUrlEvent('POST', '/v1/chat/completions', headers(), chatBody(false)), stream, { awsRequestId: `frozen-${i}` });
      await stream.finished;
      expect(stream.parse().prelude.statusCode).toBe(200);
    }
  });

  it('fails at init with a reason when the runtime offers no response streaming', () => {
    delete (globalThis as Record<string, unknown>).awslambda;
    expect(() => loadFresh()).toThrow(/awslambda.*streamifyResponse.*RESPONSE_STREAM/s);
  });

  it('when the client goes away mid-stream, stops the upstream and settles before the invocation ends', async () => {
    const handler = loadFresh();
    const before = (await stores.usage.all('lambda-acct')).length;
    const upstreamClosed = new Promise<void>((resolve) => upstream.server.once('request', (_req, res) => res.once('close', () => resolve())));
    const stream = new ClientGoneStream();
    stream.on('error', () => undefined);
    const startedMs = Date.now();
    await handler(functionUrlEvent('POST', '/v1/chat/completions', headers(), chatBody(true)), stream, { awsRequestId: 'gone' });
    // No drain here: what the handler awaited is all a frozen environment would have done.
    const entries = await stores.usage.all('lambda-acct');
    expect(entries.length).toBe(before + 1);
    const entry = entries.sort((a, b) => a.atMs - b.atMs).at(-1)!;
    expect(entry).toMatchObject({ clientAborted: true, stream: true, status: 'aborted', httpStatus: 200 });
    expect(entry.amountMicroUsd).toBeLessThan(0); // the prompt and what was delivered are billed
    await upstreamClosed;
    // Stopped early: the upstream would have taken 4 gaps to finish.
    expect(Date.now() - startedMs).toBeLessThan(5_000);
  });
});

