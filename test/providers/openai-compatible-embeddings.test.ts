import { parseEmbeddingRequest } from '../../lambda/contract/embeddings';
import { openAiCompatibleProvider } from '../../lambda/providers/openai-compatible';
import { DEFAULT_TIMEOUTS, type EmbeddingCall } from '../../lambda/providers/types';
import { StandIn, thrown, type StandInReply } from './stand-in';

const standIn = new StandIn('http1');
let baseUrl = '';
const provider = openAiCompatibleProvider();

beforeAll(async () => {
  baseUrl = `${await standIn.start()}/v1`;
});
afterAll(() => standIn.stop());

function call(body: Record<string, unknown>, timeouts = DEFAULT_TIMEOUTS): EmbeddingCall {
  return {
    request: parseEmbeddingRequest({ model: 'gateway-embedding', ...body }),
    route: { provider: 'openai-compatible', base_url: baseUrl, model: 'upstream-embedding' },
    apiKey: 'sk-test',
    maxOutputTokens: 0,
    signal: new AbortController().signal,
    timeouts,
    requestId: 'req_test_emb',
  };
}

const json = (status: number, body: unknown): StandInReply => ({ status, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify(body)] });
const answer = (data: unknown[], usage: unknown = { prompt_tokens: 3, total_tokens: 3 }) => json(200, { object: 'list', data, model: 'upstream-embedding', ...(usage !== null && { usage }) });

describe('openai-compatible embeddings', () => {
  it('posts to {base_url}/embeddings with the upstream model id and the key, and returns vectors and usage', async () => {
    standIn.handler = () => answer([{ object: 'embedding', index: 0, embedding: [0.5, -0.25] }]);
    const result = await provider.embed!(call({ input: 'hi', encoding_format: 'float', dimensions: 2 }));
    const sent = standIn.requests[standIn.requests.length - 1];
    expect(sent.path).toBe('/v1/embeddings');
    expect(sent.headers.authorization).toBe('Bearer sk-test');
    expect(standIn.lastJson()).toEqual({ model: 'upstream-embedding', input: 'hi', encoding_format: 'float', dimensions: 2 });
    expect(result).toEqual({ vectors: [[0.5, -0.25]], promptTokens: 3 });
  });

  it('keeps a base64 answer as the upstream’s string, and reports no tokens when usage is missing', async () => {
    standIn.handler = () => answer([{ object: 'embedding', index: 0, embedding: 'AADAPwAAAMA=' }], null);
    expect(await provider.embed!(call({ input: ['x'], encoding_format: 'base64' }))).toEqual({ vectors: ['AADAPwAAAMA='], promptTokens: undefined });
  });

  it.each([
    ['fewer vectors than inputs', [{ index: 0, embedding: [1] }]],
    ['an index twice', [{ index: 0, embedding: [1] }, { index: 0, embedding: [2] }]],
    ['an index out of range', [{ index: 0, embedding: [1] }, { index: 5, embedding: [2] }]],
    ['a vector that is not numbers', [{ index: 0, embedding: [1] }, { index: 1, embedding: ['a'] }]],
  ])('answers 502 (another route may try) for %s', async (_what, data) => {
    standIn.handler = () => answer(data);
    expect(await thrown(() => provider.embed!(call({ input: ['a', 'b'] })))).toMatchObject({ status: 502, code: 'upstream_error', fallback: true });
  });

  it('passes an upstream 400 on with its message and param, without fallback', async () => {
    standIn.handler = () => json(400, { error: { message: 'This model does not support specifying dimensions.', type: 'invalid_request_error', param: 'dimensions' } });
    expect(await thrown(() => provider.embed!(call({ input: 'x', dimensions: 3 })))).toMatchObject({
      status: 400,
      param: 'dimensions',
      fallback: false,
      message: 'This model does not support specifying dimensions.',
    });
  });

  it('maps 429 to a 503 that falls back, and a silent upstream to a 504', async () => {
    standIn.handler = () => json(429, { error: { message: 'slow down' } });
    expect(await thrown(() => provider.embed!(call({ input: 'x' })))).toMatchObject({ status: 503, fallback: true });
    standIn.handler = () => ({ hang: 'before_headers' });
    expect(await thrown(() => provider.embed!(call({ input: 'x' }, { ...DEFAULT_TIMEOUTS, firstByteMs: 100 })))).toMatchObject({ status: 504, fallback: true });
  });
});
