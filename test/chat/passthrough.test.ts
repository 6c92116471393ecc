import type { ServerResponse } from 'node:http';
import { checkedEvent, modelField, relayedChatData, relayedForClient } from '../../lambda/chat/passthrough';
import { GatewayError } from '../../lambda/contract/errors';
import { catalogOf, createAccount, readSse, startTestGateway, type TestGateway } from '../support/gateway';
import { startUpstream } from '../support/upstream';

const base = { id: 'chatcmpl-up', object: 'chat.completion.chunk', created: 1735689600, model: 'upstream/model-7b' };
const chunk = (delta: object, finish: string | null = null, extra: object = {}) =>
  JSON.stringify({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...extra });

/** The chat endpoint's frame rewrite for a model id (the meter reads the provider's relay, tested with the gateway below). */
const relayOf = (modelId: string) => ({ observe: (data: string) => relayedChatData(data, modelField(modelId)) });

describe('stream chunks relayed as the upstream wrote them', () => {
  it('rewrites the model id and leaves every other byte as sent', () => {
    const meter = relayOf('gpt-4o');
    const sent = '{"id":"x","object":"chat.completion.chunk","created":1,"model" : "up\\"stream","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"a\\u00e9"},"finish_reason":null}]}';
    const { data } = meter.observe(sent);
    expect(data).toBe(sent.replace('"model" : "up\\"stream"', '"model":"gpt-4o"'));
    expect(JSON.parse(data).choices[0].delta.content).toBe('aé');
  });

  it('writes a model id with $ in it as it is (no replacement patterns)', () => {
    const { data } = relayOf("acme/m$&$'-1").observe(chunk({ content: 'x' }));
    expect(JSON.parse(data).model).toBe("acme/m$&$'-1");
  });

  it("puts a provider's own finish_reason words in OpenAI's and keeps OpenAI's", () => {
    const meter = relayOf('m');
    expect(JSON.parse(meter.observe(chunk({}, 'eos')).data).choices[0].finish_reason).toBe('stop');
    expect(JSON.parse(meter.observe(chunk({}, 'max_tokens')).data).choices[0].finish_reason).toBe('length');
    const tools = chunk({}, 'tool_calls');
    expect(meter.observe(tools).data).toBe(tools.replace('"upstream/model-7b"', '"m"'));
  });

  it('keeps the usage chunk for the books and gives it only to a client that asked for it', () => {
    const meter = relayOf('m');
    meter.observe(chunk({ content: 'hi' }));
    const usage = { prompt_tokens: 3, completion_tokens: 42, total_tokens: 45 };
    const event = meter.observe(JSON.stringify({ ...base, choices: [], usage }));
    expect(event.usageOnly).toBe(true);
    expect(relayedForClient(event, false)).toBeUndefined();
    expect(JSON.parse(relayedForClient(event, true)!)).toMatchObject({ model: 'm', choices: [], usage });
  });

  it('sends no usage key to a client that did not ask, whether null in every chunk or an object in the last', () => {
    const meter = relayOf('m');
    const withNull = meter.observe(chunk({ content: 'a' }, null, { usage: null }));
    const relayed = relayedForClient(withNull, false)!;
    expect(JSON.parse(relayed)).not.toHaveProperty('usage');
    expect(JSON.parse(relayed).choices[0].delta.content).toBe('a');
    expect(JSON.parse(relayedForClient(withNull, true)!)).toHaveProperty('usage', null);

    const usage = { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 };
    const last = meter.observe(chunk({ content: 'b' }, 'stop', { usage }));
    expect(last).toMatchObject({ usageOnly: false, carriesUsage: true });
    const stripped = JSON.parse(relayedForClient(last, false)!);
    expect(stripped).not.toHaveProperty('usage');
    expect(stripped.choices[0]).toMatchObject({ delta: { content: 'b' }, finish_reason: 'stop' });
  });

  it('gives a chunk with no choices key an empty choices list, and keeps its usage', () => {
    const meter = relayOf('m');
    const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
    const event = meter.observe(JSON.stringify({ id: 'x', model: 'up', usage }));
    expect(event.usageOnly).toBe(true);
    expect(JSON.parse(event.data)).toEqual({ id: 'x', model: 'm', usage, choices: [] });
  });

  it('turns an error event or an event that is not an object into the upstream error', () => {
    const meter = relayOf('m');
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e;
      }
      throw new Error('did not throw');
    };
    const failed = err(() => meter.observe('{"error":{"message":"overloaded","type":"server_error"}}'));
    expect(failed).toBeInstanceOf(GatewayError);
    expect((failed as GatewayError).code).toBe('upstream_error');
    expect((failed as GatewayError).message).toMatch(/overloaded/);
    expect((err(() => checkedEvent('<html>bad gateway</html>')) as GatewayError).code).toBe('upstream_error');
    expect((err(() => checkedEvent('{"choices": [')) as GatewayError).code).toBe('upstream_error');
    // Text that mentions "error" is not an error event.
    expect(checkedEvent(` ${chunk({ content: 'an "error" here' })} `)).toBe(chunk({ content: 'an "error" here' }));
  });
});

describe('through the gateway, from an OpenAI-compatible upstream', () => {
  let gw: TestGateway;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  const usage = { prompt_tokens: 7, completion_tokens: 42, total_tokens: 49 };

  const write = (res: ServerResponse, events: string[], end = true) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const e of events) res.write(`data: ${e}\n\n`);
    if (end) res.end('data: [DONE]\n\n');
    // Broken off after the chunks reached the gateway (no usage, no [DONE]).
    else setTimeout(() => res.destroy(), 100);
  };

  beforeAll(async () => {
    upstream = await startUpstream((_req, body, res) => {
      const pieces = [chunk({ role: 'assistant', content: '' }, null, { usage: null }), chunk({ content: 'Hel' }, null, { usage: null }), chunk({ content: 'lo' }, null, { usage: null })];
      if (body.model === 'cut') return write(res, pieces, false);
      write(res, [...pieces, chunk({}, 'eos', { usage: null }), JSON.stringify({ ...base, choices: [], usage })]);
    });
    const route = (model: string) => ({
      owned_by: 'test',
      pricing: { input_per_mtok: 1, output_per_mtok: 1 },
      context_window: 10_000,
      max_output_tokens: 100,
      routes: [{ provider: 'openai-compatible' as const, base_url: upstream.url, model }],
    });
    gw = await startTestGateway({ catalog: catalogOf({ models: { 'fast-model': route('whole'), 'cut-model': route('cut') } }) });
  });

  afterAll(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  const post = (key: string, body: object) =>
    fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 50, stream: true, ...body }),
    });

  it('relays the chunks with the gateway model id and no usage key, and bills the provider usage', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const events = await readSse(await post(acct.key, { model: 'fast-model' }));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks).toHaveLength(4);
    for (const c of chunks) {
      expect(c.model).toBe('fast-model');
      expect(c).not.toHaveProperty('usage');
      expect(c.choices).toHaveLength(1);
    }
    expect(chunks.map((c) => c.choices[0].delta.content ?? '').join('')).toBe('Hello');
    expect(chunks.at(-1).choices[0].finish_reason).toBe('stop');
    // The upstream was asked for usage, whatever the client asked.
    expect(upstream.requests.at(-1).stream_options).toEqual({ include_usage: true });
    await gw.gateway.background.drain();
    const [item] = (await gw.gateway.stores.usage.all(acct.accountId)).filter((i) => i.kind === 'request');
    expect(item).toMatchObject({ status: 'completed', promptTokens: 7, completionTokens: 42 });
    expect(item.usageEstimated ?? false).toBe(false);
  });

  it('serves n > 1 on a relayed stream (n reaches the upstream; JSON answers: test/chat/nothing-dropped.test.ts)', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const before = upstream.requests.length;
    const events = await readSse(await post(acct.key, { model: 'fast-model', n: 2 }));
    expect(events.at(-1)).toBe('[DONE]');
    expect(upstream.requests.length).toBe(before + 1);
    expect(upstream.requests.at(-1).n).toBe(2);
  });

  it('sends the usage chunk last to a client that asked for it', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const events = await readSse(await post(acct.key, { model: 'fast-model', stream_options: { include_usage: true } }));
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks.at(-1)).toMatchObject({ model: 'fast-model', choices: [], usage });
    expect(chunks.slice(0, -1).every((c) => c.choices.length === 1)).toBe(true);
  });

  it('counts the delivered text with the tokenizer when the upstream breaks off before its usage', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const res = await post(acct.key, { model: 'cut-model' });
    expect(res.status).toBe(200);
    const events = await readSse(res);
    expect(events.at(-1)).toBe('[DONE]');
    const last = JSON.parse(events.at(-2)!);
    expect(last.error.code).toBe('upstream_error');
    expect(events.slice(0, -2).map((e) => JSON.parse(e).choices[0].delta.content ?? '').join('')).toBe('Hello');
    await gw.gateway.background.drain();
    const [item] = (await gw.gateway.stores.usage.all(acct.accountId)).filter((i) => i.kind === 'request');
    expect(item.completionTokens).toBeGreaterThan(0);
    expect(item.usageEstimated).toBe(true);
    expect(item.amountMicroUsd).toBeLessThan(0);
  });
});
