import type { CatalogFile } from '../../lambda/catalog';
import { sse, type SseFrame } from '../providers/anthropic/transcripts';
import { StandIn, type RecordedRequest, type StandInReply } from '../providers/stand-in';
import { openAiValidator, validateResponseEvent } from '../support/openai-schema';

/**
 * Upstream stand-ins that answer like a model with tools would: when the request offers tools
 * and the conversation does not end with a tool result, they call the first tool; otherwise
 * they answer `Echo: <last user text>` in a few pieces. Each speaks its provider's real protocol.
 */
export const TOOL_ARGUMENTS = '{"city":"Paris"}';

/** Usage the OpenAI-compatible stand-in reports, with cached and reasoning tokens to map. */
export const OPENAI_USAGE = { prompt_tokens: 40, completion_tokens: 9, total_tokens: 49, prompt_tokens_details: { cached_tokens: 12 }, completion_tokens_details: { reasoning_tokens: 4 } };

type ChatBody = {
  stream?: boolean;
  tools?: Array<{ function: { name: string } }>;
  tool_choice?: unknown;
  messages: Array<{ role: string; content: unknown }>;
  max_completion_tokens?: number;
  max_tokens?: number;
};

function lastUserText(messages: ChatBody['messages']): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content;
    if (Array.isArray(m.content)) return m.content.map((p: { text?: string }) => p.text ?? '').join(' ');
  }
  return '';
}

/** What the OpenAI-compatible stand-in answers a chat completion request with. */
export function openAiAnswer(request: RecordedRequest, options: { pieces?: string[]; gapMs?: number; cutAfter?: number; toolArguments?: string } = {}): StandInReply {
  const toolArguments = options.toolArguments ?? TOOL_ARGUMENTS;
  const body = JSON.parse(request.body.toString('utf8')) as ChatBody;
  const last = body.messages[body.messages.length - 1];
  const tool = body.tools?.length && body.tool_choice !== 'none' && last.role !== 'tool' ? body.tools[0].function.name : undefined;
  const limit = body.max_completion_tokens ?? body.max_tokens ?? 1000;
  const words = options.pieces ?? ['Echo: ', ...lastUserText(body.messages).split(/(?<= )/)];
  const pieces = words.slice(0, limit);
  const finish = tool ? 'tool_calls' : pieces.length < words.length ? 'length' : 'stop';
  const base = { id: 'chatcmpl-standin', object: 'chat.completion.chunk', created: 1735689600, model: 'upstream-model' };
  // A provider never bills past the output limit it was sent.
  const completion = Math.min(OPENAI_USAGE.completion_tokens, limit);
  const usage = { ...OPENAI_USAGE, completion_tokens: completion, total_tokens: OPENAI_USAGE.prompt_tokens + completion, completion_tokens_details: { reasoning_tokens: Math.min(4, completion) } };
  if (!body.stream) {
    const message = tool
      ? { role: 'assistant', content: null, refusal: null, tool_calls: [{ id: 'call_standin_1', type: 'function', function: { name: tool, arguments: toolArguments } }] }
      : { role: 'assistant', content: pieces.join(''), refusal: null };
    return {
      status: 200,
      headers: { 'content-type': 'application/json' },
      parts: [JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, message, logprobs: null, finish_reason: finish }], usage })],
    };
  }
  const chunks: unknown[] = [{ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] }];
  if (tool) {
    chunks.push({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_standin_1', type: 'function', function: { name: tool, arguments: '' } }] }, finish_reason: null }] });
    for (const part of [toolArguments.slice(0, 5), toolArguments.slice(5)]) chunks.push({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: part } }] }, finish_reason: null }] });
  } else {
    for (const piece of pieces) chunks.push({ ...base, choices: [{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }] });
  }
  chunks.push({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finish }] });
  chunks.push({ ...base, choices: [], usage });
  let parts = [...chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`), 'data: [DONE]\n\n'];
  if (options.cutAfter !== undefined) parts = parts.slice(0, options.cutAfter);
  return { status: 200, headers: { 'content-type': 'text/event-stream' }, parts, gapMs: options.gapMs };
}

type AnthropicBody = { stream?: boolean; tools?: Array<{ name: string }>; messages: Array<{ role: string; content: unknown }>; max_tokens: number };

/** What the Anthropic stand-in answers a Messages request with (usage with a cache read). */
export function anthropicAnswer(request: RecordedRequest, options: { toolInput?: Record<string, unknown> } = {}): StandInReply {
  const toolInput = options.toolInput ?? JSON.parse(TOOL_ARGUMENTS);
  const body = JSON.parse(request.body.toString('utf8')) as AnthropicBody;
  const blocksOf = (m: AnthropicBody['messages'][number]) =>
    Array.isArray(m.content) ? (m.content as Array<{ type: string; text?: string }>) : [{ type: 'text', text: String(m.content) }];
  const answeredTool = blocksOf(body.messages[body.messages.length - 1]).some((b) => b.type === 'tool_result');
  const tool = body.tools?.length && !answeredTool ? body.tools[0].name : undefined;
  const lastText = [...body.messages].reverse().find((m) => m.role === 'user' && blocksOf(m).some((b) => b.type === 'text'));
  const text = `Echo: ${lastText ? blocksOf(lastText).flatMap((b) => (b.type === 'text' ? [b.text ?? ''] : [])).join(' ') : ''}`;
  const usage = { input_tokens: 30, output_tokens: 7, cache_read_input_tokens: 20, cache_creation_input_tokens: 0 };
  const message = { id: 'msg_standin', type: 'message', role: 'assistant', model: 'claude-standin', stop_sequence: null };
  if (!body.stream) {
    const content = tool ? [{ type: 'tool_use', id: 'toolu_standin_1', name: tool, input: toolInput }] : [{ type: 'text', text }];
    return { status: 200, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify({ ...message, content, stop_reason: tool ? 'tool_use' : 'end_turn', usage })] };
  }
  const frames: SseFrame[] = [['message_start', { type: 'message_start', message: { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } } }]];
  if (tool) {
    frames.push(['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_standin_1', name: tool, input: {} } }]);
    frames.push(['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: JSON.stringify(toolInput) } }]);
  } else {
    frames.push(['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }]);
    for (const piece of text.split(/(?<= )/)) frames.push(['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: piece } }]);
  }
  frames.push(['content_block_stop', { type: 'content_block_stop', index: 0 }]);
  frames.push(['message_delta', { type: 'message_delta', delta: { stop_reason: tool ? 'tool_use' : 'end_turn', stop_sequence: null }, usage: { output_tokens: 7 } }]);
  frames.push(['message_stop', { type: 'message_stop' }]);
  return { status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(frames) };
}

/** A catalog entry priced like gpt-4o-mini, for one route. */
export function modelEntry(route: CatalogFile['models'][string]['routes'][number], ownedBy = 'openai'): CatalogFile['models'][string] {
  return {
    owned_by: ownedBy,
    pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6, cached_input_per_mtok: 0.075 },
    context_window: 128000,
    max_output_tokens: 4096,
    routes: [route],
  };
}

export interface ResponseEventData {
  type: string;
  sequence_number: number;
  [key: string]: any;
}

/** Parses a Responses SSE body: every frame has an `event:` line naming the type its data carries. */
export function parseResponseEvents(text: string): ResponseEventData[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim())
    .map((block) => {
      const lines = block.split('\n');
      const event = lines.find((l) => l.startsWith('event: '))?.slice('event: '.length);
      const data = JSON.parse(lines.find((l) => l.startsWith('data: '))!.slice('data: '.length)) as ResponseEventData;
      if (event !== data.type) throw new Error(`event line '${event}' but data type '${data.type}'`);
      return data;
    });
}

const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);

/**
 * Throws unless the events are a well-formed Responses stream: each valid against the spec's
 * ResponseStreamEvent, numbered 0, 1, 2, …, created and in_progress first, every delta after its
 * item (and text part) was added and before it was done, every item closed before the terminal
 * event (unless failed), exactly one terminal event, last, whose output matches the items.
 */
export function expectWellFormedStream(events: ResponseEventData[]): ResponseEventData {
  const problems: string[] = [];
  events.forEach((event, i) => {
    try {
      validateResponseEvent(event);
    } catch (err) {
      problems.push(`event ${i}: ${(err as Error).message.slice(0, 600)}`);
    }
    if (event.sequence_number !== i) problems.push(`event ${i} has sequence_number ${event.sequence_number}`);
  });
  if (events[0]?.type !== 'response.created') problems.push(`first event is ${events[0]?.type}`);
  if (events[1]?.type !== 'response.in_progress') problems.push(`second event is ${events[1]?.type}`);
  const added = new Map<number, string>();
  const done = new Set<number>();
  const parts = new Set<string>();
  for (const event of events.slice(2, -1)) {
    const index = event.output_index as number;
    switch (event.type) {
      case 'response.output_item.added':
        if (added.has(index)) problems.push(`item ${index} added twice`);
        for (const open of added.keys()) if (!done.has(open)) problems.push(`item ${index} added while item ${open} is open`);
        added.set(index, event.item.id);
        break;
      case 'response.content_part.added':
        parts.add(`${index}/${event.content_index}`);
        break;
      case 'response.output_text.delta':
      case 'response.refusal.delta':
      case 'response.output_text.done':
      case 'response.refusal.done':
      case 'response.function_call_arguments.delta':
      case 'response.function_call_arguments.done':
      case 'response.content_part.done':
        if (event.type.startsWith('response.output_text') || event.type.startsWith('response.refusal')) {
          if (!parts.has(`${index}/${event.content_index}`)) problems.push(`${event.type} before its content part was added`);
        }
        if (added.get(index) !== event.item_id) problems.push(`${event.type} for item ${event.item_id} not added at index ${index}`);
        if (done.has(index)) problems.push(`${event.type} after item ${index} was done`);
        break;
      case 'response.output_item.done':
        if (!added.has(index)) problems.push(`item ${index} done but never added`);
        done.add(index);
        break;
      default:
        if (TERMINAL.has(event.type)) problems.push(`terminal event ${event.type} before the end`);
    }
  }
  const last = events[events.length - 1];
  if (!last || !TERMINAL.has(last.type)) problems.push(`last event is ${last?.type}`);
  else {
    if (last.type !== 'response.failed') for (const index of added.keys()) if (!done.has(index)) problems.push(`item ${index} never done`);
    const outputIds = (last.response.output as Array<{ id: string }>).map((o) => o.id);
    if (JSON.stringify(outputIds) !== JSON.stringify([...added.values()])) problems.push(`terminal output ${outputIds} differs from items added ${[...added.values()]}`);
    if (!last.response.usage) problems.push('terminal event without usage');
  }
  if (problems.length) throw new Error(`malformed Responses stream:\n${problems.join('\n')}\n${JSON.stringify(events.map((e) => e.type))}`);
  return last;
}

/**
 * Compiles the spec's Responses schemas up front: compiling them takes seconds on a loaded
 * machine, and a pause that long between two requests outlives the server's keep-alive, so the
 * client's next request could meet a socket being closed ('other side closed').
 */
export function warmResponseValidators(): void {
  for (const name of ['Response', 'ResponseStreamEvent', 'ResponseItemList', 'ErrorResponse']) openAiValidator(name);
}

export { StandIn };
