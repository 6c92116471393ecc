import { createOpenAI } from '@ai-sdk/openai';
import { Agent, run, setDefaultOpenAIClient, setOpenAIAPI, setTracingDisabled, tool as agentTool } from '@openai/agents';
import { generateText, stepCountIs, streamText, tool } from 'ai';
import OpenAI from 'openai';
import { z } from 'zod';
import type { CatalogFile } from '../../lambda/catalog';
import { books, expectBooksBalance } from '../reliability/support';
import { catalogOf, createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { validateResponse, validateResponseEvent } from '../support/openai-schema';
import { anthropicAnswer, modelEntry, openAiAnswer, StandIn, warmResponseValidators } from './support';

/**
 * The clients people point at a Responses endpoint, unchanged but for the base URL and key:
 * the Vercel AI SDK (`openai(model)` is the Responses API) and the OpenAI Agents SDK, against
 * the gateway with OpenAI-compatible and Anthropic stand-ins on loopback.
 */
const openai = new StandIn('http1');
const anthropic = new StandIn('http1');
let gw: TestGateway;
let acct: TestAccount;

/** Every request the AI SDK sends and every Responses body or event it gets, as seen on the wire. */
const wire: { requests: Array<Record<string, any>>; bodies: unknown[] } = { requests: [], bodies: [] };

beforeAll(async () => {
  warmResponseValidators();
  const [openaiUrl, anthropicUrl] = await Promise.all([openai.start(), anthropic.start()]);
  openai.handler = (request) => openAiAnswer(request);
  anthropic.handler = (request) => anthropicAnswer(request);
  const catalog: CatalogFile = {
    models: {
      'gpt-test': modelEntry({ provider: 'openai-compatible', base_url: `${openaiUrl}/v1`, model: 'upstream-model' }),
      'claude-test': modelEntry({ provider: 'anthropic', base_url: anthropicUrl, model: 'claude-standin' }, 'anthropic'),
    },
  };
  gw = await startTestGateway({ catalog: catalogOf(catalog) });
  acct = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
});

afterAll(async () => {
  await gw.stop();
  await Promise.all([openai.stop(), anthropic.stop()]);
});

/** The AI SDK's provider, with a fetch that records what crosses the wire and validates what comes back. */
function aiSdkProvider() {
  return createOpenAI({
    baseURL: gw.baseUrl,
    apiKey: acct.key,
    fetch: async (url, init) => {
      wire.requests.push(JSON.parse(String(init?.body)));
      const res = await fetch(url, init);
      const copy = res.clone();
      void copy.text().then((text) => {
        if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
          for (const block of text.split('\n\n').filter(Boolean)) wire.bodies.push(JSON.parse(block.split('\n').find((l) => l.startsWith('data: '))!.slice(6)));
        } else wire.bodies.push(JSON.parse(text));
      });
      return res;
    },
  });
}

function expectWireValid(): void {
  for (const body of wire.bodies) {
    if ((body as { object?: string }).object === 'response') validateResponse(body);
    else validateResponseEvent(body);
  }
}

const weather = tool({
  description: 'The weather in a city',
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => ({ city, sky: 'sunny' }),
});

describe.each([
  { name: 'OpenAI-compatible', model: 'gpt-test' },
  { name: 'Anthropic', model: 'claude-test' },
])('the Vercel AI SDK (openai(model), the Responses API) on the $name route', ({ model }) => {
  beforeEach(() => {
    wire.requests.length = 0;
    wire.bodies.length = 0;
  });

  it('generateText gets the answer, usage with cached tokens, and the response id', async () => {
    const provider = aiSdkProvider();
    const result = await generateText({ model: provider(model), system: 'Be brief.', prompt: 'Hello there' });
    expect(result.text).toBe('Echo: Hello there');
    expect(result.finishReason).toBe('stop');
    expect(result.usage.inputTokenDetails.cacheReadTokens).toBe(model === 'gpt-test' ? 12 : 20);
    expect(result.providerMetadata?.openai?.responseId).toMatch(/^resp_/);
    expect(wire.requests[0]).not.toHaveProperty('stream');
    await new Promise((r) => setImmediate(r));
    expectWireValid();
  });

  it('streamText streams the text and finishes with usage', async () => {
    const provider = aiSdkProvider();
    const errors: unknown[] = [];
    const result = streamText({ model: provider(model), prompt: 'Hello there', onError: ({ error }) => void errors.push(error) });
    const pieces: string[] = [];
    for await (const piece of result.textStream) pieces.push(piece);
    expect(errors.map(String)).toEqual([]);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('')).toBe('Echo: Hello there');
    expect(await result.finishReason).toBe('stop');
    expect((await result.usage).outputTokens).toBeGreaterThan(0);
    expect(wire.requests[0].stream).toBe(true);
    await new Promise((r) => setImmediate(r));
    expectWireValid();
  });

  it('runs a tool loop, then a follow-up turn whose item_reference the gateway resolves', async () => {
    const provider = aiSdkProvider();
    const first = await generateText({ model: provider(model), prompt: 'Weather in Paris?', tools: { weather }, stopWhen: stepCountIs(3) });
    expect(first.steps).toHaveLength(2);
    expect(first.steps[0].toolCalls[0]).toMatchObject({ toolName: 'weather', input: { city: 'Paris' } });
    expect(first.steps[0].toolResults[0].output).toEqual({ city: 'Paris', sky: 'sunny' });
    expect(first.text).toBe('Echo: Weather in Paris?');
    // Step 2 sent the call and its output back, paired by call_id.
    const step2 = wire.requests[1].input as Array<Record<string, string>>;
    const call = step2.find((i) => i.type === 'function_call')!;
    const output = step2.find((i) => i.type === 'function_call_output')!;
    expect(output.call_id).toBe(call.call_id);

    const second = await generateText({ model: provider(model), messages: [...first.response.messages, { role: 'user', content: 'And tomorrow?' }] });
    const references = (wire.requests[2].input as Array<Record<string, string>>).filter((i) => i.type === 'item_reference');
    expect(references.length).toBeGreaterThan(0);
    expect(second.text).toBe('Echo: And tomorrow?');
    const upstream = model === 'gpt-test' ? openai.lastJson<any>() : anthropic.lastJson<any>();
    // The referenced answer reached the upstream as the assistant's text.
    expect(JSON.stringify(upstream.messages)).toContain('Echo: Weather in Paris?');
    await new Promise((r) => setImmediate(r));
    expectWireValid();
  });
});

describe('the OpenAI Agents SDK (Responses API)', () => {
  it('runs an agent with one tool to its final output, tracing off', async () => {
    setDefaultOpenAIClient(new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 0 }));
    setOpenAIAPI('responses');
    setTracingDisabled(true);
    const calls: string[] = [];
    const getWeather = agentTool({
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: z.object({ city: z.string() }),
      execute: async ({ city }) => {
        calls.push(city);
        return `Sunny in ${city}`;
      },
    });
    const agent = new Agent({ name: 'Weather', instructions: 'Be brief.', model: 'gpt-test', tools: [getWeather] });
    const result = await run(agent, 'Weather in Paris?');
    expect(calls).toEqual(['Paris']);
    expect(result.finalOutput).toBe('Echo: Weather in Paris?');
    const upstream = openai.lastJson<any>();
    expect(upstream.messages.at(-1)).toMatchObject({ role: 'tool', content: 'Sunny in Paris' });
    expect(upstream.messages[0]).toEqual({ role: 'system', content: 'Be brief.' });

    const streamedRun = await run(agent, 'Weather in Lyon?', { stream: true });
    for await (const event of streamedRun) void event;
    await streamedRun.completed;
    // The stand-in always asks for Paris.
    expect(calls).toEqual(['Paris', 'Paris']);
    expect(streamedRun.finalOutput).toBe('Echo: Weather in Lyon?');
  });
});

describe('the books after the clients above', () => {
  it('balance', async () => {
    const b = await books(gw, acct.accountId);
    expect(b.requests.length).toBeGreaterThan(8);
    expectBooksBalance(b);
  });
});
