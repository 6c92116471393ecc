import OpenAI from 'openai';
import type { CatalogFile } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { defaultProviders } from '../../lambda/providers';
import { catalogOf, createAccount, readSse, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { validateChunk, validateCompletion } from '../support/openai-schema';
import { OVERLOADED_FIRST, OVERLOADED_MID_STREAM, sse, TEXT_STREAM, TOOL_MESSAGE, TOOL_STREAM as ANTHROPIC_TOOL_STREAM } from '../providers/anthropic/transcripts';
import { eventStreamReply, jsonReply, route as bedrockRoute, testBedrockProvider } from '../providers/bedrock/stand-in';
import { TOOL_RESPONSE, TOOL_STREAM as BEDROCK_TOOL_STREAM } from '../providers/bedrock/transcripts';
import { StandIn } from '../providers/stand-in';

/**
 * The default catalog's Claude models, routed to Anthropic and to Bedrock stand-ins speaking the
 * real protocols, through the whole gateway with the official `openai` client.
 */
const anthropic = new StandIn('http1');
const bedrock = new StandIn('h2c');
let gw: TestGateway;
let acct: TestAccount;
let client: OpenAI;

const TOOLS: OpenAI.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { timezone: { type: 'string' } } } } },
  { type: 'function', function: { name: 'top_song', parameters: { type: 'object', properties: { sign: { type: 'string' } } } } },
];

beforeAll(async () => {
  const anthropicUrl = await anthropic.start();
  const bedrockUrl = await bedrock.start();
  const sonnet = DEFAULT_CATALOG.models['claude-3-5-sonnet-20241022'];
  const opus = DEFAULT_CATALOG.models['claude-3-opus-20240229'];
  const onBedrock = { provider: 'bedrock' as const, base_url: bedrockUrl, model: 'anthropic.claude-3-5-sonnet-20241022-v2:0', region: 'us-east-1' };
  const catalog: CatalogFile = {
    models: {
      'claude-3-5-sonnet-20241022': { ...sonnet, routes: [{ provider: 'anthropic', base_url: anthropicUrl, model: 'claude-3-5-sonnet-20241022' }] },
      'claude-3-opus-20240229': { ...opus, routes: [onBedrock] },
      'claude-with-fallback': { ...sonnet, routes: [{ provider: 'anthropic', base_url: anthropicUrl, model: 'claude-3-5-sonnet-20241022' }, onBedrock] },
    },
  };
  gw = await startTestGateway({ catalog: catalogOf(catalog), providers: { ...defaultProviders(), bedrock: testBedrockProvider() } });
  acct = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
  client = new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 0 });
});

afterAll(async () => {
  await gw.stop();
  await anthropic.stop();
  await bedrock.stop();
});

const serveAnthropic = (stream: boolean, frames = ANTHROPIC_TOOL_STREAM) => {
  anthropic.handler = () =>
    stream
      ? { status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(frames) }
      : { status: 200, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify(TOOL_MESSAGE)] };
};
const serveBedrock = (stream: boolean) => bedrockRoute(bedrock, stream ? { stream: eventStreamReply(BEDROCK_TOOL_STREAM) } : { converse: jsonReply(TOOL_RESPONSE) });

describe.each([
  { name: 'Anthropic', model: 'claude-3-5-sonnet-20241022', serve: serveAnthropic, route: 'anthropic:claude-3-5-sonnet-20241022' },
  { name: 'Bedrock', model: 'claude-3-opus-20240229', serve: serveBedrock, route: 'bedrock:anthropic.claude-3-5-sonnet-20241022-v2:0' },
])('the openai client through the gateway to $name', ({ model, serve, route }) => {
  it('gets a completion with tool calls, in OpenAI’s shape', async () => {
    serve(false);
    const { data, response } = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Weather?' }], tools: TOOLS }).withResponse();
    validateCompletion(data);
    expect(response.headers.get('x-itapi-route')).toBe(route);
    expect(data.model).toBe(model);
    expect(data.choices[0].finish_reason).toBe('tool_calls');
    expect(data.choices[0].message.tool_calls?.[0].id).toBeTruthy();
  });

  it('streams tool calls that validate chunk by chunk and assemble into whole calls', async () => {
    serve(true);
    const stream = client.chat.completions.stream({ model, messages: [{ role: 'user', content: 'Weather?' }], tools: TOOLS, stream_options: { include_usage: true } });
    stream.on('chunk', (chunk) => validateChunk(chunk));
    const final = await stream.finalChatCompletion();
    expect(final.choices[0].finish_reason).toBe('tool_calls');
    const calls = final.choices[0].message.tool_calls ?? [];
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(call.id).toBeTruthy();
      expect(call.type === 'function' && JSON.parse(call.function.arguments)).toBeTruthy();
    }
    expect(final.usage?.completion_tokens).toBeGreaterThan(0);
  });
});

describe('fallback from Anthropic to Bedrock', () => {
  it('serves from Bedrock when Anthropic is overloaded before its first byte, and records the route', async () => {
    serveAnthropic(true, OVERLOADED_FIRST);
    serveBedrock(true);
    const bedrockCalls = bedrock.requests.length;
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-with-fallback', messages: [{ role: 'user', content: 'x' }], tools: TOOLS, stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-itapi-route')).toBe('bedrock:anthropic.claude-3-5-sonnet-20241022-v2:0');
    const events = await readSse(res);
    expect(events.at(-1)).toBe('[DONE]');
    expect(bedrock.requests.length).toBe(bedrockCalls + 1);
    await gw.gateway.background.drain();
    const ledger = await gw.gateway.stores.usage.requests(acct.accountId, 0, Date.now());
    expect(ledger.at(-1)?.route).toBe('bedrock:anthropic.claude-3-5-sonnet-20241022-v2:0');
  });

  it('does not retry once a byte has gone to the client: a mid-stream failure ends the stream with an error event', async () => {
    serveAnthropic(true, OVERLOADED_MID_STREAM);
    serveBedrock(true);
    const bedrockCalls = bedrock.requests.length;
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-with-fallback', messages: [{ role: 'user', content: 'x' }], stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-itapi-route')).toBe('anthropic:claude-3-5-sonnet-20241022');
    const events = await readSse(res);
    expect(events.at(-1)).toBe('[DONE]');
    const error = JSON.parse(events.at(-2)!);
    expect(error.error.type).toBe('server_overloaded');
    for (const e of events.slice(0, -2)) validateChunk(JSON.parse(e));
    expect(bedrock.requests.length).toBe(bedrockCalls);
  });

  it('streams plain text from Anthropic with role first and finish_reason stop', async () => {
    serveAnthropic(true, TEXT_STREAM);
    const chunks = [];
    for await (const chunk of await client.chat.completions.create({ model: 'claude-3-5-sonnet-20241022', messages: [{ role: 'user', content: 'hi' }], stream: true })) {
      validateChunk(chunk);
      chunks.push(chunk);
    }
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter(Boolean)).toEqual(['stop']);
  });
});

/** `POST /v1/messages` as the Anthropic SDK sends it. */
const postMessages = (key: string, body: Record<string, unknown>) =>
  fetch(`${gw.baseUrl}/messages`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: JSON.stringify(body) });

describe('documents on a Bedrock route, from the Messages and Responses endpoints', () => {
  const pdf = 'JVBERi0xLjQK';
  it('sends a Messages request’s PDF to Converse as a document (Bedrock takes documents; only a Chat route refuses them)', async () => {
    bedrockRoute(bedrock, { converse: jsonReply(TOOL_RESPONSE) });
    const res = await postMessages(acct.key, {
      model: 'claude-3-opus-20240229',
      max_tokens: 64,
      messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: pdf } }, { type: 'text', text: 'Summarise.' }] }],
    });
    expect(res.status).toBe(200);
    const sent = JSON.parse(bedrock.requests.at(-1)!.body.toString('utf8')) as { messages: Array<{ content: Array<Record<string, any>> }> };
    expect(sent.messages[0].content[0].document).toEqual(expect.objectContaining({ format: 'pdf', source: { bytes: pdf } }));
  });

  it('sends a Responses request’s input_file to Converse as a document', async () => {
    bedrockRoute(bedrock, { converse: jsonReply(TOOL_RESPONSE) });
    const res = await client.responses.create({
      model: 'claude-3-opus-20240229',
      input: [{ role: 'user', content: [{ type: 'input_file', filename: 'a.pdf', file_data: `data:application/pdf;base64,${pdf}` }, { type: 'input_text', text: 'Summarise.' }] }],
    });
    expect(res.status).toBe('completed');
    const sent = JSON.parse(bedrock.requests.at(-1)!.body.toString('utf8')) as { messages: Array<{ content: Array<Record<string, any>> }> };
    expect(sent.messages[0].content[0].document).toEqual(expect.objectContaining({ format: 'pdf', source: { bytes: pdf } }));
  });
});

describe('what Bedrock cannot take, refused before any hold when Bedrock is the first route', () => {
  it('answers a document by URL with Bedrock’s 400 at once, on Messages and on Responses: no hold (no 402 for a small balance), nothing counted, no call', async () => {
    // $0.10 pays a short answer, not the context window a document is held at.
    const small = await createAccount(gw, { tier: 'enterprise', rpm: 50, tpm: 100_000_000, creditsMicroUsd: 100_000 });
    const calls = bedrock.requests.length;
    const messages = await postMessages(small.key, {
      model: 'claude-3-opus-20240229',
      max_tokens: 16,
      messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'url', url: 'https://example.com/a.pdf' } }, { type: 'text', text: 'Summarise.' }] }],
    });
    expect(messages.status).toBe(400);
    expect(JSON.stringify(await messages.json())).toMatch(/Document URLs are not supported/);
    const responses = await fetch(`${gw.baseUrl}/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${small.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-3-opus-20240229', max_output_tokens: 16, input: [{ role: 'user', content: [{ type: 'input_file', file_url: 'https://example.com/a.pdf' }, { type: 'input_text', text: 'Summarise.' }] }] }),
    });
    expect(responses.status).toBe(400);
    expect((await responses.json()).error.param).toBe('messages[0].content[0]');
    expect(bedrock.requests.length).toBe(calls);
    // The next request is the minute's first: neither refused one was admitted.
    bedrockRoute(bedrock, { converse: jsonReply(TOOL_RESPONSE) });
    const ok = await fetch(`${gw.baseUrl}/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${small.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-3-opus-20240229', max_output_tokens: 16, input: 'Hi' }),
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-ratelimit-remaining-requests')).toBe('49');
  });
});
