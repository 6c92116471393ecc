import type { AdmittedRun } from '../chat/pipeline';
import { GatewayError, upstreamError } from '../contract/errors';
import type { CompletionUsage } from '../contract/openai';
import type { Outcome } from '../money/types';
import { anthropicError } from '../providers/anthropic/errors';
import { applyAnthropicUsage } from '../providers/anthropic/response';
import { anthropicRawEvents, postAnthropicPassthrough, type AnthropicPassthrough, type RawAnthropicEvent } from '../providers/anthropic/passthrough';
import { readText } from '../providers/http';
import { completionUsage, type ProviderTokenCounts } from '../providers/openai-shapes';
import type { ProviderCall } from '../providers/types';
import { UpstreamDeadline } from '../providers/upstream-deadline';
import type { Message } from './wire';

/** An Anthropic route's answer to a client's own Messages request, before it is metered. */
export type NativeAnswer =
  | { kind: 'json'; message: Message & Record<string, unknown> }
  | { kind: 'stream'; events: AsyncIterator<RawAnthropicEvent>; first: RawAnthropicEvent[]; deadline: UpstreamDeadline };

/**
 * Calls the Anthropic route with the client's request. A stream is read up to `message_start`
 * before anything is answered, so an error as its first event (overloaded) still falls through to
 * the model's next route.
 */
export async function openNativeMessage(call: ProviderCall, passthrough: AnthropicPassthrough): Promise<NativeAnswer> {
  const deadline = new UpstreamDeadline(call.signal, 'Anthropic');
  if (passthrough.body.stream !== true) {
    deadline.arm('total', call.timeouts.totalMs);
    let whole = false;
    try {
      const response = await postAnthropicPassthrough(call, passthrough, deadline);
      const message = parseMessage(await readText(response));
      whole = true;
      return { kind: 'json', message };
    } catch (err) {
      throw deadline.failure(err, true);
    } finally {
      deadline.dispose(!whole);
    }
  }
  let events: AsyncIterator<RawAnthropicEvent> | undefined;
  try {
    const response = await postAnthropicPassthrough(call, passthrough, deadline);
    events = anthropicRawEvents(response, call.timeouts.idleMs);
    const first: RawAnthropicEvent[] = [];
    for (;;) {
      const next = await events.next();
      if (next.done) throw upstreamError('Anthropic ended the stream before message_start.', { fallback: true });
      if (next.value.type === 'error') throw streamError(next.value.doc);
      first.push(next.value);
      if (next.value.type === 'message_start') return { kind: 'stream', events, first, deadline };
    }
  } catch (err) {
    await events?.return?.(undefined).catch(() => undefined);
    deadline.dispose(true);
    throw deadline.failure(err, true);
  }
}

function parseMessage(text: string): Message & Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    doc = undefined;
  }
  const message = doc as (Message & Record<string, unknown>) | undefined;
  if (!message || message.type !== 'message' || !Array.isArray(message.content)) {
    throw upstreamError('Anthropic answered with something that is not a message.', { fallback: true });
  }
  return message;
}

function streamError(doc: Record<string, unknown>): GatewayError {
  const error = (doc.error ?? {}) as { type?: unknown; message?: unknown };
  return anthropicError(typeof error.type === 'string' ? error.type : undefined, typeof error.message === 'string' ? error.message : undefined);
}

/** The usage Anthropic reported, in the OpenAI shape settlement reads (cache reads and writes are prompt tokens). */
export function messageUsage(usage: Record<string, unknown> | undefined): CompletionUsage | undefined {
  if (!usage) return undefined;
  return completionUsage(applyCounts({ input: 0, output: 0, cacheRead: 0, cacheWrite: 0 }, usage));
}

/** Anthropic's counts replace, field by field, what was known: message_delta's are cumulative. */
const applyCounts = applyAnthropicUsage;

/**
 * Anthropic's own stream, relayed event by event and metered on the way: usage from
 * `message_start` and `message_delta`, the text, tool input and thinking delivered (for the
 * tokenizer when the stream is cut short). The request settles when the stream ends (after
 * `message_stop`), fails (an error event, a broken body, the deadline: `next` throws a
 * GatewayError) or is cancelled by the client going away (`return`). `message_start` carries the
 * gateway's model id instead of the upstream's.
 */
export class MeteredMessageEvents implements AsyncIterableIterator<RawAnthropicEvent> {
  private counts: ProviderTokenCounts | undefined;
  private readonly pieces: string[] = [];
  private firstTokenMs: number | undefined;
  private stopped = false;
  private ended = false;

  constructor(
    private readonly run: AdmittedRun,
    private readonly answer: Extract<NativeAnswer, { kind: 'stream' }>,
    readonly route: string,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<RawAnthropicEvent>> {
    if (this.ended) return { done: true, value: undefined };
    let event: RawAnthropicEvent;
    try {
      const buffered = this.answer.first.shift();
      if (buffered) event = buffered;
      else {
        const next = await this.answer.events.next();
        if (next.done) {
          if (!this.stopped) throw upstreamError('Anthropic ended the stream before message_stop.');
          this.end('completed');
          return { done: true, value: undefined };
        }
        event = next.value;
      }
      if (event.type === 'error') throw streamError(event.doc);
    } catch (err) {
      const error = this.run.deadlineError ?? (err instanceof GatewayError ? err : upstreamError('Anthropic failed mid-stream.', { cause: err }));
      this.run.abort.abort();
      this.end('interrupted', error.code);
      throw error;
    }
    return { done: false, value: this.meter(event) };
  }

  /** The client went away: stop the upstream and bill what it delivered. */
  async return(): Promise<IteratorResult<RawAnthropicEvent>> {
    if (!this.ended) {
      // Ended first: the abort makes a `next` still waiting on the upstream fail, which is not an upstream failure.
      this.end('aborted', 'client_closed');
      this.run.abort.abort();
      await this.answer.events.return?.(undefined).catch(() => undefined);
    }
    return { done: true, value: undefined };
  }

  private meter(event: RawAnthropicEvent): RawAnthropicEvent {
    const doc = event.doc;
    switch (event.type) {
      case 'message_start': {
        const message = (doc.message ?? {}) as Record<string, unknown>;
        this.counts = applyCounts({ input: 0, output: 0, cacheRead: 0, cacheWrite: 0 }, (message.usage ?? {}) as Record<string, unknown>);
        message.model = this.run.model.id;
        return { ...event, data: JSON.stringify(doc) };
      }
      case 'message_delta':
        if (doc.usage && typeof doc.usage === 'object') this.counts = applyCounts(this.counts ?? { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 }, doc.usage as Record<string, unknown>);
        return event;
      case 'message_stop':
        this.stopped = true;
        return event;
      case 'content_block_delta': {
        const delta = (doc.delta ?? {}) as Record<string, unknown>;
        const piece = delta.text ?? delta.partial_json ?? delta.thinking;
        if (typeof piece === 'string' && piece) {
          this.pieces.push(piece);
          this.firstTokenMs ??= Date.now() - this.run.scope.startedAtMs;
        }
        return event;
      }
      default:
        return event;
    }
  }

  private end(status: Outcome['status'], errorCode?: string): void {
    this.ended = true;
    this.answer.deadline.dispose(status !== 'completed');
    this.run.finish({
      status,
      httpStatus: 200,
      usage: this.counts ? completionUsage(this.counts) : undefined,
      completionText: this.pieces.join(''),
      route: this.route,
      errorCode,
      timeToFirstTokenMs: this.firstTokenMs,
    });
  }
}
