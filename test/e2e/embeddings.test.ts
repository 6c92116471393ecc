import { OpenAIEmbeddings } from '@langchain/openai';
import type { IncomingHttpHeaders } from 'node:http';
import OpenAI from 'openai';
import type { CatalogFile } from '../../lambda/catalog';
import { float32Base64 } from '../../lambda/contract/embeddings';
import { estimateEmbeddingTokens } from '../../lambda/embeddings/create-embeddings';
import { warmTokenizer } from '../../lambda/money/tokens';
import { defaultProviders } from '../../lambda/providers';
import { catalogOf, createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { openAiValidator } from '../support/openai-schema';
import { startUpstream } from '../support/upstream';
import { bedrockEmbeddingHandler, standInTokens, standInVector } from '../providers/bedrock/embedding-stand-in';
import { testBedrockProvider } from '../providers/bedrock/stand-in';
import { StandIn } from '../providers/stand-in';
import { books, expectBooksBalance, expectErrorBody, sleep } from '../reliability/support';

/**
 * `POST /v1/embeddings` through the whole gateway: the official `openai` client (its default
 * base64 and explicit float) and LangChain's OpenAIEmbeddings, against an OpenAI-compatible
 * stand-in that records what it was sent, a Bedrock stand-in (Titan, Cohere) and the mock.
 */

/** $1,000 per million input tokens: 1,000 micro-USD a token, so every token shows in the books. */
const PRICE = { input_per_mtok: 1000 };
const MICRO_USD_PER_TOKEN = 1000;
const UPSTREAM_DIMENSIONS = 32;
const UPSTREAM_KEY = 'sk-upstream-embeddings-test';

interface UpstreamCall {
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

let gw: TestGateway;
let acct: TestAccount;
let client: OpenAI;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
const upstreamCalls: UpstreamCall[] = [];
const bedrock = new StandIn('h2c');

/** The OpenAI-compatible stand-in: vectors from the text, in the format asked, one token per word (+1) per input. */
function answerEmbeddings(path: string, body: Record<string, unknown>): { status: number; json: unknown; delayMs?: number } {
  if (path.startsWith('/broken/')) return { status: 500, json: { error: { message: 'upstream broke', type: 'server_error' } } };
  const raw = body.input as string | string[] | number[] | number[][];
  const inputs: Array<string | number[]> = typeof raw === 'string' ? [raw] : typeof raw[0] === 'number' ? [raw as number[]] : (raw as Array<string | number[]>);
  const dimensions = typeof body.dimensions === 'number' ? body.dimensions : UPSTREAM_DIMENSIONS;
  const base64 = (body.encoding_format === 'base64' && !path.startsWith('/floats/')) || path.startsWith('/base64/');
  let data = inputs.map((input, index) => {
    const vector = standInVector(typeof input === 'string' ? input : `tokens:${input.join(',')}`, dimensions);
    return { object: 'embedding', index, embedding: base64 ? float32Base64(vector) : vector };
  });
  if (path.startsWith('/reversed/')) data = [...data].reverse();
  const tokens = inputs.reduce((sum, input) => sum + (typeof input === 'string' ? standInTokens(input) : input.length), 0);
  const usage = path.startsWith('/nousage/') ? {} : { usage: { prompt_tokens: tokens, total_tokens: tokens } };
  return { status: 200, json: { object: 'list', data, model: body.model, ...usage }, delayMs: path.startsWith('/slow/') ? 400 : 0 };
}

beforeAll(async () => {
  await warmTokenizer();
  upstream = await startUpstream(async (req, body, res) => {
    upstreamCalls.push({ path: req.url ?? '', headers: req.headers, body });
    const answer = answerEmbeddings(req.url ?? '', body);
    if (answer.delayMs) await sleep(answer.delayMs);
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer.json));
  });
  const origin = upstream.url.replace(/\/v1$/, '');
  const bedrockUrl = await bedrock.start();
  bedrock.handler = bedrockEmbeddingHandler();
  const embedding = (routes: CatalogFile['models'][string]['routes'], extra: Partial<CatalogFile['models'][string]> = {}) => ({
    kind: 'embedding' as const,
    owned_by: 'test',
    pricing: PRICE,
    context_window: 8191,
    routes,
    ...extra,
  });
  const openAiRoute = (prefix = '') => ({ provider: 'openai-compatible' as const, base_url: `${origin}${prefix}/v1`, secret: 'up', model: 'upstream-embed-model' });
  const catalog: CatalogFile = {
    models: {
      'emb-up': embedding([openAiRoute()], { dimensions: UPSTREAM_DIMENSIONS }),
      'emb-up-floats': embedding([openAiRoute('/floats')]),
      'emb-up-base64': embedding([openAiRoute('/base64')]),
      'emb-up-reversed': embedding([openAiRoute('/reversed')]),
      'emb-up-nousage': embedding([openAiRoute('/nousage')]),
      'emb-up-slow': embedding([openAiRoute('/slow')]),
      'emb-broken': embedding([openAiRoute('/broken')]),
      'emb-fallback': embedding([openAiRoute('/broken'), { provider: 'mock', model: 'mock-embed' }]),
      'emb-mock': embedding([{ provider: 'mock', model: 'mock-embed' }], { dimensions: 64 }),
      'emb-titan': embedding([{ provider: 'bedrock', base_url: bedrockUrl, region: 'us-east-1', model: 'amazon.titan-embed-text-v2:0' }], { dimensions: 1024 }),
      'emb-cohere': embedding([{ provider: 'bedrock', base_url: bedrockUrl, region: 'us-east-1', model: 'cohere.embed-english-v3' }], { dimensions: 1024 }),
      'chat-mock': {
        owned_by: 'test',
        pricing: { input_per_mtok: 1, output_per_mtok: 2 },
        context_window: 8000,
        max_output_tokens: 100,
        routes: [{ provider: 'mock', model: 'chat-mock' }],
      },
    },
  };
  gw = await startTestGateway({
    catalog: catalogOf(catalog),
    env: { ITAPI_ADMIN_TOKEN: 'test-admin-embeddings', ITAPI_SECRET_UP: UPSTREAM_KEY },
    providers: { ...defaultProviders(), bedrock: testBedrockProvider() },
  });
  acct = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
  client = new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 0 });
});

afterAll(async () => {
  await gw.stop();
  await upstream.close();
  await bedrock.stop();
});

/** What the gateway holds and counts for one text of a non-Claude model before the provider's count is known. */
const gatewayCount = (text: string) => estimateEmbeddingTokens({ kind: 'text', texts: [text] }, { tokenizer: 'o200k_base', tokenRules: { image: { kind: 'tiles', base: 85, tile: 170 }, textMargin: 1 } });

const lastUpstream = () => upstreamCalls[upstreamCalls.length - 1];
const tokensOf = (texts: string[]) => texts.reduce((sum, t) => sum + standInTokens(t), 0);

function postEmbeddings(key: string, body: unknown): Promise<Response> {
  return fetch(`${gw.baseUrl}/embeddings`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

function expectValidFloatAnswer(body: unknown): void {
  const validate = openAiValidator('CreateEmbeddingResponse');
  expect(validate(body) ? [] : validate.errors).toEqual([]);
}

describe('the openai client', () => {
  it('by default asks for base64, which passes through, and gets float arrays of the right length decoded by the SDK', async () => {
    const texts = ['hello world', 'a second input'];
    const { data: answer, response } = await client.embeddings.create({ model: 'emb-up', input: texts }).withResponse();
    expect(lastUpstream().body).toEqual({ model: 'upstream-embed-model', input: texts, encoding_format: 'base64' });
    expect(lastUpstream().headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(answer.data.map((d) => d.embedding)).toEqual(texts.map((t) => standInVector(t, UPSTREAM_DIMENSIONS)));
    expect(answer.data.map((d) => d.index)).toEqual([0, 1]);
    expect(answer.model).toBe('emb-up');
    expect(answer.usage).toEqual({ prompt_tokens: tokensOf(texts), total_tokens: tokensOf(texts) });
    expect(response.headers.get('x-itapi-route')).toBe('openai-compatible:upstream-embed-model');
    expect(response.headers.get('x-ratelimit-limit-tokens')).toBeTruthy();
  });

  it('answers base64 on the wire as little-endian float32, the upstream’s string untouched', async () => {
    const res = await postEmbeddings(acct.key, { model: 'emb-up', input: 'hello world', encoding_format: 'base64' });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.data[0].embedding).toBe(float32Base64(standInVector('hello world', UPSTREAM_DIMENSIONS)));
    expect(body).toMatchObject({ object: 'list', model: 'emb-up', data: [{ object: 'embedding', index: 0 }] });
  });

  it('with encoding_format float gets numbers that validate against CreateEmbeddingResponse', async () => {
    const answer = await client.embeddings.create({ model: 'emb-up', input: 'just one', encoding_format: 'float' });
    expectValidFloatAnswer(answer);
    expect(lastUpstream().body.encoding_format).toBe('float');
    expect(answer.data[0].embedding).toEqual(standInVector('just one', UPSTREAM_DIMENSIONS));
  });

  it('sends no encoding_format upstream when the client sent none, and answers floats', async () => {
    const res = await postEmbeddings(acct.key, { model: 'emb-up', input: ['x y'] });
    const body = await res.json();
    expectValidFloatAnswer(body);
    expect(lastUpstream().body).toEqual({ model: 'upstream-embed-model', input: ['x y'] });
    expect(body.data[0].embedding).toEqual(standInVector('x y', UPSTREAM_DIMENSIONS));
  });

  it('converts floats to base64 when an upstream ignores base64: the SDK still gets whole vectors, not a quarter of them', async () => {
    const answer = await client.embeddings.create({ model: 'emb-up-floats', input: ['abc def', 'ghi'] });
    expect(lastUpstream().body.encoding_format).toBe('base64');
    expect(answer.data.map((d) => d.embedding)).toEqual([standInVector('abc def', UPSTREAM_DIMENSIONS), standInVector('ghi', UPSTREAM_DIMENSIONS)]);
  });

  it('converts base64 to floats for a client that asked for floats when an upstream answers base64 anyway', async () => {
    const answer = await client.embeddings.create({ model: 'emb-up-base64', input: ['q r', 's'], encoding_format: 'float' });
    expect(lastUpstream().body.encoding_format).toBe('float');
    expectValidFloatAnswer(answer);
    expect(answer.data.map((d) => d.embedding)).toEqual([standInVector('q r', UPSTREAM_DIMENSIONS), standInVector('s', UPSTREAM_DIMENSIONS)]);
  });

  it('puts vectors at their input’s index when the upstream answers out of order', async () => {
    const texts = ['one', 'two two', 'three three three'];
    const answer = await client.embeddings.create({ model: 'emb-up-reversed', input: texts, encoding_format: 'float' });
    expect(answer.data.map((d) => d.embedding)).toEqual(texts.map((t) => standInVector(t, UPSTREAM_DIMENSIONS)));
    expect(answer.data.map((d) => d.index)).toEqual([0, 1, 2]);
  });

  it('passes dimensions, user and unknown fields through to the upstream, with the upstream’s model id', async () => {
    const answer = await client.embeddings.create({ model: 'emb-up', input: 'short', dimensions: 8, user: 'user-42' });
    expect(lastUpstream().body).toEqual({ model: 'upstream-embed-model', input: 'short', dimensions: 8, user: 'user-42', encoding_format: 'base64' });
    expect(answer.data[0].embedding).toHaveLength(8);
    await postEmbeddings(acct.key, { model: 'emb-up', input: 'short', input_type: 'query', truncate: 'END' });
    expect(lastUpstream().body).toMatchObject({ input_type: 'query', truncate: 'END' });
  });

  it('passes token arrays through and bills what the upstream counted', async () => {
    const answer = await client.embeddings.create({ model: 'emb-up', input: [[1, 2, 3], [40, 50]], encoding_format: 'float' });
    expect(lastUpstream().body.input).toEqual([[1, 2, 3], [40, 50]]);
    expect(answer.usage.prompt_tokens).toBe(5);
    const single = await client.embeddings.create({ model: 'emb-up', input: [7, 8, 9, 10], encoding_format: 'float' });
    expect(single.data).toHaveLength(1);
    expect(single.usage.prompt_tokens).toBe(4);
  });
});

describe('LangChain OpenAIEmbeddings with a custom base URL', () => {
  it('embeds a query and documents (base64 on the wire) into whole vectors', async () => {
    const embeddings = new OpenAIEmbeddings({ model: 'emb-up', apiKey: acct.key, configuration: { baseURL: gw.baseUrl }, maxRetries: 0 });
    const query = await embeddings.embedQuery('what is an embedding');
    expect(lastUpstream().body).toMatchObject({ model: 'upstream-embed-model', input: 'what is an embedding', encoding_format: 'base64' });
    expect(query).toEqual(standInVector('what is an embedding', UPSTREAM_DIMENSIONS));
    const docs = await embeddings.embedDocuments(['first document', 'second document']);
    expect(lastUpstream().body).toMatchObject({ input: ['first document', 'second document'], encoding_format: 'base64' });
    expect(docs).toEqual([standInVector('first document', UPSTREAM_DIMENSIONS), standInVector('second document', UPSTREAM_DIMENSIONS)]);
  });

  it('asks for dimensions and floats when configured so', async () => {
    const embeddings = new OpenAIEmbeddings({
      model: 'emb-up',
      apiKey: acct.key,
      configuration: { baseURL: gw.baseUrl },
      maxRetries: 0,
      dimensions: 16,
      encodingFormat: 'float',
    });
    const [vector] = await embeddings.embedDocuments(['sixteen']);
    expect(lastUpstream().body).toMatchObject({ dimensions: 16, encoding_format: 'float' });
    expect(vector).toEqual(standInVector('sixteen', 16));
  });
});

describe('Bedrock routes', () => {
  it('serves Titan Text Embeddings v2 with dimensions, one call per text, base64 for the SDK’s default', async () => {
    const texts = ['titan one', 'titan two words'];
    const calls = bedrock.requests.length;
    const { data: answer, response } = await client.embeddings.create({ model: 'emb-titan', input: texts, dimensions: 256 }).withResponse();
    expect(bedrock.requests.length - calls).toBe(2);
    expect(answer.data.map((d) => d.embedding)).toEqual(texts.map((t) => standInVector(t, 256)));
    expect(answer.usage.prompt_tokens).toBe(tokensOf(texts));
    expect(response.headers.get('x-itapi-route')).toBe('bedrock:amazon.titan-embed-text-v2:0');
  });

  it('refuses dimensions Titan does not support with a 400 and charges nothing', async () => {
    const before = (await books(gw, acct.accountId)).balance;
    const res = await postEmbeddings(acct.key, { model: 'emb-titan', input: 'x', dimensions: 300 });
    expect(res.status).toBe(400);
    const body = await res.json();
    expectErrorBody(body, 'invalid_request_error');
    expect(body.error.param).toBe('dimensions');
    expect((await books(gw, acct.accountId)).balance).toBe(before);
  });

  it('serves Cohere Embed in float, with search_document by default', async () => {
    const answer = await client.embeddings.create({ model: 'emb-cohere', input: ['cohere text'], encoding_format: 'float' });
    expectValidFloatAnswer(answer);
    expect(JSON.parse(bedrock.requests[bedrock.requests.length - 1].body.toString())).toEqual({ texts: ['cohere text'], input_type: 'search_document' });
    expect(answer.data[0].embedding).toEqual(standInVector('cohere text', 1024));
  });
});

describe('the mock provider', () => {
  it('answers deterministic unit vectors of the catalog’s length; a shorter dimensions is the longer vector cut and renormalized', async () => {
    const a = await client.embeddings.create({ model: 'emb-mock', input: ['alpha', 'beta'] });
    const again = await client.embeddings.create({ model: 'emb-mock', input: 'alpha' });
    expect(a.data[0].embedding).toHaveLength(64);
    expect(again.data[0].embedding).toEqual(a.data[0].embedding);
    expect(a.data[1].embedding).not.toEqual(a.data[0].embedding);
    const norm = Math.hypot(...a.data[0].embedding);
    expect(norm).toBeCloseTo(1, 5);
    const short = await client.embeddings.create({ model: 'emb-mock', input: 'alpha', dimensions: 16, encoding_format: 'float' });
    const prefix = a.data[0].embedding.slice(0, 16);
    const prefixNorm = Math.hypot(...prefix);
    short.data[0].embedding.forEach((v, i) => expect(v).toBeCloseTo(prefix[i] / prefixNorm, 5));
  });
});

describe('validation', () => {
  it.each([
    ['no input', { model: 'emb-up' }, 'input', 'missing_required_parameter'],
    ['no model', { input: 'x' }, 'model', 'missing_required_parameter'],
    ['an empty string', { model: 'emb-up', input: '' }, 'input', 'invalid_value'],
    ['an empty string in an array', { model: 'emb-up', input: ['a', ''] }, 'input[1]', 'invalid_value'],
    ['an empty array', { model: 'emb-up', input: [] }, 'input', 'invalid_value'],
    ['a number as input', { model: 'emb-up', input: 5 }, 'input', 'invalid_value'],
    ['an empty token array', { model: 'emb-up', input: [[1, 2], []] }, 'input[1]', 'invalid_value'],
    ['2,049 inputs', { model: 'emb-up', input: Array.from({ length: 2049 }, () => 'a') }, 'input', 'invalid_value'],
    ['dimensions 0', { model: 'emb-up', input: 'x', dimensions: 0 }, 'dimensions', 'invalid_value'],
    ['dimensions 1.5', { model: 'emb-up', input: 'x', dimensions: 1.5 }, 'dimensions', 'invalid_type'],
    ['dimensions above the catalog’s', { model: 'emb-up', input: 'x', dimensions: UPSTREAM_DIMENSIONS + 1 }, 'dimensions', 'invalid_value'],
    ['encoding_format hex', { model: 'emb-up', input: 'x', encoding_format: 'hex' }, 'encoding_format', 'invalid_value'],
    ['a number as user', { model: 'emb-up', input: 'x', user: 5 }, 'user', 'invalid_type'],
  ])('%s gets a 400 naming the field, and nothing reaches the upstream or the books', async (_label, body, param, code) => {
    const calls = upstreamCalls.length;
    const requests = (await books(gw, acct.accountId)).requests.length;
    const res = await postEmbeddings(acct.key, body);
    expect(res.status).toBe(400);
    const answer = await res.json();
    expectErrorBody(answer, 'invalid_request_error', code);
    expect(answer.error.param).toBe(param);
    expect(upstreamCalls.length).toBe(calls);
    expect((await books(gw, acct.accountId)).requests.length).toBe(requests);
  });

  it('answers an unknown model 404, a body that is not JSON 400, and GET 405', async () => {
    const missing = await postEmbeddings(acct.key, { model: 'no-such-embedder', input: 'x' });
    expect(missing.status).toBe(404);
    expectErrorBody(await missing.json(), 'invalid_request_error', 'model_not_found');
    const broken = await postEmbeddings(acct.key, '{"model": ');
    expect(broken.status).toBe(400);
    expectErrorBody(await broken.json(), 'invalid_request_error', 'invalid_json');
    const get = await fetch(`${gw.baseUrl}/embeddings`, { headers: { authorization: `Bearer ${acct.key}` } });
    expect(get.status).toBe(405);
    const unauthenticated = await postEmbeddings('it_not_a_real_key', { model: 'emb-up', input: 'x' });
    expect(unauthenticated.status).toBe(401);
  });
});

describe('models of the wrong kind', () => {
  it('a chat model on /v1/embeddings gets a 400 invalid_request_error naming model, not a 5xx', async () => {
    const res = await postEmbeddings(acct.key, { model: 'chat-mock', input: 'x' });
    expect(res.status).toBe(400);
    const body = await res.json();
    expectErrorBody(body, 'invalid_request_error', 'model_not_supported');
    expect(body.error.param).toBe('model');
    const err = await client.embeddings.create({ model: 'chat-mock', input: 'x' }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it.each([false, true])('an embedding model on /v1/chat/completions (stream: %s) gets a 400, with nothing admitted', async (stream) => {
    const requests = (await books(gw, acct.accountId)).requests.length;
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'emb-mock', messages: [{ role: 'user', content: 'hi' }], stream }),
    });
    expect(res.status).toBe(400);
    const body = await res.json();
    expectErrorBody(body, 'invalid_request_error', 'model_not_supported');
    expect(body.error.param).toBe('model');
    expect((await books(gw, acct.accountId)).requests.length).toBe(requests);
  });

  it('GET /v1/models lists chat and embedding models alike', async () => {
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toEqual(expect.arrayContaining(['chat-mock', 'emb-up', 'emb-titan', 'emb-mock']));
    const one = await client.models.retrieve('emb-up');
    expect(one).toMatchObject({ id: 'emb-up', object: 'model', owned_by: 'test' });
  });
});

describe('billing and limits', () => {
  it('bills the provider’s input tokens (or the gateway’s count without them), counts them in TPM, and the books balance', async () => {
    const account = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 1_000_000, creditsMicroUsd: 50_000_000 });
    const own = new OpenAI({ baseURL: gw.baseUrl, apiKey: account.key, maxRetries: 0 });
    const answers = await Promise.all([
      own.embeddings.create({ model: 'emb-up', input: ['one two three', 'four'] }),
      own.embeddings.create({ model: 'emb-mock', input: 'mock text to embed' }),
      own.embeddings.create({ model: 'emb-fallback', input: 'served by the second route' }),
      own.embeddings.create({ model: 'emb-titan', input: ['titan a', 'titan b c'] }),
      own.embeddings.create({ model: 'emb-cohere', input: ['cohere a b'] }),
      own.embeddings.create({ model: 'emb-up-nousage', input: 'no usage reported here', encoding_format: 'float' }),
      ...Array.from({ length: 6 }, (_, i) => own.embeddings.create({ model: 'emb-up', input: `parallel request ${i}` })),
    ]);
    const failed = await own.embeddings.create({ model: 'emb-broken', input: 'fails' }).catch((e) => e);
    expect(failed).toBeInstanceOf(OpenAI.APIError);
    expect(failed.status).toBe(502);

    const b = await books(gw, account.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(answers.length + 1);
    const billed = answers.reduce((sum, a) => sum + a.usage.prompt_tokens, 0);
    expect(b.requests.reduce((sum, r) => sum + (r.promptTokens ?? 0), 0)).toBe(billed);
    expect(b.requests.every((r) => (r.completionTokens ?? 0) === 0)).toBe(true);
    expect(b.topUps - b.balance).toBe(billed * MICRO_USD_PER_TOKEN);
    const failedEntry = b.requests.find((r) => r.status === 'failed');
    expect(failedEntry).toMatchObject({ amountMicroUsd: 0, httpStatus: 502 });
    // Without the provider's count, the gateway's own is billed and reported.
    const estimate = gatewayCount('no usage reported here');
    expect(answers[5].usage.prompt_tokens).toBe(estimate);
    expect(b.requests.some((r) => r.usageEstimated === true && r.promptTokens === estimate)).toBe(true);
    expect(b.requests.find((r) => r.model === 'emb-fallback')?.route).toBe('mock:mock-embed');
    // The minute's token counter holds exactly the input tokens billed: no output was ever held for.
    const counts = (await gw.gateway.stores.accounts.get(account.accountId))!.counts;
    expect(counts.tokens + counts.prevTokens).toBe(billed);
  });

  it('holds and counts the input tokens at admission: a request above the whole TPM gets 400 (it can never fit), one within it shows them in the headers', async () => {
    const account = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 30, creditsMicroUsd: 50_000_000 });
    const calls = upstreamCalls.length;
    const big = await postEmbeddings(account.key, { model: 'emb-up', input: Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ') });
    expect(big.status).toBe(400);
    expect(big.headers.get('retry-after')).toBeNull();
    expectErrorBody(await big.json(), 'invalid_request_error');
    expect(upstreamCalls.length).toBe(calls);
    const small = await postEmbeddings(account.key, { model: 'emb-up', input: 'hello world' });
    expect(small.status).toBe(200);
    expect(Number(small.headers.get('x-ratelimit-remaining-tokens'))).toBe(30 - gatewayCount('hello world'));
    expectBooksBalance(await books(gw, account.accountId));
  });

  it('refuses with 402 an input the balance cannot pay, and lets one it can through', async () => {
    const account = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 1_000_000, creditsMicroUsd: 3 * MICRO_USD_PER_TOKEN });
    const tooMuch = await postEmbeddings(account.key, { model: 'emb-up', input: 'one two three four five six seven eight' });
    expect(tooMuch.status).toBe(402);
    expectErrorBody(await tooMuch.json(), 'insufficient_quota');
    const fits = await postEmbeddings(account.key, { model: 'emb-up', input: 'hi' });
    expect(fits.status).toBe(200);
    const b = await books(gw, account.accountId);
    expectBooksBalance(b);
    expect(b.balance).toBe(3 * MICRO_USD_PER_TOKEN - standInTokens('hi') * MICRO_USD_PER_TOKEN);
  });

  it('bills a request whose client went away once the upstream answered, and the books still balance', async () => {
    const account = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 1_000_000, creditsMicroUsd: 50_000_000 });
    const gone = await fetch(`${gw.baseUrl}/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${account.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'emb-up-slow', input: 'slow upstream text' }),
      signal: AbortSignal.timeout(100),
    }).catch((e) => e);
    expect((gone as Error).name).toBe('TimeoutError');
    await sleep(600);
    const b = await books(gw, account.accountId);
    expectBooksBalance(b);
    expect(b.requests).toHaveLength(1);
    expect(b.requests[0].promptTokens).toBe(standInTokens('slow upstream text'));
  });
});
