import type { RouteConfig } from '../../../lambda/catalog';
import { parseEmbeddingRequest } from '../../../lambda/contract/embeddings';
import { GatewayError } from '../../../lambda/contract/errors';
import { COHERE_BATCH_SIZE } from '../../../lambda/providers/bedrock/embeddings';
import { DEFAULT_TIMEOUTS, type EmbeddingCall } from '../../../lambda/providers/types';
import { StandIn, thrown } from '../stand-in';
import { bedrockEmbeddingHandler, standInTokens, standInVector } from './embedding-stand-in';
import { errorReply, testBedrockProvider } from './stand-in';

const TITAN = 'amazon.titan-embed-text-v2:0';
const COHERE_V3 = 'cohere.embed-english-v3';
const COHERE_V4 = 'us.cohere.embed-v4:0';
// The SDK's Bedrock client speaks HTTP/2, so the stand-in does too.
const standIn = new StandIn('h2c');
let endpoint = '';
const provider = testBedrockProvider();

beforeAll(async () => {
  endpoint = await standIn.start();
});
afterAll(() => standIn.stop());
beforeEach(() => {
  standIn.requests.length = 0;
  standIn.handler = bedrockEmbeddingHandler();
});

function call(model: string, body: Record<string, unknown>): EmbeddingCall {
  const route: RouteConfig = { provider: 'bedrock', base_url: endpoint, model, region: 'us-east-1' };
  return {
    request: parseEmbeddingRequest({ model: 'gateway-embedding', ...body }),
    route,
    apiKey: undefined,
    maxOutputTokens: 0,
    signal: new AbortController().signal,
    timeouts: DEFAULT_TIMEOUTS,
    requestId: 'req_test_emb',
  };
}

const sentBodies = () => standIn.requests.map((r) => JSON.parse(r.body.toString('utf8')));
const sentModels = () => standIn.requests.map((r) => decodeURIComponent(r.path));

describe('bedrock embeddings: Titan Text Embeddings v2', () => {
  it('makes one signed InvokeModel call per text, in input order, with the tokens Titan reported', async () => {
    const texts = ['first text', 'the second one', 'a third piece of text', 'four'];
    const result = await provider.embed!(call(TITAN, { input: texts }));
    expect(sentModels()).toEqual(texts.map(() => `/model/${TITAN}/invoke`));
    expect(standIn.requests[0].headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDTESTSTANDIN\/\d{8}\/us-east-1\/bedrock\/aws4_request/);
    expect(sentBodies().map((b) => b.inputText).sort()).toEqual([...texts].sort());
    for (const body of sentBodies()) expect(Object.keys(body)).toEqual(['inputText']);
    expect(result.vectors).toEqual(texts.map((t) => standInVector(t, 1024)));
    expect(result.promptTokens).toBe(texts.reduce((s, t) => s + standInTokens(t), 0));
  });

  it('passes dimensions 256, 512 and 1024 through and refuses any other with a 400 naming dimensions, before calling', async () => {
    const result = await provider.embed!(call(TITAN, { input: 'x', dimensions: 256 }));
    expect(sentBodies()).toEqual([{ inputText: 'x', dimensions: 256 }]);
    expect((result.vectors[0] as number[]).length).toBe(256);
    const err = await thrown(() => provider.embed!(call(TITAN, { input: 'x', dimensions: 300 })));
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ status: 400, type: 'invalid_request_error', param: 'dimensions' });
    expect(standIn.requests).toHaveLength(1);
  });

  it('falls back to the token-count header when the body has none, and reports none when neither is there', async () => {
    standIn.handler = bedrockEmbeddingHandler({ titanBodyTokens: false });
    expect((await provider.embed!(call(TITAN, { input: ['one two', 'three'] }))).promptTokens).toBe(standInTokens('one two') + standInTokens('three'));
    standIn.handler = bedrockEmbeddingHandler({ titanBodyTokens: false, tokenHeader: false });
    expect((await provider.embed!(call(TITAN, { input: ['one two', 'three'] }))).promptTokens).toBeUndefined();
  });

  it('refuses token arrays with a 400 naming input: Bedrock embeds text', async () => {
    const err = await thrown(() => provider.embed!(call(TITAN, { input: [[1, 2, 3]] })));
    expect(err).toMatchObject({ status: 400, param: 'input' });
    expect(standIn.requests).toHaveLength(0);
  });

  it('maps a throttled call to a 503 the route loop may fall back from', async () => {
    standIn.handler = bedrockEmbeddingHandler({ failFor: { model: /titan/, reply: errorReply(429, 'ThrottlingException', 'Too many requests') } });
    const err = await thrown(() => provider.embed!(call(TITAN, { input: ['a', 'b'] })));
    expect(err).toMatchObject({ status: 503, fallback: true });
  });

  it('runs a large array a few calls at a time and keeps every vector at its input’s index', async () => {
    const texts = Array.from({ length: 40 }, (_, i) => `text number ${i}`);
    const result = await provider.embed!(call(TITAN, { input: texts, dimensions: 512 }));
    expect(standIn.requests).toHaveLength(40);
    expect(result.vectors).toEqual(texts.map((t) => standInVector(t, 512)));
  });
});

describe('bedrock embeddings: Cohere Embed', () => {
  it('sends texts in batches of at most 96 with input_type search_document, and sums the header’s token counts', async () => {
    const texts = Array.from({ length: 100 }, (_, i) => `document ${i} body`);
    const result = await provider.embed!(call(COHERE_V3, { input: texts }));
    const bodies = sentBodies();
    expect(bodies.map((b) => b.texts.length).sort((a, b) => b - a)).toEqual([COHERE_BATCH_SIZE, 100 - COHERE_BATCH_SIZE]);
    for (const body of bodies) expect(body).toEqual({ texts: body.texts, input_type: 'search_document' });
    expect(bodies.flatMap((b) => b.texts).sort()).toEqual([...texts].sort());
    expect(result.vectors).toEqual(texts.map((t) => standInVector(t, 1024)));
    expect(result.promptTokens).toBe(texts.reduce((s, t) => s + standInTokens(t), 0));
  });

  it('uses the request’s input_type, and refuses one Cohere does not know', async () => {
    await provider.embed!(call(COHERE_V3, { input: 'what is x?', input_type: 'search_query' }));
    expect(sentBodies()[0].input_type).toBe('search_query');
    const err = await thrown(() => provider.embed!(call(COHERE_V3, { input: 'x', input_type: 'query' })));
    expect(err).toMatchObject({ status: 400, param: 'input_type' });
  });

  it('v3 has one size: dimensions other than 1024 get a 400, 1024 sends nothing', async () => {
    await provider.embed!(call(COHERE_V3, { input: 'x', dimensions: 1024 }));
    expect(sentBodies()[0]).toEqual({ texts: ['x'], input_type: 'search_document' });
    expect(await thrown(() => provider.embed!(call(COHERE_V3, { input: 'x', dimensions: 512 })))).toMatchObject({ status: 400, param: 'dimensions' });
  });

  it('v4 (an inference profile id) gets output_dimension and float embedding_types, and its by-type answer is read', async () => {
    const result = await provider.embed!(call(COHERE_V4, { input: ['a', 'b'], dimensions: 256 }));
    expect(sentModels()).toEqual([`/model/${COHERE_V4}/invoke`]);
    expect(sentBodies()[0]).toEqual({ texts: ['a', 'b'], input_type: 'search_document', embedding_types: ['float'], output_dimension: 256 });
    expect(result.vectors).toEqual([standInVector('a', 256), standInVector('b', 256)]);
  });

  it('reports no tokens when a batch came without the header, so the gateway bills its own count', async () => {
    standIn.handler = bedrockEmbeddingHandler({ tokenHeader: false });
    expect((await provider.embed!(call(COHERE_V3, { input: ['a b'] }))).promptTokens).toBeUndefined();
  });

  it('maps Bedrock’s ValidationException to a 400 that does not fall back', async () => {
    standIn.handler = bedrockEmbeddingHandler({ failFor: { model: /cohere/, reply: errorReply(400, 'ValidationException', 'input is too long') } });
    const err = await thrown(() => provider.embed!(call(COHERE_V3, { input: 'x' })));
    expect(err).toMatchObject({ status: 400, fallback: false });
    expect((err as Error).message).toContain('input is too long');
  });
});

describe('bedrock embeddings: models it does not know', () => {
  it('answers an upstream error that lets the next route try, without calling', async () => {
    const err = await thrown(() => provider.embed!(call('anthropic.claude-3-5-sonnet-20241022-v2:0', { input: 'x' })));
    expect(err).toMatchObject({ status: 502, fallback: true });
    expect(standIn.requests).toHaveLength(0);
  });
});
