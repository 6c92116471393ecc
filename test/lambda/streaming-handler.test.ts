import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { displayPrefix, generateApiKey, hashApiKey } from '../../lambda/auth/api-key';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { createStores } from '../../lambda/runtime';
import { bundleChat } from '../../scripts/bundle';
import { chatFunctionBundle } from '../infra/cdk-bundle';
import { functionUrlEvent, installAwsLambdaGlobal, ResponseStreamRecorder, restApiEvent } from '../support/awslambda-standin';
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
  await stores.accounts.create({ id: 'lambda-acct', name: 'lambda', tier: 'pro', balanceMicroUsd: 0, status: 'active', createdAtMs: Date.now() });
  await stores.accounts.topUp('lambda-acct', 5_000_000, 'initial');
  key = generateApiKey();
  await stores.keys.create({
    keyHash: hashApiKey(key),
    keyId: 'key_lambda',
    accountId: 'lambda-acct',
    name: 'lambda',
    prefix: displayPrefix(key),
    status: 'active',
    createdAtMs: Date.now(),
    accountTier: 'pro',
  });

  workDir = mkdtempSync(join(tmpdir(), 'itapi-bundle-'));
  catalogFile = join(workDir, 'catalog.json');
  const gpt = DEFAULT_CATALOG.models['gpt-4o'];
  writeFileSync(catalogFile, JSON.stringify({ models: { 'gpt-4o': { ...gpt, routes: [{ provider: 'openai-compatible', base_url: upstream.url, model: 'gpt-4o' }] } } }));
  Object.assign(process.env, {
    ITAPI_DYNAMODB_ENDPOINT: process.env.ITAPI_TEST_DYNAMODB_ENDPOINT,
    ITAPI_KEYS_TABLE: tables.keys,
    ITAPI_TIERS_TABLE: tables.tiers,
    ITAPI_ACCOUNTS_TABLE: tables.accounts,
    ITAPI_USAGE_TABLE: tables.usage,
    ITAPI_HOLDS_TABLE: tables.holds,
    ITAPI_RESPONSES_TABLE: tables.responses,
    ITAPI_MODELS: catalogFile,
    ITAPI_METRICS_NAMESPACE: 'ItapiTest',
    POWERTOOLS_METRICS_DISABLED: 'true',
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

const chatBody = (stream: boolean) => JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'count' }], stream, max_tokens: 20 });

const BUNDLES: Array<[string, () => Promise<string>]> = [
  ['esbuild bundle', async () => dirname((await bundleChat(join(workDir, 'esbuild'))).handlerFile)],
  ['bundle CDK produced', async () => chatFunctionBundle().dir],
];

describe.each(BUNDLES)('the %s', (_bundle, build) => {
  let handler: Handler;
  beforeAll(async () => {
    const dir = await build();
    expect(existsSync(join(dir, 'tokenizer.js'))).toBe(true);
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
});
