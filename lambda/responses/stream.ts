import { randomBytes } from 'node:crypto';
import type { ChatCompletionChunk, CompletionUsage, FinishReason } from '../contract/openai';
import type { OutputItem, ResponseObject, ResponseOutputMessage, ResponseStreamEvent, ResponseUsage } from '../contract/responses';
import { finalResponse, terminalOf } from './output';
import type { ResponseIds } from './response-ids';

type StateEventType = 'response.created' | 'response.in_progress' | 'response.completed' | 'response.incomplete' | 'response.failed';
/** Events that carry the whole response (itapi's ResponseObject, not the SDK's type with its `output_text` convenience). */
export type ResponseStateEvent = { type: StateEventType; response: ResponseObject; sequence_number: number };
export type ResponseEvent = Exclude<ResponseStreamEvent, { response: unknown }> | ResponseStateEvent;
type Unnumbered<T> = T extends unknown ? Omit<T, 'sequence_number'> : never;

type MessagePart = ResponseOutputMessage['content'][number];
type FunctionCallItem = Extract<OutputItem, { type: 'function_call' }>;

type OpenItem =
  | { kind: 'message'; index: number; item: ResponseOutputMessage; part: MessagePart | undefined }
  | { kind: 'function_call'; index: number; item: FunctionCallItem };

const encoder = new TextEncoder();

/** One Responses SSE event as OpenAI frames them: `event: <type>` and `data: <json>`. */
export function responseEventText(event: ResponseEvent): string {
  return `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

export function responseEventFrame(event: ResponseEvent): Uint8Array {
  return encoder.encode(responseEventText(event));
}

/**
 * Chat Completions chunks → the Responses event sequence, in the order every client relies on:
 * `response.created` and `response.in_progress` first; an item's `output_item.added` (and a text
 * part's `content_part.added`) before any of its deltas; one item open at a time, each closed
 * (`…done`, `content_part.done`, `output_item.done`) before the next opens and before the
 * terminal event; `sequence_number` 0, 1, 2, … across the whole stream. Function calls keep the
 * upstream's tool call id as `call_id`.
 */
export class ResponseEventStream {
  private sequence = 0;
  private readonly output: OutputItem[] = [];
  private open: OpenItem | undefined;
  /** Chat tool-call index → its output item (an upstream may interleave two calls' deltas). */
  private readonly calls = new Map<number, FunctionCallItem>();
  private finishReason: FinishReason | null = null;
  private usage: CompletionUsage | undefined;

  constructor(
    private readonly base: ResponseObject,
    private readonly ids: ResponseIds,
  ) {}

  /** `response.created`, then `response.in_progress`. */
  start(): ResponseEvent[] {
    return [this.emit({ type: 'response.created', response: this.base }), this.emit({ type: 'response.in_progress', response: this.base })];
  }

  /** The provider's usage, as it was reported (undefined when it reported none). */
  get reportedUsage(): CompletionUsage | undefined {
    return this.usage;
  }

  /** Everything delivered so far (text and tool arguments), for a token count when the provider reported none. */
  get deliveredText(): string {
    return this.output
      .map((item) => (item.type === 'function_call' ? item.arguments : item.content.map((p) => (p.type === 'output_text' ? p.text : p.refusal)).join('')))
      .join('');
  }

  push(chunk: ChatCompletionChunk): ResponseEvent[] {
    const events: ResponseEvent[] = [];
    if (chunk.usage) this.usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.index !== 0) continue;
      const delta = choice.delta;
      if (delta.content) this.textDelta('output_text', delta.content, events);
      if (delta.refusal) this.textDelta('refusal', delta.refusal, events);
      for (const call of delta.tool_calls ?? []) this.toolCallDelta(call, events);
      if (choice.finish_reason) this.finishReason = choice.finish_reason as FinishReason;
    }
    return events;
  }

  /**
   * The stream's end: the open item closed and the final response, whose terminal event
   * (`terminal`) is sent once the response is stored.
   */
  finish(usage: ResponseUsage, nowMs: number): { events: ResponseEvent[]; response: ResponseObject } {
    const { status, incompleteDetails } = terminalOf(this.finishReason);
    const events: ResponseEvent[] = [];
    this.closeOpen(status, events);
    for (const item of this.output) if (item.status === 'in_progress') item.status = status;
    return { events, response: finalResponse(this.base, { status, output: this.output, usage, incompleteDetails, nowMs }) };
  }

  /**
   * A failure after the stream began: no `…done` events (a client would run a function call
   * whose arguments were cut), the partial output marked incomplete, and the error.
   */
  fail(error: NonNullable<ResponseObject['error']>, usage: ResponseUsage, nowMs: number): ResponseObject {
    for (const item of this.output) if (item.status === 'in_progress') item.status = 'incomplete';
    this.open = undefined;
    return finalResponse(this.base, { status: 'failed', output: this.output, usage, error, nowMs });
  }

  /** `response.completed`, `response.incomplete` or `response.failed`, by the response's status. */
  terminal(response: ResponseObject): ResponseEvent {
    const type = response.status === 'failed' ? 'response.failed' : response.status === 'incomplete' ? 'response.incomplete' : 'response.completed';
    return this.emit({ type, response });
  }

  private emit<T extends Unnumbered<ResponseEvent>>(event: T): ResponseEvent {
    return { ...event, sequence_number: this.sequence++ } as ResponseEvent;
  }

  private textDelta(kind: MessagePart['type'], text: string, events: ResponseEvent[]): void {
    let open = this.open;
    if (open?.kind !== 'message') {
      this.closeOpen('completed', events);
      const index = this.output.length;
      const item: ResponseOutputMessage = { id: this.ids.output('msg', index), type: 'message', status: 'in_progress', role: 'assistant', content: [] };
      this.output.push(item);
      open = this.open = { kind: 'message', index, item, part: undefined };
      events.push(this.emit({ type: 'response.output_item.added', output_index: index, item: { ...item, content: [] } }));
    }
    if (open.part && open.part.type !== kind) this.closePart(open, events);
    if (!open.part) {
      const part: MessagePart = kind === 'output_text' ? { type: 'output_text', text: '', annotations: [], logprobs: [] } : { type: 'refusal', refusal: '' };
      open.item.content.push(part);
      open.part = part;
      events.push(this.emit({ type: 'response.content_part.added', item_id: open.item.id, output_index: open.index, content_index: open.item.content.length - 1, part: { ...part } }));
    }
    const part = open.part;
    const contentIndex = open.item.content.length - 1;
    if (part.type === 'output_text') {
      part.text += text;
      events.push(this.emit({ type: 'response.output_text.delta', item_id: open.item.id, output_index: open.index, content_index: contentIndex, delta: text, logprobs: [] }));
    } else {
      part.refusal += text;
      events.push(this.emit({ type: 'response.refusal.delta', item_id: open.item.id, output_index: open.index, content_index: contentIndex, delta: text }));
    }
  }

  private toolCallDelta(call: NonNullable<ChatCompletionChunk.Choice.Delta['tool_calls']>[number], events: ResponseEvent[]): void {
    let item = this.calls.get(call.index);
    if (!item) {
      this.closeOpen('completed', events);
      const index = this.output.length;
      item = {
        id: this.ids.output('fc', index),
        type: 'function_call',
        status: 'in_progress',
        // An upstream that sends no id still gets one: clients pair the output with it.
        call_id: call.id || `call_${randomBytes(12).toString('hex')}`,
        name: call.function?.name ?? '',
        arguments: '',
      };
      this.output.push(item);
      this.calls.set(call.index, item);
      this.open = { kind: 'function_call', index, item };
      events.push(this.emit({ type: 'response.output_item.added', output_index: index, item: { ...item } }));
    }
    const fragment = call.function?.arguments;
    if (!fragment) return;
    item.arguments += fragment;
    // A late fragment of a call already closed is kept in the final output only: its events are over.
    if (this.open?.kind === 'function_call' && this.open.item === item) {
      events.push(this.emit({ type: 'response.function_call_arguments.delta', item_id: item.id, output_index: this.open.index, delta: fragment }));
    }
  }

  private closePart(open: Extract<OpenItem, { kind: 'message' }>, events: ResponseEvent[]): void {
    const part = open.part;
    if (!part) return;
    const at = { item_id: open.item.id, output_index: open.index, content_index: open.item.content.length - 1 };
    if (part.type === 'output_text') events.push(this.emit({ type: 'response.output_text.done', ...at, text: part.text, logprobs: [] }));
    else events.push(this.emit({ type: 'response.refusal.done', ...at, refusal: part.refusal }));
    events.push(this.emit({ type: 'response.content_part.done', ...at, part: { ...part } }));
    open.part = undefined;
  }

  private closeOpen(status: 'completed' | 'incomplete', events: ResponseEvent[]): void {
    const open = this.open;
    if (!open) return;
    this.open = undefined;
    if (open.kind === 'message') {
      this.closePart(open, events);
      open.item.status = status;
      events.push(this.emit({ type: 'response.output_item.done', output_index: open.index, item: { ...open.item, content: [...open.item.content] } }));
      return;
    }
    const item = open.item;
    item.status = status;
    events.push(this.emit({ type: 'response.function_call_arguments.done', item_id: item.id, output_index: open.index, name: item.name, arguments: item.arguments }));
    events.push(this.emit({ type: 'response.output_item.done', output_index: open.index, item: { ...item } }));
  }
}
