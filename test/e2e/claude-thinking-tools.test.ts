import OpenAI from 'openai';
import type { CatalogFile } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { defaultProviders } from '../../lambda/providers';
import { catalogOf, createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { validateCompletion } from '../support/openai-schema';
import { sse, streamOfMessage } from '../providers/anthropic/transcripts';
import { StandIn } from '../providers/stand-in';

/**
 * Claude's thinking across a tool-call turn on `/v1/chat/completions` (issue 18): the assistant
 * message carries the provider's thinking blocks (`thinking_blocks`, `reasoning_content`), and a
 * client that sends it back as it got it gives Claude its own thinking, unchanged and in order,
 * ahead of `tool_use`, with thinking still enabled at the requested effort.
 */
const anthropic = new StandIn('http1');
let gw: TestGateway;
let acct: TestAccount;
let client: OpenAI;

const MODEL = 'claude-3-5-sonnet-20241022';
const TOOLS: OpenAI.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } },
];
const THINKING = { type: 'thinking', thinking: 'The user wants the weather; I should call get_weather.', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' };
const REDACTED = { type: 'redacted_thinking', data: 'EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP' };
const TOOL_USE = { type: 'tool_use', id: 'toolu_01A09q90qw90lq917835lq9', name: 'get_weather', input: { location: 'Paris' } };

const THINKING_TOOL_MESSAGE = {
  id: 'msg_01ThinkThenCall',
  type: 'message',
  role: 'assistant',
  model: MODEL,
  content: [THINKING, REDACTED, TOOL_USE],
  stop_reason: 'tool_use',
  stop_sequence: null,
  usage: { input_tokens: 120, output_tokens: 310 },
};

const THINKING_TOOL_STREAM = streamOfMessage(THINKING_TOOL_MESSAGE);

const FINAL_MESSAGE = {
  ...THINKING_TOOL_MESSAGE,
  id: 'msg_01Answer',
  content: [{ type: 'text', text: 'It is sunny in Paris.' }],
  stop_reason: 'end_turn',
  usage: { input_tokens: 200, output_tokens: 12 },
};

beforeAll(async () => {
  const url = await anthropic.start();
  const catalog: CatalogFile = { models: { [MODEL]: { ...DEFAULT_CATALOG.models[MODEL], routes: [{ provider: 'anthropic', base_url: url, model: MODEL }] } } };
  gw = await startTestGateway({ catalog: catalogOf(catalog), providers: defaultProviders() });
  acct = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
  client = new OpenAI({ baseURL: gw.baseUrl, apiKey: acct.key, maxRetries: 0 });
});

afterAll(async () => {
  await gw.stop();
  await anthropic.stop();
});

const json = (body: unknown) => ({ status: 200, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify(body)] });

type ThinkingMessage = OpenAI.ChatCompletionMessage & { reasoning_content?: string; thinking_blocks?: unknown[] };

/** The tool turn a client sends next: the assistant message as it got it, then the tool's result. */
function continuation(assistant: ThinkingMessage): OpenAI.ChatCompletionMessageParam[] {
  return [
    { role: 'user', content: 'Weather in Paris?' },
    assistant as OpenAI.ChatCompletionMessageParam,
    { role: 'tool', tool_call_id: assistant.tool_calls![0].id, content: '{"sky": "sunny"}' },
  ];
}

function expectThinkingKept(body: { thinking?: unknown; max_tokens?: number; messages: Array<{ role: string; content: unknown }> }) {
  expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: 16_384 });
  expect(body.messages[1]).toEqual({ role: 'assistant', content: [THINKING, REDACTED, TOOL_USE] });
  expect(body.messages[2]).toEqual({ role: 'user', content: [{ type: 'tool_result', tool_use_id: TOOL_USE.id, content: '{"sky": "sunny"}' }] });
}

describe('thinking kept across a tool-call turn on an Anthropic route, through /v1/chat/completions', () => {
  it('answers the thinking in thinking_blocks, and the message sent back reaches Claude with its thinking ahead of tool_use, thinking on', async () => {
    anthropic.handler = () => json(THINKING_TOOL_MESSAGE);
    const first = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: TOOLS, reasoning_effort: 'high', max_completion_tokens: 20_000 });
    validateCompletion(first);
    const assistant = first.choices[0].message as ThinkingMessage;
    expect(assistant.thinking_blocks).toEqual([THINKING, REDACTED]);
    expect(assistant.reasoning_content).toBe(THINKING.thinking);
    expect(first.choices[0].finish_reason).toBe('tool_calls');
    expect(anthropic.lastJson()).toMatchObject({ thinking: { type: 'enabled', budget_tokens: 16_384 } });

    anthropic.handler = () => json(FINAL_MESSAGE);
    const second = await client.chat.completions.create({ model: MODEL, messages: continuation(assistant), tools: TOOLS, reasoning_effort: 'high', max_completion_tokens: 20_000 });
    expect(second.choices[0].message.content).toBe('It is sunny in Paris.');
    expectThinkingKept(anthropic.lastJson());
  });

  it('streams the thinking and its signature, and the assembled message sent back keeps thinking on for the tool turn', async () => {
    anthropic.handler = () => ({ status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(THINKING_TOOL_STREAM) });
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: TOOLS, reasoning_effort: 'high', max_completion_tokens: 20_000, stream: true });
    // Assembled as LiteLLM's clients do: reasoning_content text, thinking_blocks by signature or redacted block.
    let reasoning = '';
    const blocks: Array<Record<string, unknown>> = [];
    const calls: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }> = [];
    for await (const chunk of stream) {
      const delta = (chunk.choices[0]?.delta ?? {}) as OpenAI.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string; thinking_blocks?: Array<Record<string, unknown>> };
      if (delta.reasoning_content) reasoning += delta.reasoning_content;
      for (const block of delta.thinking_blocks ?? []) blocks.push(block.type === 'thinking' ? { ...block, thinking: reasoning } : block);
      for (const call of delta.tool_calls ?? []) {
        if (call.id) calls.push({ id: call.id, type: 'function', function: { name: call.function?.name ?? '', arguments: '' } });
        if (call.function?.arguments) calls[call.index].function.arguments += call.function.arguments;
      }
    }
    expect(blocks).toEqual([THINKING, REDACTED]);
    const assistant = { role: 'assistant', content: null, refusal: null, tool_calls: calls, thinking_blocks: blocks } as ThinkingMessage;

    anthropic.handler = () => json(FINAL_MESSAGE);
    await client.chat.completions.create({ model: MODEL, messages: continuation(assistant), tools: TOOLS, reasoning_effort: 'high', max_completion_tokens: 20_000 });
    expectThinkingKept(anthropic.lastJson());
  });

  it('without the thinking sent back, a tool-call turn goes without thinking (Claude would refuse it)', async () => {
    anthropic.handler = () => json(FINAL_MESSAGE);
    const bare = { role: 'assistant', content: null, refusal: null, tool_calls: [{ id: TOOL_USE.id, type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } }] } as ThinkingMessage;
    await client.chat.completions.create({ model: MODEL, messages: continuation(bare), tools: TOOLS, reasoning_effort: 'high', max_completion_tokens: 20_000 });
    const body = anthropic.lastJson<{ thinking?: unknown; messages: Array<{ content: unknown }> }>();
    expect(body.thinking).toBeUndefined();
    expect(body.messages[1].content).toEqual([TOOL_USE]);
  });
});
