import Anthropic from '@anthropic-ai/sdk';
import { catalogOf, createAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { sse, TEXT_MESSAGE, TEXT_STREAM } from '../providers/anthropic/transcripts';
import { StandIn } from '../providers/stand-in';

/**
 * A Messages client on an Anthropic route (the same wire, Claude Code's case): its long fields
 * reach Anthropic as the client wrote them (issue 22: no second serialisation of an agent's
 * system prompt, tools and history), those the endpoint sets as it sets them.
 */
describe('the upstream body of a Messages request on an Anthropic route: the client bytes where nothing changed', () => {
  const anthropic = new StandIn('http1');
  let gw: TestGateway;
  const long = 'Read the file, then answer in one line. '.repeat(120);

  beforeAll(async () => {
    const url = await anthropic.start();
    gw = await startTestGateway({
      catalog: catalogOf({
        models: {
          'claude-test': {
            owned_by: 'anthropic',
            pricing: { input_per_mtok: 3, output_per_mtok: 15, server_tools: { web_search: 0.01 } },
            context_window: 200_000,
            max_output_tokens: 8192,
            routes: [{ provider: 'anthropic', base_url: url, model: 'claude-upstream-id' }],
          },
        },
      }),
    });
    anthropic.handler = (req) =>
      JSON.parse(req.body.toString()).stream
        ? { status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(TEXT_STREAM) }
        : { status: 200, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify(TEXT_MESSAGE)] };
  });

  afterAll(async () => {
    await gw?.stop();
    await anthropic.stop();
  });

  const post = (key: string, text: string) =>
    fetch(`${gw.baseUrl}/messages`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: text });
  const sent = () => anthropic.requests.at(-1)!.body.toString();

  // Written as no JSON.stringify writes it: spaces, an escaped é.
  const systemText = `[ {"type": "text", "text": "caf\\u00e9 ${long}", "cache_control": {"type": "ephemeral"}} ]`;
  const messagesText = `[ {"role": "user", "content": [ {"type": "text", "text": "${long}"} ]} ]`;
  const toolsText = `[ {"name": "read_file", "description": "${long}", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}} ]`;

  it('sends system, tools and messages byte for byte, the model and the held limit as the endpoint sets them', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const res = await post(acct.key, `{"model": "claude-test", "max_tokens": 100000, "stream": true, "system": ${systemText}, "tools": ${toolsText}, "messages": ${messagesText}}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('event: message_stop');
    const text = sent();
    expect(text).toContain(`"system":${systemText}`);
    expect(text).toContain(`"tools":${toolsText}`);
    expect(text).toContain(`"messages":${messagesText}`);
    const body = JSON.parse(text);
    expect(body).toMatchObject({ model: 'claude-upstream-id', max_tokens: 8192, stream: true });
    expect(body.system[0].text).toBe(`café ${long}`);
  });

  it('writes a field the endpoint changed (a thinking budget above the held limit) as it changed it, the rest still as sent', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const res = await post(acct.key, `{"model": "claude-test", "max_tokens": 9000, "thinking": {"type": "enabled", "budget_tokens": 9000}, "messages": ${messagesText}}`);
    expect(res.status).toBe(200);
    const text = sent();
    expect(text).toContain(`"messages":${messagesText}`);
    expect(JSON.parse(text).thinking).toEqual({ type: 'enabled', budget_tokens: 8191 });
  });

  it('writes tools whose server tool the endpoint bounded (max_uses, what the hold paid for) as bounded, not as sent', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const withSearch = `[ {"type": "web_search_20250305", "name": "web_search"}, {"name": "read_file", "description": "${long}", "input_schema": {"type": "object"}} ]`;
    expect((await post(acct.key, `{"model": "claude-test", "max_tokens": 100, "tools": ${withSearch}, "messages": ${messagesText}}`)).status).toBe(200);
    const text = sent();
    expect(text).not.toContain(withSearch);
    expect(text).toContain(`"messages":${messagesText}`);
    expect(JSON.parse(text).tools[0]).toEqual({ type: 'web_search_20250305', name: 'web_search', max_uses: 5 });
  });

  it('never copies a message that names a key twice: Anthropic gets only what the gateway read and priced', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const twice = `[{"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}], "content": "${long}"}]`;
    expect((await post(acct.key, `{"model": "claude-test", "max_tokens": 100, "messages": ${twice}}`)).status).toBe(200);
    expect(sent()).not.toContain('document');
    expect(JSON.parse(sent()).messages).toEqual([{ role: 'user', content: long }]);
  });

  it('serves the Anthropic SDK a long prompt unchanged', async () => {
    const acct = await createAccount(gw, { tier: 'enterprise' });
    const client = new Anthropic({ baseURL: gw.baseUrl.replace(/\/v1$/, ''), apiKey: acct.key, maxRetries: 0 });
    const message = await client.messages.create({ model: 'claude-test', max_tokens: 100, system: long, messages: [{ role: 'user', content: `${long} é ✓` }] });
    expect(message.content).toEqual(TEXT_MESSAGE.content);
    expect(JSON.parse(sent())).toMatchObject({ system: long, messages: [{ role: 'user', content: `${long} é ✓` }], model: 'claude-upstream-id' });
  });
});
