import OpenAI from 'openai';
import { catalogOf, createAccount, readSse, startTestGateway, type TestGateway } from '../support/gateway';
import { completionBody, startUpstream, streamEvents } from '../support/upstream';

/**
 * A Chat client's long fields reach an OpenAI-compatible upstream as the client wrote them when
 * they are what the codec would send (issue 22: no second serialisation of a coding agent's
 * history), and as the codec writes them whenever it changed anything.
 */
describe('the upstream body of a Chat request: the client bytes where nothing changed', () => {
  let gw: TestGateway;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  const usage = { prompt_tokens: 900, completion_tokens: 2, total_tokens: 902 };
  const long = 'The quick brown fox jumps over the lazy dog. '.repeat(200);

  beforeAll(async () => {
    upstream = await startUpstream((_req, body, res) => {
      if (body.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (const line of streamEvents(body.model, ['o', 'k'], usage)) res.write(line);
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(completionBody(body.model, 'ok', usage)));
    });
    gw = await startTestGateway({
      catalog: catalogOf({
        models: {
          'chat-model': {
            owned_by: 'test',
            pricing: { input_per_mtok: 1, output_per_mtok: 1 },
            context_window: 100_000,
            max_output_tokens: 100,
            routes: [{ provider: 'openai-compatible', base_url: upstream.url, model: 'upstream-7b' }],
          },
        },
      }),
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  const post = (key: string, text: string) =>
    fetch(`${gw.baseUrl}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: text });

  // Written as no JSON.stringify writes it: spaces, an escaped é, an escaped quote.
  const messagesText = `[ {"role" : "system", "content": "Be brief."}, {"role": "user", "content" : "caf\\u00e9 \\"${long}\\""} ]`;

  it('sends a streamed request\'s messages byte for byte, the rest as the codec sets it, and bills the answer', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const res = await post(acct.key, `{"model": "chat-model", "messages": ${messagesText}, "stream": true, "max_tokens": 50}`);
    expect(res.status).toBe(200);
    expect((await readSse(res)).at(-1)).toBe('[DONE]');
    const sent = upstream.texts.at(-1)!;
    expect(sent).toContain(`"messages":${messagesText}`);
    const body = JSON.parse(sent);
    expect(body).toMatchObject({ model: 'upstream-7b', stream: true, stream_options: { include_usage: true } });
    expect(body.messages).toEqual([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: `café "${long}"` }]);
    await gw.gateway.background.drain();
    const [item] = (await gw.gateway.stores.usage.all(acct.accountId)).filter((i) => i.kind === 'request');
    expect(item).toMatchObject({ status: 'completed', promptTokens: 900, completionTokens: 2 });
  });

  it('does the same for a JSON answer, and for large tools', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const toolsText = `[{"type":"function","function":{"name":"read_file","description":"${long}","parameters":{"type":"object","properties":{"path":{"type":"string"}}}}}]`;
    const res = await post(acct.key, `{"model":"chat-model","tools": ${toolsText},"messages": ${messagesText}}`);
    expect(res.status).toBe(200);
    expect((await res.json()).choices[0].message.content).toBe('ok');
    const sent = upstream.texts.at(-1)!;
    expect(sent).toContain(`"messages":${messagesText}`);
    expect(sent).toContain(`"tools":${toolsText}`);
    expect(JSON.parse(sent)).toMatchObject({ model: 'upstream-7b', stream: false });
  });

  it('writes the messages as the codec does when it changed them: a developer message, thinking sent back', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const developer = `[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "${long}"}]`;
    expect((await post(acct.key, `{"model":"chat-model","messages": ${developer}}`)).status).toBe(200);
    expect(upstream.texts.at(-1)).not.toContain(developer);
    expect(upstream.requests.at(-1).messages).toEqual([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: long }]);

    const thinking = `[{"role": "user", "content": "${long}"}, {"role": "assistant", "content": "a", "reasoning_content": "secret plan"}, {"role": "user", "content": "go on"}]`;
    expect((await post(acct.key, `{"model":"chat-model","messages": ${thinking}}`)).status).toBe(200);
    expect(upstream.texts.at(-1)).not.toContain('secret plan');
    expect(upstream.requests.at(-1).messages[1]).toEqual({ role: 'assistant', content: 'a' });
  });

  it('never copies a message that names a key twice: the upstream gets only what the gateway read and priced', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const twice = `[{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}], "content": "${long}"}]`;
    expect((await post(acct.key, `{"model":"chat-model","messages": ${twice}}`)).status).toBe(200);
    expect(upstream.texts.at(-1)).not.toContain('input_audio');
    expect(upstream.requests.at(-1).messages).toEqual([{ role: 'user', content: long }]);
  });

  it('serves the openai client a long prompt unchanged', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const client = new OpenAI({ apiKey: acct.key, baseURL: gw.baseUrl, maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'chat-model', messages: [{ role: 'user', content: `${long} é ✓` }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('ok');
    expect(upstream.requests.at(-1).messages).toEqual([{ role: 'user', content: `${long} é ✓` }]);
  });
});
