import OpenAI from 'openai';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createAccount, type TestAccount, type TestGateway } from '../support/gateway';
import { validateResponse } from '../support/openai-schema';
import { openaiLogprob, startThreeRoutes, threeRouteCatalog, type ThreeRoutes } from '../support/three-routes';
import { expectWellFormedStream, parseResponseEvents, warmResponseValidators, type ResponseEventData } from './support';

/**
 * Issue 18 follow-up: `/v1/responses` keeps the URL citations and the logprobs an OpenAI-compatible
 * upstream sent (its Chat `annotations` and per-token `logprobs`), in each `output_text` part, on
 * the stream's `output_text.delta` and `output_text.annotation.added` events, and in the stored
 * response and its replay; logprobs are asked upstream only when the client asked, and routes that
 * return none refuse them with a 400 naming the parameter. The real `openai` package is the client,
 * a loopback stand-in the upstream, the contract's schemas the judge.
 */

const CATALOG = threeRouteCatalog({ model: 'gpt-4o-search-preview' });

const logprob = openaiLogprob;

/** What the search model answers, token by token, as OpenAI's Chat sends `logprobs: true, top_logprobs: 2`. */
const TOKENS = [
  logprob('Paris', -0.0001, [['Paris', -0.0001], ['The', -9.2]]),
  logprob(' is', -0.02, [[' is', -0.02], [',', -4.1]]),
  logprob(' the', -0.001, [[' the', -0.001], [' France', -7.5]]),
  logprob(' capital', -0.003, [[' capital', -0.003], [' city', -6.2]]),
  logprob('.', -0.3, [['.', -0.3], ['!', -1.4]]),
];
const TEXT = TOKENS.map((t) => t.token).join('');
/** Two citations as Chat gives them: offsets into the message's text. */
const CITATIONS = [
  { type: 'url_citation', url_citation: { url: 'https://en.wikipedia.org/wiki/Paris', title: 'Paris - Wikipedia', start_index: 0, end_index: 5 } },
  { type: 'url_citation', url_citation: { url: 'https://example.org/capitals', title: 'Capitals of Europe', start_index: 13, end_index: 21 } },
];
/** The same citations as a Responses `output_text` part carries them. */
const RESPONSES_CITATIONS = CITATIONS.map(({ url_citation: c }) => ({ type: 'url_citation', start_index: c.start_index, end_index: c.end_index, url: c.url, title: c.title }));
const USAGE = { prompt_tokens: 12, completion_tokens: TOKENS.length, total_tokens: 12 + TOKENS.length };

let routes: ThreeRoutes;
let upstream: ThreeRoutes['upstream'];
let gw: TestGateway;
let acct: TestAccount;
let client: OpenAI;

function serve(req: IncomingMessage, body: any, res: ServerResponse): void {
  if (!(req.url ?? '').endsWith('/chat/completions')) {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ type: 'error', error: { type: 'api_error', message: 'not expected' } }));
    return;
  }
  const asked = body.logprobs === true;
  const base = { id: 'chatcmpl-Search1', created: 1765000000, model: body.model, system_fingerprint: 'fp_search' };
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json' });
    const message = { role: 'assistant', content: TEXT, refusal: null, annotations: CITATIONS };
    res.end(JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, message, logprobs: asked ? { content: TOKENS, refusal: null } : null, finish_reason: 'stop' }], usage: USAGE }));
    return;
  }
  // As OpenAI streams a search model: a chunk per token (its logprobs with it), the citations in a chunk of their own at the end.
  const chunk = (choices: object[], usage: object | null = null) => `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices, usage })}\n\n`;
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write(chunk([{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }]));
  for (const token of TOKENS) res.write(chunk([{ index: 0, delta: { content: token.token }, logprobs: asked ? { content: [token], refusal: null } : null, finish_reason: null }]));
  res.write(chunk([{ index: 0, delta: { annotations: CITATIONS }, logprobs: null, finish_reason: null }]));
  res.write(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]));
  if (body.stream_options?.include_usage) res.write(chunk([], USAGE));
  res.end('data: [DONE]\n\n');
}

beforeAll(async () => {
  warmResponseValidators();
  routes = await startThreeRoutes(CATALOG, serve);
  ({ gw, upstream } = routes);
  acct = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 10_000_000, creditsMicroUsd: 10_000_000 });
  client = new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 0 });
});

beforeEach(() => {
  routes.resetBedrock();
});

afterAll(async () => {
  await routes?.stop();
});

const ASK = { include: ['message.output_text.logprobs' as const], top_logprobs: 2 };

/** The one `output_text` part of a response's one message. */
function outputText(response: { output: Array<{ type: string; content?: any[] }> }) {
  const messages = response.output.filter((o) => o.type === 'message');
  expect(messages).toHaveLength(1);
  expect(messages[0].content).toHaveLength(1);
  return messages[0].content![0];
}

/** Chat's logprob → the output_text part's (the same here: every token has bytes). */
const PART_LOGPROBS = TOKENS;
/** → a delta event's (no bytes). */
const eventLogprob = (t: (typeof TOKENS)[number]) => ({ token: t.token, logprob: t.logprob, top_logprobs: t.top_logprobs.map(({ token, logprob: lp }) => ({ token, logprob: lp })) });

/** Checks a stream's text events: each delta's logprobs are its tokens, the citations are added after the text and before its done. */
function expectTextEvents(events: ResponseEventData[], withLogprobs: boolean): void {
  const deltas = events.filter((e) => e.type === 'response.output_text.delta');
  expect(deltas.map((d) => d.delta).join('')).toBe(TEXT);
  if (withLogprobs) {
    expect(deltas.flatMap((d) => d.logprobs)).toEqual(TOKENS.map(eventLogprob));
    // Each delta carries the tokens it is made of.
    for (const d of deltas) expect((d.logprobs as Array<{ token: string }>).map((l) => l.token).join('')).toBe(d.delta);
  } else for (const d of deltas) expect(d.logprobs).toEqual([]);
  const added = events.filter((e) => e.type === 'response.output_text.annotation.added');
  expect(added.map((e) => e.annotation)).toEqual(RESPONSES_CITATIONS);
  expect(added.map((e) => e.annotation_index)).toEqual([0, 1]);
  const lastDelta = events.lastIndexOf(deltas[deltas.length - 1]);
  const done = events.findIndex((e) => e.type === 'response.output_text.done');
  for (const e of added) {
    expect(events.indexOf(e)).toBeGreaterThan(lastDelta);
    expect(events.indexOf(e)).toBeLessThan(done);
    expect(e).toMatchObject({ item_id: deltas[0].item_id, output_index: deltas[0].output_index, content_index: deltas[0].content_index });
  }
  expect(events[done].logprobs).toEqual(withLogprobs ? TOKENS.map(eventLogprob) : []);
  const partDone = events.find((e) => e.type === 'response.content_part.done')!;
  expect(partDone.part).toEqual({ type: 'output_text', text: TEXT, annotations: RESPONSES_CITATIONS, logprobs: withLogprobs ? PART_LOGPROBS : [] });
}

async function replay(id: string): Promise<ResponseEventData[]> {
  const res = await fetch(`${gw.baseUrl}/responses/${id}?stream=true`, { headers: { authorization: `Bearer ${acct.key}` } });
  expect(res.status).toBe(200);
  return parseResponseEvents(await res.text());
}

describe('a JSON response keeps the citations and the logprobs it asked for', () => {
  it('writes each output_text part with its url_citations and logprobs, asks the upstream for logprobs: true, top_logprobs, and stores and replays them', async () => {
    const response = await client.responses.create({ model: 'oa', input: 'What is the capital of France?', ...ASK });
    validateResponse(response);
    expect(upstream.requests.at(-1)).toMatchObject({ logprobs: true, top_logprobs: 2 });
    expect(outputText(response)).toEqual({ type: 'output_text', text: TEXT, annotations: RESPONSES_CITATIONS, logprobs: PART_LOGPROBS });
    expect(response.top_logprobs).toBe(2);
    // The SDK's own reading of the answer.
    expect(response.output_text).toBe(TEXT);

    const stored = await client.responses.retrieve(response.id);
    validateResponse(stored);
    expect(outputText(stored)).toEqual(outputText(response));

    const events = await replay(response.id);
    const last = expectWellFormedStream(events);
    expectTextEvents(events, true);
    expect(outputText(last.response)).toEqual(outputText(response));
  });

  it('keeps the citations but writes logprobs: [] and asks the upstream for none when the client did not ask', async () => {
    const response = await client.responses.create({ model: 'oa', input: 'What is the capital of France?' });
    validateResponse(response);
    expect(upstream.requests.at(-1)).not.toHaveProperty('logprobs');
    expect(upstream.requests.at(-1)).not.toHaveProperty('top_logprobs');
    expect(outputText(response)).toEqual({ type: 'output_text', text: TEXT, annotations: RESPONSES_CITATIONS, logprobs: [] });
    const events = await replay(response.id);
    expectWellFormedStream(events);
    expectTextEvents(events, false);
  });

  it('a response that follows one with citations (previous_response_id) sends its text back and keeps its own', async () => {
    const first = await client.responses.create({ model: 'oa', input: 'What is the capital of France?', ...ASK });
    const second = await client.responses.create({ model: 'oa', input: 'And of Italy?', previous_response_id: first.id, ...ASK });
    validateResponse(second);
    const sent = upstream.requests.at(-1) as { messages: Array<{ role: string; content: unknown }> };
    expect(sent.messages.find((m) => m.role === 'assistant')?.content).toBe(TEXT);
    expect(outputText(second)).toEqual({ type: 'output_text', text: TEXT, annotations: RESPONSES_CITATIONS, logprobs: PART_LOGPROBS });
    // The first is unchanged in the store.
    expect(outputText(await client.responses.retrieve(first.id))).toEqual(outputText(first));
  });
});

describe('a streamed response keeps the citations and the logprobs it asked for', () => {
  it.each([
    { asked: true, request: ASK },
    { asked: false, request: {} },
  ])('the deltas carry their tokens’ logprobs (asked: $asked), annotation.added events come after the text, and the final response matches what was stored', async ({ asked, request }) => {
    const stream = await client.responses.create({ model: 'oa', input: 'What is the capital of France?', stream: true, ...request });
    const events: ResponseEventData[] = [];
    for await (const event of stream) events.push(event as unknown as ResponseEventData);
    if (asked) expect(upstream.requests.at(-1)).toMatchObject({ stream: true, logprobs: true, top_logprobs: 2 });
    else expect(upstream.requests.at(-1)).not.toHaveProperty('logprobs');
    const last = expectWellFormedStream(events);
    expect(last.type).toBe('response.completed');
    expectTextEvents(events, asked);
    const part = { type: 'output_text', text: TEXT, annotations: RESPONSES_CITATIONS, logprobs: asked ? PART_LOGPROBS : [] };
    expect(outputText(last.response)).toEqual(part);
    const itemDone = events.find((e) => e.type === 'response.output_item.done')!;
    expect(itemDone.item.content).toEqual([part]);

    const stored = await client.responses.retrieve(last.response.id);
    expect(outputText(stored)).toEqual(part);
    const replayed = await replay(last.response.id);
    expectWellFormedStream(replayed);
    expectTextEvents(replayed, asked);
  });
});

describe('routes that return no logprobs refuse them, naming the parameter', () => {
  it.each([
    { model: 'cl', provider: 'anthropic', request: { top_logprobs: 3 }, param: 'top_logprobs' },
    { model: 'cl', provider: 'anthropic', request: { include: ['message.output_text.logprobs' as const] }, param: 'include' },
    { model: 'cl-bedrock', provider: 'bedrock', request: { top_logprobs: 3 }, param: 'top_logprobs' },
    { model: 'cl-bedrock', provider: 'bedrock', request: { include: ['message.output_text.logprobs' as const], stream: true as const }, param: 'include' },
  ])('$provider: $param → 400 before any upstream call', async ({ model, request, param }) => {
    const calls = upstream.requests.length;
    const err = await client.responses.create({ model, input: 'Hi', ...request }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.param).toBe(param);
    expect(e.code).toBe('unsupported_parameter');
    expect(e.message).toContain(param === 'include' ? 'message.output_text.logprobs' : 'top_logprobs');
    expect(upstream.requests.length).toBe(calls);
  });
});
