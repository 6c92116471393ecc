import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import type { CatalogFile } from '../../lambda/catalog';
import { defaultProviders } from '../../lambda/providers';
import { eventStreamReply, jsonReply, route as bedrockRoute, testBedrockProvider } from '../providers/bedrock/stand-in';
import { CACHED_STREAM, TEXT_RESPONSE, TOOL_STREAM as BEDROCK_TOOL_STREAM } from '../providers/bedrock/transcripts';
import { expectErrorBody } from '../reliability/support';
import { catalogOf, createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { validateResponse, validateResponseItemList } from '../support/openai-schema';
import {
  anthropicAnswer,
  expectWellFormedStream,
  modelEntry,
  openAiAnswer,
  parseResponseEvents,
  StandIn,
  TOOL_ARGUMENTS,
  type ResponseEventData,
  warmResponseValidators,
} from './support';

/**
 * `POST /v1/responses` and the stored-response routes through the whole local gateway, on
 * every provider: OpenAI-compatible and Anthropic stand-ins speaking their real protocols on
 * loopback, a Bedrock stand-in (HTTP/2, event-stream) and the mock.
 */
const openai = new StandIn('http1');
const anthropic = new StandIn('http1');
const bedrock = new StandIn('h2c');
let gw: TestGateway;
let acct: TestAccount;
let other: TestAccount;
let client: OpenAI;

const CODEX = JSON.parse(readFileSync(join(__dirname, 'fixtures/codex-requests.json'), 'utf8')) as {
  turn1: { body: Record<string, unknown> };
  turn2: { body: Record<string, unknown> };
};

const WEATHER_TOOL = {
  type: 'function' as const,
  name: 'get_weather',
  description: 'Weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  strict: false,
};

beforeAll(async () => {
  warmResponseValidators();
  const [openaiUrl, anthropicUrl, bedrockUrl] = await Promise.all([openai.start(), anthropic.start(), bedrock.start()]);
  openai.handler = (request) => openAiAnswer(request);
  anthropic.handler = (request) => anthropicAnswer(request);
  const catalog: CatalogFile = {
    models: {
      'gpt-test': modelEntry({ provider: 'openai-compatible', base_url: `${openaiUrl}/v1`, model: 'upstream-model' }),
      'claude-test': modelEntry({ provider: 'anthropic', base_url: anthropicUrl, model: 'claude-standin' }, 'anthropic'),
      'claude-then-chat': { ...modelEntry({ provider: 'anthropic', base_url: anthropicUrl, model: 'claude-overloaded' }, 'anthropic'), routes: [{ provider: 'anthropic', base_url: anthropicUrl, model: 'claude-overloaded' }, { provider: 'openai-compatible', base_url: `${openaiUrl}/v1`, model: 'upstream-model' }] },
      'bedrock-test': modelEntry({ provider: 'bedrock', base_url: bedrockUrl, model: 'anthropic.claude-3-5-sonnet-20241022-v2:0', region: 'us-east-1' }, 'anthropic'),
      'mock-test': modelEntry({ provider: 'mock', model: 'mock-test' }),
    },
  };
  gw = await startTestGateway({ catalog: catalogOf(catalog), providers: { ...defaultProviders(), bedrock: testBedrockProvider() } });
  acct = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
  other = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
  client = new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 0 });
});

afterAll(async () => {
  await gw.stop();
  await Promise.all([openai.stop(), anthropic.stop(), bedrock.stop()]);
});

function post(body: unknown, key = acct.key, path = '/responses'): Promise<Response> {
  return fetch(`${gw.baseUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

function get(path: string, key = acct.key, method = 'GET'): Promise<Response> {
  return fetch(`${gw.baseUrl}${path}`, { method, headers: { authorization: `Bearer ${key}` } });
}

async function streamed(body: Record<string, unknown>, key = acct.key): Promise<{ res: Response; events: ResponseEventData[]; last: ResponseEventData }> {
  const res = await post({ ...body, stream: true }, key);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const events = parseResponseEvents(await res.text());
  return { res, events, last: expectWellFormedStream(events) };
}

function lastUpstreamJson(standIn: StandIn): Record<string, any> {
  return standIn.lastJson();
}

const ROUTES = [
  { name: 'OpenAI-compatible', model: 'gpt-test', route: 'openai-compatible:upstream-model', text: /^Echo: Hello there/, cached: 12, reasoning: 4 },
  { name: 'Anthropic', model: 'claude-test', route: 'anthropic:claude-standin', text: /^Echo: Hello there/, cached: 20, reasoning: 0 },
  { name: 'mock', model: 'mock-test', route: 'mock:mock-test', text: /mock answer from itapi to: Hello there/, cached: 0, reasoning: 0 },
];

describe.each(ROUTES)('POST /v1/responses on the $name route', ({ model, route, text, cached, reasoning }) => {
  it('answers JSON with a Response that validates, usage with cached and reasoning tokens', async () => {
    const res = await post({ model, input: 'Hello there', instructions: 'Be brief.' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-itapi-route')).toBe(route);
    const body = await res.json();
    validateResponse(body);
    expect(body).toMatchObject({ object: 'response', status: 'completed', model, instructions: 'Be brief.', store: true, error: null, incomplete_details: null });
    expect(body.id).toMatch(/^resp_/);
    expect(body.output).toHaveLength(1);
    expect(body.output[0]).toMatchObject({ type: 'message', role: 'assistant', status: 'completed' });
    expect(body.output[0].content[0]).toMatchObject({ type: 'output_text', annotations: [], logprobs: [] });
    expect(body.output[0].content[0].text).toMatch(text);
    expect(body.usage.input_tokens_details).toEqual({ cached_tokens: cached, cache_write_tokens: 0 });
    expect(body.usage.output_tokens_details).toEqual({ reasoning_tokens: reasoning });
    expect(body.usage.total_tokens).toBe(body.usage.input_tokens + body.usage.output_tokens);
  });

  it('gives the openai client output_text from responses.create', async () => {
    const response = await client.responses.create({ model, input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hello there' }] }] });
    expect(response.output_text).toMatch(text);
  });

  it('streams the documented events in order, which responses.stream assembles', async () => {
    const { events, last } = await streamed({ model, input: 'Hello there' });
    expect(last.type).toBe('response.completed');
    expect(events.filter((e) => e.type === 'response.output_text.delta').length).toBeGreaterThan(1);
    expect(last.response.usage.input_tokens_details.cached_tokens).toBe(cached);
    expect(last.response.usage.output_tokens_details.reasoning_tokens).toBe(reasoning);

    const stream = client.responses.stream({ model, input: 'Hello there' });
    const types: string[] = [];
    stream.on('event', (event) => types.push(event.type));
    const final = await stream.finalResponse();
    expect(final.output_text).toMatch(text);
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
  });

  it('runs a tool round trip with previous_response_id, keeping the call_id', async () => {
    const first = await client.responses.create({ model, input: 'What is the weather in Paris?', tools: [WEATHER_TOOL] });
    const call = first.output.find((o) => o.type === 'function_call');
    if (call?.type !== 'function_call') throw new Error(`no function call in ${JSON.stringify(first.output)}`);
    expect(call.name).toBe('get_weather');
    expect(JSON.parse(call.arguments)).toEqual(expect.any(Object));
    expect(call.id).toMatch(/^fc_/);
    const second = await client.responses.create({
      model,
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'Sunny, 22 C' }],
      tools: [WEATHER_TOOL],
    });
    expect(second.previous_response_id).toBe(first.id);
    expect(second.output.map((o) => o.type)).toEqual(['message']);
    if (model === 'gpt-test') {
      const upstream = lastUpstreamJson(openai);
      expect(upstream.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant', 'tool']);
      expect(upstream.messages[1].tool_calls[0].id).toBe(call.call_id);
      expect(upstream.messages[2]).toEqual({ role: 'tool', tool_call_id: call.call_id, content: 'Sunny, 22 C' });
    }
    if (model === 'claude-test') {
      const upstream = lastUpstreamJson(anthropic);
      expect(upstream.messages[1].content[0]).toMatchObject({ type: 'tool_use', id: call.call_id, name: 'get_weather' });
      expect(upstream.messages[2].content[0]).toMatchObject({ type: 'tool_result', tool_use_id: call.call_id });
    }
  });

  it('runs a tool round trip with the full history and store: false', async () => {
    const input: OpenAI.Responses.ResponseInputItem[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const first = await client.responses.create({ model, input, tools: [WEATHER_TOOL], store: false });
    expect((first as { store?: boolean }).store).toBe(false);
    const call = first.output.find((o) => o.type === 'function_call');
    if (call?.type !== 'function_call') throw new Error('no function call');
    const second = await client.responses.create({
      model,
      store: false,
      tools: [WEATHER_TOOL],
      input: [...input, call, { type: 'function_call_output', call_id: call.call_id, output: 'Sunny' }],
    });
    expect(second.output_text.length).toBeGreaterThan(0);
    expect((await get(`/responses/${first.id}`)).status).toBe(404);
  });

  it('streams a function call as an item added, argument deltas, done, and item done', async () => {
    const { events, last } = await streamed({ model, input: 'Weather in Paris?', tools: [WEATHER_TOOL] });
    const call = last.response.output.find((o: { type: string }) => o.type === 'function_call');
    expect(call).toMatchObject({ type: 'function_call', name: 'get_weather', status: 'completed' });
    expect(JSON.parse(call.arguments)).toEqual(model === 'mock-test' ? { city: 'example' } : JSON.parse(TOOL_ARGUMENTS));
    const types = events.map((e) => e.type);
    expect(types).toContain('response.function_call_arguments.delta');
    const done = events.find((e) => e.type === 'response.output_item.done' && e.item.type === 'function_call');
    expect(done?.item.call_id).toBe(call.call_id);
  });
});

describe('POST /v1/responses on the Bedrock route', () => {
  it('answers JSON from Converse with cached tokens', async () => {
    bedrockRoute(bedrock, { converse: jsonReply(TEXT_RESPONSE) });
    const res = await post({ model: 'bedrock-test', input: 'Hi' });
    const body = await res.json();
    validateResponse(body);
    expect(res.headers.get('x-itapi-route')).toMatch(/^bedrock:/);
    expect(body.output[0].content[0].text).toBe('Hi! I am Claude on Bedrock.');
    expect(body.usage.input_tokens_details.cached_tokens).toBe(1000);
  });

  it('streams text and two tool calls as three items, each closed before the next opens', async () => {
    bedrockRoute(bedrock, { stream: eventStreamReply(BEDROCK_TOOL_STREAM) });
    const tools = [{ ...WEATHER_TOOL, name: 'top_song' }];
    const { last } = await streamed({ model: 'bedrock-test', input: 'Top songs?', tools });
    expect(last.response.output.map((o: { type: string }) => o.type)).toEqual(['message', 'function_call', 'function_call']);
    expect(last.response.output.slice(1).map((o: { call_id: string }) => o.call_id)).toEqual(['tooluse_kZJMlvQmRJ6eAyJE5GIl7Q', 'tooluse_Qa1B2c3D4e5F6g7H8i9J0k']);
    expect(last.response.output.map((o: { output_index?: number; id: string }) => o.id)).toEqual(expect.arrayContaining([expect.stringMatching(/^msg_/)]));
  });

  it('streams usage with cache reads', async () => {
    bedrockRoute(bedrock, { stream: eventStreamReply(CACHED_STREAM) });
    const { last } = await streamed({ model: 'bedrock-test', input: 'Hi' });
    expect(last.response.usage.input_tokens_details.cached_tokens).toBe(1800);
  });
});

describe('reasoning.effort', () => {
  it('reaches an OpenAI-compatible route as reasoning_effort and an Anthropic route as a thinking budget', async () => {
    expect((await post({ model: 'gpt-test', input: 'Hello there', reasoning: { effort: 'high' } })).status).toBe(200);
    expect(lastUpstreamJson(openai)).toMatchObject({ reasoning_effort: 'high' });
    expect(lastUpstreamJson(openai)).not.toHaveProperty('thinking');
    const res = await post({ model: 'claude-test', input: 'Hello there', reasoning: { effort: 'medium' } });
    expect(res.status).toBe(200);
    const body = await res.json();
    validateResponse(body);
    expect(body.reasoning.effort).toBe('medium');
    const upstream = lastUpstreamJson(anthropic);
    // medium is 4,096 tokens of thinking; the model's ceiling here is 4,096 in all, so one less.
    expect(upstream.max_tokens).toBe(4096);
    expect(upstream.thinking).toEqual({ type: 'enabled', budget_tokens: 4095 });
    expect(upstream).not.toHaveProperty('reasoning_effort');
  });
});

describe('what Codex sends', () => {
  it('answers its first turn: developer messages, hosted tools dropped and named, nothing Responses-only upstream', async () => {
    const before = openai.requests.length;
    const { res, last } = await streamed({ ...CODEX.turn1.body, model: 'gpt-test' });
    expect(last.type).toBe('response.completed');
    expect(last.response.store).toBe(false);
    const ignored = res.headers.get('x-itapi-ignored')!.split(', ');
    expect(ignored).toEqual(expect.arrayContaining(['web_search', 'namespace:multi_agent_v1']));
    expect(openai.requests.length).toBe(before + 1);
    const upstream = lastUpstreamJson(openai);
    for (const field of ['input', 'include', 'store', 'client_metadata', 'prompt_cache_key', 'reasoning', 'previous_response_id', 'instructions', 'text']) {
      expect(upstream).not.toHaveProperty(field);
    }
    // The instructions and the developer message before the first turn are one system prompt (the Chat codec joins them; docs/ARCHITECTURE.md, difference 2).
    expect(upstream.messages.map((m: { role: string }) => m.role)).toEqual(['system', 'user', 'user']);
    expect(upstream.tools.every((t: { type: string }) => t.type === 'function')).toBe(true);
    expect(upstream.tools.map((t: { function: { name: string } }) => t.function.name)).toContain('exec_command');
    // Stored nothing: Codex sends store: false.
    expect((await get(`/responses/${last.response.id}`)).status).toBe(404);
  });

  it('answers its second turn: the function call and its output paired by call_id, reasoning items kept but nothing of them sent to a Chat route', async () => {
    const body = CODEX.turn2.body as { input: unknown[] };
    const withReasoning = { ...body, model: 'gpt-test', input: [...body.input.slice(0, 4), { type: 'reasoning', id: 'rs_1', summary: [], content: null, encrypted_content: 'opaque' }, ...body.input.slice(4)] };
    const { res, last } = await streamed(withReasoning);
    expect(last.type).toBe('response.completed');
    // Reasoning items are kept for the provider that thought them (issue 18), no longer named as ignored.
    expect(res.headers.get('x-itapi-ignored')).not.toContain('input:reasoning');
    const upstream = lastUpstreamJson(openai);
    const assistant = upstream.messages.find((m: { role: string }) => m.role === 'assistant');
    expect(assistant.tool_calls).toEqual([{ id: 'call_abc123', type: 'function', function: { name: 'exec_command', arguments: '{"cmd":"echo hi"}' } }]);
    const tool = upstream.messages.find((m: { role: string }) => m.role === 'tool');
    expect(tool.tool_call_id).toBe('call_abc123');
    expect(JSON.stringify(upstream)).not.toContain('opaque');
  });
});

describe('stored responses', () => {
  it('reads a response back, lists its input items and deletes it, with the openai client', async () => {
    const created = await client.responses.create({
      model: 'mock-test',
      input: [
        { role: 'developer', content: 'Answer in French.' },
        { role: 'user', content: 'one' },
        { role: 'assistant', content: 'un' },
        { role: 'user', content: [{ type: 'input_text', text: 'two' }] },
      ],
    });
    const res = await get(`/responses/${created.id}`);
    expect(res.status).toBe(200);
    const body = await res.json();
    validateResponse(body);
    expect(body.output).toEqual(created.output);
    expect(body.usage).toEqual(created.usage);

    const listRes = await get(`/responses/${created.id}/input_items?order=asc`);
    const list = await listRes.json();
    validateResponseItemList(list);
    expect(list.data.map((i: { role: string }) => i.role)).toEqual(['developer', 'user', 'assistant', 'user']);
    expect(list.data.every((i: { id: string }) => /^msg_/.test(i.id))).toBe(true);
    expect(list.has_more).toBe(false);

    // Default order is newest first; the client pages with after = the last id it saw.
    const paged: string[] = [];
    for await (const item of client.responses.inputItems.list(created.id, { limit: 1 })) paged.push(item.id);
    expect(paged).toEqual(list.data.map((i: { id: string }) => i.id).reverse());
    const firstPage = await (await get(`/responses/${created.id}/input_items?limit=3`)).json();
    validateResponseItemList(firstPage);
    expect(firstPage.has_more).toBe(true);
    expect(firstPage.first_id).toBe(paged[0]);
    expect(firstPage.last_id).toBe(paged[2]);

    await client.responses.delete(created.id);
    expect((await get(`/responses/${created.id}`)).status).toBe(404);
    expect((await get(`/responses/${created.id}/input_items`)).status).toBe(404);
    expect((await get(`/responses/${created.id}`, acct.key, 'DELETE')).status).toBe(404);
  });

  it('is readable the moment response.completed arrives', async () => {
    const { last } = await streamed({ model: 'gpt-test', input: 'Hello there' });
    const res = await get(`/responses/${last.response.id}`);
    expect(res.status).toBe(200);
    expect((await res.json()).output).toEqual(last.response.output);
  });

  it('replays a stored response as a stream with GET ?stream=true', async () => {
    bedrockRoute(bedrock, { stream: eventStreamReply(BEDROCK_TOOL_STREAM) });
    const { events, last } = await streamed({ model: 'bedrock-test', input: 'Top songs?', tools: [{ ...WEATHER_TOOL, name: 'top_song' }] });
    const res = await get(`/responses/${last.response.id}?stream=true`);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const replayed = parseResponseEvents(await res.text());
    const replayedLast = expectWellFormedStream(replayed);
    expect(replayedLast.response).toEqual(last.response);
    // The same items opened and closed in the same order (a replay sends each text or arguments in one delta).
    const shape = (list: ResponseEventData[]) => list.filter((e) => !e.type.endsWith('.delta')).map((e) => e.type);
    expect(shape(replayed)).toEqual(shape(events));
    const after = parseResponseEvents(await (await get(`/responses/${last.response.id}?stream=true&starting_after=5`)).text());
    expect(after[0].sequence_number).toBe(6);
    expect(after.length).toBe(replayed.length - 6);
  });

  it('keeps each account’s responses to itself: another account’s id is not found', async () => {
    const mine = await client.responses.create({ model: 'mock-test', input: 'secret plans' });
    for (const path of [`/responses/${mine.id}`, `/responses/${mine.id}/input_items`]) {
      const res = await get(path, other.key);
      expect(res.status).toBe(404);
      expectErrorBody(await res.json(), 'invalid_request_error', 'not_found');
    }
    expect((await get(`/responses/${mine.id}`, other.key, 'DELETE')).status).toBe(404);
    const continued = await post({ model: 'mock-test', previous_response_id: mine.id, input: 'go on' }, other.key);
    expect(continued.status).toBe(400);
    expectErrorBody(await continued.json(), 'invalid_request_error', 'previous_response_not_found');
    const referenced = await post({ model: 'mock-test', input: [{ type: 'item_reference', id: mine.output[0].id! }, { role: 'user', content: 'and?' }] }, other.key);
    expect(referenced.status).toBe(404);
    // Still there for its owner.
    expect((await get(`/responses/${mine.id}`)).status).toBe(200);
  });

  it('resolves item_reference to the stored item, as the AI SDK sends for earlier answers', async () => {
    const first = await client.responses.create({ model: 'gpt-test', input: 'Hello there' });
    await client.responses.create({
      model: 'gpt-test',
      input: [{ role: 'user', content: 'Hello there' }, { type: 'item_reference', id: first.output[0].id! }, { role: 'user', content: 'And again' }],
    });
    const upstream = lastUpstreamJson(openai);
    expect(upstream.messages).toEqual([
      { role: 'user', content: 'Hello there' },
      { role: 'assistant', content: first.output_text },
      { role: 'user', content: 'And again' },
    ]);
  });

  it('does not carry instructions over from the previous response', async () => {
    const first = await client.responses.create({ model: 'gpt-test', input: 'one', instructions: 'Only in the first.' });
    await client.responses.create({ model: 'gpt-test', input: 'two', previous_response_id: first.id });
    const upstream = lastUpstreamJson(openai);
    expect(JSON.stringify(upstream.messages)).not.toContain('Only in the first.');
    expect(upstream.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant', 'user']);
  });

  it('keeps nothing with store: false, so a later previous_response_id is refused', async () => {
    const res = await post({ model: 'mock-test', input: 'x', store: false });
    const body = await res.json();
    expect(body.store).toBe(false);
    expect((await get(`/responses/${body.id}`)).status).toBe(404);
    const next = await post({ model: 'mock-test', input: 'y', previous_response_id: body.id });
    expect(next.status).toBe(400);
    expect((await next.json()).error.param).toBe('previous_response_id');
  });

  it('answers 404 for ids that are not response ids, and 405 for other methods', async () => {
    expect((await get('/responses/not-an-id')).status).toBe(404);
    expect((await get('/responses/resp_' + '0'.repeat(48))).status).toBe(404);
    const put = await fetch(`${gw.baseUrl}/responses`, { method: 'PUT', headers: { authorization: `Bearer ${acct.key}` } });
    expect(put.status).toBe(405);
  });
});

describe('request mapping', () => {
  it('drops hosted tools and names them, and refuses only a tool_choice that forces one', async () => {
    const res = await post({ model: 'gpt-test', input: 'x', tools: [{ type: 'web_search' }, { type: 'file_search', vector_store_ids: ['vs_1'] }, { type: 'code_interpreter', container: { type: 'auto' } }, WEATHER_TOOL] });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-itapi-ignored')).toBe('web_search, file_search, code_interpreter');
    const body = await res.json();
    expect(body.tools).toEqual([WEATHER_TOOL]);
    expect(lastUpstreamJson(openai).tools).toHaveLength(1);

    const forced = await post({ model: 'gpt-test', input: 'x', tools: [{ type: 'web_search' }, WEATHER_TOOL], tool_choice: { type: 'web_search_preview' } });
    expect(forced.status).toBe(400);
    const error = await forced.json();
    expectErrorBody(error, 'invalid_request_error');
    expect(error.error.message).toContain('web_search_preview');
    const custom = await post({ model: 'gpt-test', input: 'x', tools: [{ type: 'custom', name: 'apply_patch' }], tool_choice: { type: 'custom', name: 'apply_patch' } });
    expect((await custom.json()).error.message).toContain("custom 'apply_patch'");
  });

  it('narrows tools with allowed_tools and maps a named function choice', async () => {
    const other = { ...WEATHER_TOOL, name: 'get_time' };
    const res = await post({ model: 'gpt-test', input: 'x', tools: [WEATHER_TOOL, other], tool_choice: { type: 'allowed_tools', mode: 'required', tools: [{ type: 'function', name: 'get_time' }] } });
    validateResponse(await res.json());
    let upstream = lastUpstreamJson(openai);
    expect(upstream.tools.map((t: { function: { name: string } }) => t.function.name)).toEqual(['get_time']);
    expect(upstream.tool_choice).toBe('required');
    await post({ model: 'gpt-test', input: 'x', tools: [WEATHER_TOOL, other], tool_choice: { type: 'function', name: 'get_time' } });
    upstream = lastUpstreamJson(openai);
    expect(upstream.tool_choice).toEqual({ type: 'function', function: { name: 'get_time' } });
  });

  it('maps text.format, reasoning.effort, sampling and the output limit to Chat Completions', async () => {
    const schema = { type: 'object', properties: { a: { type: 'string' } }, required: ['a'], additionalProperties: false };
    const res = await post({
      model: 'gpt-test',
      input: 'x',
      metadata: { team: 'search' },
      text: { format: { type: 'json_schema', name: 'answer', schema, strict: true }, verbosity: 'low' },
      reasoning: { effort: 'high', summary: 'auto' },
      temperature: 0.5,
      top_p: 0.9,
      max_output_tokens: 50,
    });
    const echoed = await res.json();
    validateResponse(echoed);
    expect(echoed).toMatchObject({ metadata: { team: 'search' }, temperature: 0.5, top_p: 0.9, max_output_tokens: 50, reasoning: { effort: 'high', summary: 'auto' } });
    expect(echoed.text.format).toMatchObject({ type: 'json_schema', name: 'answer', strict: true });
    const upstream = lastUpstreamJson(openai);
    expect(upstream).not.toHaveProperty('metadata');
    expect(upstream.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } });
    // Not api.openai.com: the limit goes in the field every OpenAI-compatible server honours.
    expect(upstream).toMatchObject({ reasoning_effort: 'high', verbosity: 'low', temperature: 0.5, top_p: 0.9, max_tokens: 50 });

    await post({ model: 'claude-test', input: 'x', reasoning: { effort: 'high' }, text: { format: { type: 'json_object' } } });
    const claude = lastUpstreamJson(anthropic);
    expect(claude).not.toHaveProperty('reasoning_effort');
    expect(claude).not.toHaveProperty('verbosity');
    expect(claude.tool_choice).toEqual({ type: 'tool', name: 'json_object' });
  });

  it('ends with response.incomplete and usage when max_output_tokens cuts the answer', async () => {
    const json = await (await post({ model: 'gpt-test', input: 'a b c d e f g h', max_output_tokens: 3 })).json();
    validateResponse(json);
    expect(json).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } });
    expect(lastUpstreamJson(openai).max_tokens).toBe(3);
    const { last } = await streamed({ model: 'gpt-test', input: 'a b c d e f g h', max_output_tokens: 3 });
    expect(last.type).toBe('response.incomplete');
    expect(last.response.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(last.response.output[0].status).toBe('incomplete');
    expect(last.response.usage.output_tokens).toBeGreaterThan(0);
  });

  it('clamps max_output_tokens to the model’s maximum', async () => {
    await post({ model: 'gpt-test', input: 'x', max_output_tokens: 1_000_000 });
    expect(lastUpstreamJson(openai).max_tokens).toBe(4096);
  });

  it('sends images as image_url parts', async () => {
    const url = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
    await post({ model: 'gpt-test', input: [{ role: 'user', content: [{ type: 'input_text', text: 'what?' }, { type: 'input_image', image_url: url }] }] });
    expect(lastUpstreamJson(openai).messages[0].content).toEqual([
      { type: 'text', text: 'what?' },
      { type: 'image_url', image_url: { url, detail: 'auto' } },
    ]);
  });

  it.each([
    [{ background: true }, 'background'],
    // Decoded (a document, a file image); the Chat route refuses them when tried (codec difference 7).
    [{ input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file_1' }] }] }, 'messages[0].content[0]'],
    [{ input: [{ role: 'user', content: [{ type: 'input_image', file_id: 'file_1' }] }] }, 'messages[0].content[0].source'],
    [{ input: [{ role: 'robot', content: 'x' }] }, 'input[0].role'],
    [{ input: [{ type: 'function_call_output', output: 'x' }] }, 'input[0].call_id'],
    [{ input: undefined }, 'input'],
    [{ temperature: 3 }, 'temperature'],
    [{ tools: [{ type: 'function', name: 'bad name' }] }, 'tools[0].name'],
    [{ input: [{ type: 'item_reference', id: 'msg_unknown' }] }, 'input[0]'],
  ])('refuses %j with an OpenAI error naming %s', async (patch, param) => {
    const res = await post({ model: 'gpt-test', input: 'x', ...patch });
    expect([400, 404]).toContain(res.status);
    const body = await res.json();
    expectErrorBody(body, 'invalid_request_error');
    expect(body.error.param).toBe(param);
  });

  it('refuses what a Chat route cannot take before any hold: no upstream call, nothing counted in the minute', async () => {
    const fresh = await createAccount(gw, { tier: 'enterprise', rpm: 50, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
    const before = openai.requests.length;
    const res = await post({ model: 'gpt-test', input: [{ role: 'user', content: [{ type: 'input_file', filename: 'a.pdf', file_data: 'data:application/pdf;base64,JVBERi0=' }] }] }, fresh.key);
    expect(res.status).toBe(400);
    expect((await res.json()).error.param).toBe('messages[0].content[0]');
    expect(openai.requests.length).toBe(before);
    // The next request is the minute's first: the refused one was never admitted.
    const ok = await post({ model: 'gpt-test', input: 'x' }, fresh.key);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-ratelimit-remaining-requests')).toBe('49');
  });

  it('leaves a document to a Claude first route, and a Chat fallback refuses it in its turn (400, not sent)', async () => {
    const was = anthropic.handler;
    anthropic.handler = () => ({ status: 529, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })] });
    try {
      const [claudeCalls, chatCalls] = [anthropic.requests.length, openai.requests.length];
      const res = await post({ model: 'claude-then-chat', input: [{ role: 'user', content: [{ type: 'input_file', filename: 'a.pdf', file_data: 'data:application/pdf;base64,JVBERi0=' }] }] });
      expect(res.status).toBe(400);
      expect((await res.json()).error.param).toBe('messages[0].content[0]');
      expect(anthropic.requests.length).toBe(claudeCalls + 1);
      expect(openai.requests.length).toBe(chatCalls);
      // Without a document the same model falls back to the Chat route and answers.
      expect((await post({ model: 'claude-then-chat', input: 'x' })).status).toBe(200);
      expect(openai.requests.length).toBe(chatCalls + 1);
    } finally {
      anthropic.handler = was;
    }
  });

  it('sends input_file to a Claude route as a document, and holds the context window for it (a PDF is billed by the page; by URL, unknown)', async () => {
    const pdf = 'JVBERi0xLjQK';
    const res = await post({ model: 'claude-test', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Summarise.' }, { type: 'input_file', filename: 'a.pdf', file_data: `data:application/pdf;base64,${pdf}` }] }] });
    expect(res.status).toBe(200);
    const sent = lastUpstreamJson(anthropic).messages[0].content;
    expect(sent).toContainEqual(expect.objectContaining({ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: pdf } }));
    // The OpenAI SDK's own request shape, streamed.
    const stream = await client.responses.create({
      model: 'claude-test',
      stream: true,
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'Summarise.' }, { type: 'input_file', filename: 'b.pdf', file_data: `data:application/pdf;base64,${pdf}` }] }],
    });
    let completed: string | undefined;
    for await (const event of stream) {
      if (event.type === 'response.completed') completed = event.response.output.flatMap((item) => (item.type === 'message' ? item.content : [])).map((c) => (c.type === 'output_text' ? c.text : '')).join('');
    }
    expect(completed).toMatch(/^Echo: Summarise\./);
    expect(lastUpstreamJson(anthropic).messages[0].content).toContainEqual(expect.objectContaining({ type: 'document', title: 'b.pdf' }));

    // 10,000 micro-USD pays this short prompt, not the 128,000-token context window a document is held at (19,200).
    const small = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 10_000 });
    const withFile = (file?: Record<string, string>) =>
      post({ model: 'claude-test', max_output_tokens: 16, input: [{ role: 'user', content: [{ type: 'input_text', text: 'Summarise.' }, ...(file ? [{ type: 'input_file', ...file }] : [])] }] }, small.key);
    for (const file of [{ file_url: 'https://example.com/a.pdf' }, { filename: 'a.pdf', file_data: `data:application/pdf;base64,${pdf}` }] as Array<Record<string, string>>) {
      const refused = await withFile(file);
      expect(refused.status).toBe(402);
      expectErrorBody(await refused.json(), 'insufficient_quota');
    }
    expect((await withFile()).status).toBe(200);
    // Paid for, it goes to Anthropic by its URL.
    expect((await post({ model: 'claude-test', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Summarise.' }, { type: 'input_file', file_url: 'https://example.com/a.pdf' }] }] })).status).toBe(200);
    expect(lastUpstreamJson(anthropic).messages[0].content).toContainEqual(expect.objectContaining({ type: 'document', source: { type: 'url', url: 'https://example.com/a.pdf' } }));
  });

  it('answers an unknown model with 404 and an account without credits with 402, before any stream', async () => {
    const unknown = await post({ model: 'nope', input: 'x', stream: true });
    expect(unknown.status).toBe(404);
    expectErrorBody(await unknown.json(), 'invalid_request_error', 'model_not_found');
    const poor = await createAccount(gw, { creditsMicroUsd: 0 });
    const res = await post({ model: 'gpt-test', input: 'x', stream: true }, poor.key);
    expect(res.status).toBe(402);
    expectErrorBody(await res.json(), 'insufficient_quota');
  });
});
