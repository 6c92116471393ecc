import OpenAI from 'openai';
import { validateChunk, validateCompletion, openAiValidator } from '../support/openai-schema';
import { createAccount, readSse, startTestGateway, type TestGateway } from '../support/gateway';

let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  gw = await startTestGateway();
  client = new OpenAI({ baseURL: gw.baseUrl, apiKey: gw.apiKey!, maxRetries: 0 });
});

afterAll(async () => {
  await gw.stop();
});

function expectValid(name: string, value: unknown): void {
  const validate = openAiValidator(name);
  expect(validate(value) ? [] : validate.errors).toEqual([]);
}

describe('the official openai client against the local gateway', () => {
  it('gets a plain completion that validates against the OpenAI schema', async () => {
    const completion = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }] });
    validateCompletion(completion);
    expect(completion.model).toBe('gpt-4o-mini');
    expect(completion.choices[0].message.content).toContain('Say hello');
    expect(completion.choices[0].finish_reason).toBe('stop');
    expect(completion.usage!.total_tokens).toBeGreaterThan(0);
  });

  it('streams a completion chunk by chunk, every chunk valid, ending with [DONE]', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Count to three' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) {
      validateChunk(chunk);
      chunks.push(chunk);
    }
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toContain('Count to three');
    const finish = chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter(Boolean);
    expect(finish).toEqual(['stop']);
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage!.completion_tokens).toBeGreaterThan(0);
  });

  it('leaves the usage chunk out when the client did not ask for it', async () => {
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = await readSse(res);
    expect(events[events.length - 1]).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    for (const chunk of chunks) {
      validateChunk(chunk);
      expect(chunk.usage).toBeUndefined();
      expect(chunk.choices.length).toBeGreaterThan(0);
    }
  });

  it('completes a tool-call round trip', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
      },
    ];
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Weather in Paris?' }];
    const first = await client.chat.completions.create({ model: 'gpt-4o', messages, tools });
    validateCompletion(first);
    expect(first.choices[0].finish_reason).toBe('tool_calls');
    const call = first.choices[0].message.tool_calls![0];
    expect(call.type === 'function' && call.function.name).toBe('get_weather');
    expect(JSON.parse(call.type === 'function' ? call.function.arguments : '{}')).toEqual({ city: 'example' });

    messages.push(first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: '{"temp_c": 21}' });
    const second = await client.chat.completions.create({ model: 'gpt-4o', messages, tools });
    validateCompletion(second);
    expect(second.choices[0].finish_reason).toBe('stop');
    expect(second.choices[0].message.content).toContain('temp_c');
  });

  it('streams tool calls with id and name in the first chunk of the call', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Weather?' }],
      tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }],
      stream: true,
    });
    const calls = [];
    for await (const chunk of stream) {
      validateChunk(chunk);
      for (const c of chunk.choices[0]?.delta.tool_calls ?? []) calls.push(c);
    }
    expect(calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'lookup' } });
    expect(calls[0].id).toMatch(/^call_/);
  });

  it('lists only models the key may use, as valid Model objects', async () => {
    const limited = await createAccount(gw, { models: ['gpt-4o-mini'] });
    const restricted = new OpenAI({ baseURL: gw.baseUrl, apiKey: limited.key, maxRetries: 0 });
    const all = [];
    for await (const model of client.models.list()) all.push(model.id);
    expect(all).toEqual(expect.arrayContaining(['gpt-4o', 'gpt-4o-mini', 'claude-3-5-sonnet-20241022', 'deepseek-chat', 'gemini-2.0-flash']));

    const page = await fetch(`${gw.baseUrl}/models`, { headers: { authorization: `Bearer ${limited.key}` } }).then((r) => r.json());
    expectValid('ListModelsResponse', page);
    expect(page.data.map((m: { id: string }) => m.id)).toEqual(['gpt-4o-mini']);

    const one = await restricted.models.retrieve('gpt-4o-mini');
    expectValid('Model', one);
    await expect(restricted.models.retrieve('gpt-4o')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(
      restricted.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
  });
});

describe('errors surface as the SDK error classes', () => {
  it('400 for an invalid parameter, naming it', async () => {
    const err = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], temperature: 5 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe('temperature');
    expect(err.type).toBe('invalid_request_error');
  });

  it('401 for an unknown key', async () => {
    const bad = new OpenAI({ baseURL: gw.baseUrl, apiKey: `it_${'x'.repeat(40)}`, maxRetries: 0 });
    const err = await bad.models.list().catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err.code).toBe('invalid_api_key');
  });

  it('404 for an unknown model', async () => {
    const err = await client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.code).toBe('model_not_found');
  });

  it('429 for a rate limit, with Retry-After', async () => {
    const limited = await createAccount(gw, { tier: 'enterprise', rpm: 1, tpm: 1_000_000 });
    const c = new OpenAI({ baseURL: gw.baseUrl, apiKey: limited.key, maxRetries: 0 });
    await c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: 5 });
    const err = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: 5 }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(Number(err.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(err.headers.get('retry-after-ms'))).toBeGreaterThan(0);
  });

  it('402 when the account cannot pay, as an APIError with insufficient_quota', async () => {
    const poor = await createAccount(gw, { creditsMicroUsd: 0 });
    const c = new OpenAI({ baseURL: gw.baseUrl, apiKey: poor.key, maxRetries: 0 });
    const err = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], max_tokens: 100 }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.status).toBe(402);
    expect(err.code).toBe('insufficient_quota');
  });
});
