import type { ChatCompletionChunk } from '../../lambda/contract/openai';
import { parseCreateResponseRequest } from '../../lambda/contract/responses';
import { GatewayError } from '../../lambda/contract/errors';
import { chatRequestOf } from '../../lambda/responses/chat-request';
import { storedItemsOf, type ResolvedInputItem } from '../../lambda/responses/items';
import { inProgressResponse } from '../../lambda/responses/output';
import { isResponseId, ResponseIds, responseIdOfItem } from '../../lambda/responses/response-ids';
import { ResponseEventStream, type ResponseEvent } from '../../lambda/responses/stream';
import { validateResponse } from '../support/openai-schema';
import { expectWellFormedStream, type ResponseEventData } from './support';

/** The translation in both directions, without a gateway: request → Chat Completions, chunks → events. */

function plan(body: Record<string, unknown>) {
  const request = parseCreateResponseRequest({ model: 'm', ...body });
  const ids = new ResponseIds();
  const input = typeof request.input === 'string' ? [{ type: 'message' as const, role: 'user' as const, content: request.input }] : (request.input ?? []);
  const { items, ignored } = storedItemsOf(input as ResolvedInputItem[], ids);
  return { ...chatRequestOf(request, items, 'm'), items, ignoredInput: ignored, request, ids };
}

const USAGE = { input_tokens: 5, input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 }, output_tokens: 3, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 8 };

function chunk(delta: ChatCompletionChunk.Choice.Delta, finish: ChatCompletionChunk.Choice['finish_reason'] = null): ChatCompletionChunk {
  return { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] };
}

function run(chunks: ChatCompletionChunk[], end: 'finish' | 'fail' = 'finish'): ResponseEventData[] {
  const ids = new ResponseIds();
  const base = inProgressResponse({ ids, request: parseCreateResponseRequest({ model: 'm', input: 'x' }), tools: [], modelId: 'm', createdAtMs: Date.now(), store: true });
  const stream = new ResponseEventStream(base, ids);
  const events: ResponseEvent[] = stream.start();
  for (const c of chunks) events.push(...stream.push(c));
  if (end === 'finish') {
    const { events: closing, response } = stream.finish(USAGE, Date.now());
    events.push(...closing, stream.terminal(response));
  } else {
    events.push(stream.terminal(stream.fail({ code: 'server_error', message: 'boom' }, USAGE, Date.now())));
  }
  // Through JSON, as a client receives them.
  return JSON.parse(JSON.stringify(events));
}

describe('Responses request → Chat Completions request', () => {
  it('puts instructions first, developer and system messages as system, and keeps the order of the rest', () => {
    const { chat } = plan({
      instructions: 'Top.',
      input: [
        { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'Dev.' }] },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: [{ type: 'output_text', text: 'Hello' }] },
        { role: 'system', content: 'Sys.' },
        { role: 'user', content: [{ type: 'input_text', text: 'Again' }] },
      ],
    });
    expect(chat.messages).toEqual([
      { role: 'system', content: 'Top.' },
      { role: 'system', content: 'Dev.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello' },
      { role: 'system', content: 'Sys.' },
      { role: 'user', content: 'Again' },
    ]);
  });

  it('merges an answer and the function calls after it into one assistant message, each output a tool message, call_ids kept', () => {
    const { chat } = plan({
      input: [
        { role: 'user', content: 'Weather in two cities?' },
        { role: 'assistant', content: 'Looking.' },
        { type: 'function_call', call_id: 'call_A', name: 'w', arguments: '{"c":"a"}' },
        { type: 'reasoning', id: 'rs_1', summary: [], content: null, encrypted_content: 'x' },
        { type: 'function_call', call_id: 'call_B', name: 'w', arguments: '{"c":"b"}', id: 'fc_9', status: 'completed' },
        { type: 'function_call_output', call_id: 'call_A', output: 'sunny' },
        { type: 'function_call_output', call_id: 'call_B', output: [{ type: 'input_text', text: 'rain' }, { type: 'input_image', image_url: 'https://example.com/radar.png' }] },
      ],
    });
    expect(chat.messages.slice(1)).toEqual([
      {
        role: 'assistant',
        content: 'Looking.',
        tool_calls: [
          { id: 'call_A', type: 'function', function: { name: 'w', arguments: '{"c":"a"}' } },
          { id: 'call_B', type: 'function', function: { name: 'w', arguments: '{"c":"b"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_A', content: 'sunny' },
      { role: 'tool', tool_call_id: 'call_B', content: 'rain' },
      { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/radar.png', detail: 'auto' } }] },
    ]);
  });

  it('stores input items with ids, keeping the client’s own and giving the rest ids of this response', () => {
    const { items, ignoredInput, ids } = plan({
      input: [
        { role: 'user', content: 'Hi' },
        { type: 'function_call', call_id: 'call_A', name: 'w', arguments: '{}', id: 'fc_client' },
        { type: 'function_call_output', call_id: 'call_A', output: 'ok' },
        { type: 'web_search_call', id: 'ws_1', status: 'completed' },
        { type: 'reasoning', id: 'rs_1', summary: [] },
      ],
    });
    expect(items.map((i) => i.id)).toEqual([ids.input('msg', 0), 'fc_client', ids.input('fco', 2)]);
    expect(items.every((i) => (i as { status?: string }).status === 'completed')).toBe(true);
    expect(ignoredInput).toEqual(['input:web_search_call', 'input:reasoning']);
    expect(responseIdOfItem(ids.input('msg', 0))).toBe(ids.responseId);
  });

  it('drops hosted tools (Codex: web_search, namespace, custom, tool_search) and keeps function tools', () => {
    const { chat, ignoredTools, tools } = plan({
      input: 'x',
      tools: [
        { type: 'function', name: 'exec_command', parameters: { type: 'object', properties: {} }, strict: false },
        { type: 'namespace', name: 'multi_agent_v1', tools: [] },
        { type: 'web_search', external_web_access: false },
        { type: 'custom', name: 'apply_patch', format: { type: 'grammar' } },
        { type: 'tool_search', execution: 'client' },
      ],
      tool_choice: 'auto',
      parallel_tool_calls: true,
    });
    expect(ignoredTools).toEqual(['namespace:multi_agent_v1', 'web_search', 'custom:apply_patch', 'tool_search']);
    expect(chat.tools).toEqual([{ type: 'function', function: { name: 'exec_command', parameters: { type: 'object', properties: {} }, strict: false } }]);
    expect(chat).toMatchObject({ tool_choice: 'auto', parallel_tool_calls: true });
    expect(tools).toEqual([{ type: 'function', name: 'exec_command', description: null, parameters: { type: 'object', properties: {} }, strict: false }]);
  });

  it('names dropped tools and items in words a header can carry, whatever the client wrote', () => {
    const { ignoredTools, ignoredInput } = plan({ input: [{ role: 'user', content: 'x' }, { type: 'evil\r\nx-injected: 1', id: 'a' }], tools: [{ type: 'mcp', name: 'a,b\nc' }] });
    expect(ignoredTools).toEqual(['mcp:a_b_c']);
    expect(ignoredInput).toEqual(['input:evil__x-injected:_1']);
    expect(() => new Headers({ 'x-itapi-ignored': [...ignoredTools, ...ignoredInput].join(', ') })).not.toThrow();
  });

  it('leaves tool_choice and parallel_tool_calls out when every tool was dropped, and refuses required', () => {
    const { chat } = plan({ input: 'x', tools: [{ type: 'web_search' }], tool_choice: 'auto', parallel_tool_calls: true });
    expect(chat).not.toHaveProperty('tools');
    expect(chat).not.toHaveProperty('tool_choice');
    expect(chat).not.toHaveProperty('parallel_tool_calls');
    expect(() => plan({ input: 'x', tools: [{ type: 'web_search' }], tool_choice: 'required' })).toThrow(GatewayError);
  });

  it('passes reasoning effort (max as xhigh) and verbosity, and nothing Responses-only', () => {
    const { chat } = plan({
      input: 'x',
      reasoning: { effort: 'max', summary: 'auto' },
      text: { verbosity: 'low' },
      store: false,
      include: ['reasoning.encrypted_content'],
      prompt_cache_key: 'k',
      client_metadata: { a: 'b' },
      metadata: { m: 'n' },
      truncation: 'auto',
    });
    expect(chat).toMatchObject({ reasoning_effort: 'xhigh', verbosity: 'low' });
    for (const field of ['store', 'include', 'prompt_cache_key', 'client_metadata', 'metadata', 'truncation', 'reasoning', 'text', 'input']) expect(chat).not.toHaveProperty(field);
  });

  it('refuses a conversation with nothing for the model to answer', () => {
    expect(() => plan({ input: [{ role: 'system', content: 'only system' }] })).toThrow(/no message for the model/);
  });
});

describe('Chat Completions chunks → Responses events', () => {
  it('text: created, in_progress, item, part, deltas, done events, completed; each valid', () => {
    const events = run([chunk({ role: 'assistant', content: '' }), chunk({ content: 'Hel' }), chunk({ content: 'lo' }), chunk({}, 'stop')]);
    const last = expectWellFormedStream(events);
    expect(events.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(last.response.output[0].content[0].text).toBe('Hello');
    validateResponse(last.response);
  });

  it('a refusal after text becomes a second content part of the same message', () => {
    const events = run([chunk({ content: 'I' }), chunk({ refusal: 'cannot' }), chunk({}, 'stop')]);
    const last = expectWellFormedStream(events);
    expect(last.response.output[0].content).toEqual([
      { type: 'output_text', text: 'I', annotations: [], logprobs: [] },
      { type: 'refusal', refusal: 'cannot' },
    ]);
    expect(events.map((e) => e.type)).toContain('response.refusal.done');
  });

  it('text then two tool calls: three items, each closed before the next, ids kept; a late fragment still lands in the output', () => {
    const events = run([
      chunk({ content: 'Checking.' }),
      chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'a', arguments: '' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"x":' } }] }),
      chunk({ tool_calls: [{ index: 1, id: 'call_2', type: 'function', function: { name: 'b', arguments: '{}' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '1}' } }] }),
      chunk({}, 'tool_calls'),
    ]);
    const last = expectWellFormedStream(events);
    expect(last.response.output.map((o: { type: string; call_id?: string }) => o.call_id ?? o.type)).toEqual(['message', 'call_1', 'call_2']);
    expect(last.response.output[1].arguments).toBe('{"x":1}');
    expect(last.response.status).toBe('completed');
  });

  it('a cut answer ends with response.incomplete, its item incomplete', () => {
    const events = run([chunk({ content: 'Once upon' }), chunk({}, 'length')]);
    const last = expectWellFormedStream(events);
    expect(last.type).toBe('response.incomplete');
    expect(last.response.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(last.response.output[0].status).toBe('incomplete');
  });

  it('a failure ends with response.failed, without done events for the cut item', () => {
    const events = run([chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'rm', arguments: '{"path":"/tm' } }] })], 'fail');
    const last = expectWellFormedStream(events);
    expect(last.type).toBe('response.failed');
    expect(events.some((e) => e.type === 'response.output_item.done')).toBe(false);
    expect(last.response.output[0].status).toBe('incomplete');
  });

  it('a call without an id from the upstream still gets a call_id', () => {
    const events = run([chunk({ tool_calls: [{ index: 0, type: 'function', function: { name: 'a', arguments: '{}' } }] }), chunk({}, 'tool_calls')]);
    expect(expectWellFormedStream(events).response.output[0].call_id).toMatch(/^call_/);
  });
});

describe('response ids', () => {
  it('item ids name their response; other ids name none', () => {
    const ids = new ResponseIds();
    expect(isResponseId(ids.responseId)).toBe(true);
    expect(responseIdOfItem(ids.output('fc', 3))).toBe(ids.responseId);
    expect(responseIdOfItem('msg_95883360-c337-4f5e')).toBeUndefined();
    expect(ResponseIds.of(ids.responseId).output('msg', 0)).toBe(ids.output('msg', 0));
  });
});
