import type { ChatCompletionChunk } from '../../lambda/contract/openai';
import { parseCreateResponseRequest, type StoredItem } from '../../lambda/contract/responses';
import { GatewayError } from '../../lambda/contract/errors';
import { ChatChunkDecoder, encodeChatRequest } from '../../lambda/codecs/openai-chat';
import { decodeResponsesRequest, responseShell, responsesStreamTerminals, ResponsesEventEncoder } from '../../lambda/codecs/openai-responses';
import { callFor, heldOutputLimit } from '../../lambda/core/call';
import { noteIgnored, type RequestScope } from '../../lambda/chat/pipeline';
import { storedItemsOf } from '../../lambda/responses/items';
import { isResponseId, ResponseIds, responseIdOfItem } from '../../lambda/responses/response-ids';
import { validateResponse } from '../support/openai-schema';
import { expectWellFormedStream, type ResponseEventData } from './support';

/**
 * The endpoint's translation in both directions, without a gateway: a Responses request decoded
 * (`decodeResponsesRequest`) and encoded for a Chat route (`encodeChatRequest`), its input items as
 * stored; a Chat upstream's chunks decoded (`ChatChunkDecoder`) and written as Responses events.
 */

function plan(body: Record<string, unknown>) {
  const request = parseCreateResponseRequest({ model: 'm', ...body });
  const ids = new ResponseIds();
  const input = typeof request.input === 'string' ? [{ type: 'message' as const, role: 'user' as const, content: request.input }] : (request.input ?? []);
  const items = storedItemsOf(input, new Map<string, StoredItem>(), ids);
  const decoded = decodeResponsesRequest(request);
  const { request: chat } = encodeChatRequest(callFor(decoded, heldOutputLimit(100)));
  // The words as the endpoint puts them in x-itapi-ignored.
  const scope: RequestScope = { requestId: 'r', startedAtMs: 0, responseHeaders: {} };
  noteIgnored(scope, decoded.ignored);
  const ignored = scope.responseHeaders['x-itapi-ignored']?.split(', ') ?? [];
  return {
    chat,
    items,
    tools: decoded.tools,
    ignoredTools: ignored.filter((w) => !w.startsWith('input:')),
    ignoredInput: ignored.filter((w) => w.startsWith('input:')),
    ids,
  };
}

const USAGE = { inputTokens: 5, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 3 };

function chunk(delta: ChatCompletionChunk.Choice.Delta, finish: ChatCompletionChunk.Choice['finish_reason'] = null): ChatCompletionChunk {
  return { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] };
}

function run(chunks: ChatCompletionChunk[], end: 'finish' | 'fail' = 'finish'): ResponseEventData[] {
  const ids = new ResponseIds();
  const request = parseCreateResponseRequest({ model: 'm', input: 'x' });
  const shell = responseShell(request, decodeResponsesRequest(request), { id: ids.responseId, model: 'm', createdAtMs: Date.now() });
  const encoder = new ResponsesEventEncoder(shell, { idFor: (prefix, i) => ids.output(prefix, i), includeEncrypted: false });
  const decoder = new ChatChunkDecoder();
  const frames = chunks.flatMap((c) => decoder.push(c)).flatMap((event) => encoder.push(event));
  const terminals = responsesStreamTerminals(encoder);
  if (end === 'finish') {
    encoder.stored(encoder.finalResponse(USAGE));
    frames.push(...terminals.ended());
  } else {
    const error = { status: 502, type: 'api_error', code: 'upstream_error', param: null, message: 'boom' };
    encoder.stored(encoder.failedResponse(error, USAGE));
    frames.push(...terminals.failed(error));
  }
  // Through JSON, as a client receives them.
  return JSON.parse(JSON.stringify(frames.map((f) => f.data)));
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
    // The instructions and the developer message before the first turn are the system prompt: one message.
    expect(chat.messages).toEqual([
      { role: 'system', content: 'Top.\n\nDev.' },
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
      // The Chat codec's wording, shared with /v1/messages (codec difference 6).
      { role: 'user', content: [{ type: 'text', text: 'Images returned by the tool:' }, { type: 'image_url', image_url: { url: 'https://example.com/radar.png', detail: 'auto' } }] },
    ]);
  });

  it('stores input items with ids, keeping the client’s own (reasoning items too) and giving the rest ids of this response', () => {
    const { items, ignoredInput, ids } = plan({
      input: [
        { role: 'user', content: 'Hi' },
        { type: 'function_call', call_id: 'call_A', name: 'w', arguments: '{}', id: 'fc_client' },
        { type: 'function_call_output', call_id: 'call_A', output: 'ok' },
        { type: 'web_search_call', id: 'ws_1', status: 'completed' },
        { type: 'reasoning', id: 'rs_1', summary: [] },
        { type: 'reasoning', summary: [{ type: 'summary_text', text: 'thought' }], content: null, encrypted_content: 'opaque' },
      ],
    });
    expect(items.map((i) => i.id)).toEqual([ids.input('msg', 0), 'fc_client', ids.input('fco', 2), 'rs_1', ids.input('rs', 5)]);
    expect(items.slice(0, 3).every((i) => (i as { status?: string }).status === 'completed')).toBe(true);
    expect(items[4]).toEqual({ id: ids.input('rs', 5), type: 'reasoning', summary: [{ type: 'summary_text', text: 'thought' }], encrypted_content: 'opaque' });
    expect(ignoredInput).toEqual(['input:web_search_call']);
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
    // parallel_tool_calls is sent only when false (true is the default).
    expect(chat).toMatchObject({ tool_choice: 'auto' });
    expect(chat).not.toHaveProperty('parallel_tool_calls');
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
    expect(plan({ input: 'x', tools: [{ type: 'function', name: 'f' }], parallel_tool_calls: false }).chat).toMatchObject({ parallel_tool_calls: false });
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

describe('Chat Completions chunks → answer events → Responses events', () => {
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
