import { DeliveredTokens, type AdmittedRun } from '../chat/pipeline';
import { UpstreamReader } from '../chat/upstream-reader';
import { chatUsage } from '../codecs/openai-chat';
import { usageOfMessages, type MessagesUsage } from '../codecs/anthropic-messages';
import { ZERO_USAGE, type Usage } from '../core/answer';
import { GatewayError, upstreamError } from '../contract/errors';
import type { CompletionUsage } from '../contract/openai';
import { thinkingOutputFloor, type ThinkingBilling } from '../money/thinking';
import type { Outcome } from '../money/types';
import { anthropicEventOf, anthropicStreamError, postMessages, type MessagesSend, type RawAnthropicEvent } from '../providers/anthropic';
import { openEventStream, readText } from '../providers/http';
import type { ProviderCall } from '../providers/types';
import { UpstreamDeadline } from '../providers/upstream-deadline';
import type { Message } from './wire';

/** An Anthropic route's answer to a client's own Messages request, before it is metered. */
export type NativeAnswer =
  | { kind: 'json'; message: Message & Record<string, unknown> }
  | { kind: 'stream'; events: AsyncIterator<RawAnthropicEvent>; deadline: UpstreamDeadline };

/**
 * Calls the Anthropic route with the client's request (as it came, but for the route's model and
 * the output limit the hold pays for). A stream is read up to its first event before anything is
 * answered, so an error as its first event (overloaded) still falls through to the model's next route.
 */
export async function openNativeMessage(call: ProviderCall, send: MessagesSend): Promise<NativeAnswer> {
  const deadline = new UpstreamDeadline(call.signal, 'Anthropic');
  if (send.body.stream !== true) {
    deadline.arm('total', call.timeouts.totalMs);
    let whole = false;
    try {
      const response = await postMessages(call, send, deadline);
      const message = parseMessage(await readText(response));
      whole = true;
      return { kind: 'json', message };
    } catch (err) {
      throw deadline.failure(err, true);
    } finally {
      deadline.dispose(!whole);
    }
  }
  let stopped = false;
  let read = 0;
  const events = await openEventStream<RawAnthropicEvent>(deadline, call.timeouts.idleMs, () => postMessages(call, send, deadline), {
    decode(event) {
      const raw = anthropicEventOf(event);
      if (raw.type === 'error') throw anthropicStreamError(raw.doc);
      if (raw.type === 'message_stop') stopped = true;
      read++;
      return [raw];
    },
    end() {
      if (read === 0) throw upstreamError('Anthropic ended the stream before message_start.', { fallback: true });
      // A body that ends later, before message_stop, is told by the meter (MeteredMessageEvents.next).
      return [];
    },
    finished: () => stopped,
  });
  return { kind: 'stream', events: events[Symbol.asyncIterator](), deadline };
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

/** The usage Anthropic reported, in the OpenAI shape settlement reads (cache reads and writes are prompt tokens). */
export function messageUsage(usage: Record<string, unknown> | undefined): CompletionUsage | undefined {
  if (!usage) return undefined;
  return chatUsage(usageOfMessages(usage as Partial<MessagesUsage>));
}

export { summarizesThinking, type ThinkingBilling } from '../money/thinking';

/**
 * Anthropic's own stream, relayed event by event and metered on the way: usage from
 * `message_start` and `message_delta`, the text, tool input and thinking delivered (for the
 * tokenizer when the stream is cut short). The upstream is read at its own pace into a bounded
 * buffer, whatever the client does (UpstreamReader). The request settles when the client has read
 * the end (after `message_stop`), when the upstream fails (an error event, a broken body, the
 * deadline, a client too far behind), at the deadline by the run's own timer, or when the client
 * goes away (`return`). `message_start` carries the gateway's model id instead of the upstream's.
 *
 * Thinking that Anthropic summarizes is billed in full, and its count comes only with
 * `message_delta`: a stream cut short after thinking began, before that count came, is charged
 * upward, the whole thinking budget (else the output limit) plus the text delivered after it,
 * within the output limit.
 */
export class MeteredMessageEvents implements AsyncIterableIterator<RawAnthropicEvent> {
  private usage: Usage | undefined;
  private readonly pieces: string[] = [];
  /** Text delivered outside thinking blocks (text, tool input), for the thinking estimate. */
  private readonly answerPieces: string[] = [];
  private readonly thinkingBlocks = new Set<number>();
  private thinkingStarted = false;
  private finalCount = false;
  private firstTokenMs: number | undefined;
  private stopped = false;
  private ended = false;
  private readonly reader: UpstreamReader<RawAnthropicEvent, RawAnthropicEvent>;

  constructor(
    private readonly run: AdmittedRun,
    private readonly answer: Extract<NativeAnswer, { kind: 'stream' }>,
    readonly route: string,
    private readonly thinking?: ThinkingBilling,
  ) {
    const source: AsyncIterator<RawAnthropicEvent> = {
      next: () => answer.events.next(),
      return: async () => (await answer.events.return?.(undefined)) ?? { done: true, value: undefined },
    };
    const delivered = new DeliveredTokens(
      () => this.pieces.join(''),
      () => Math.max(this.finalCount ? (this.usage?.outputTokens ?? 0) : 0, this.thinkingEstimate() ?? 0),
    );
    this.reader = new UpstreamReader(source, undefined, {
      observe: (event) => {
        return this.meter(event);
      },
      onFailure: (err) => {
        const error = run.pastDeadline() ?? (err instanceof GatewayError ? err : upstreamError('Anthropic failed mid-stream.', { cause: err }));
        run.abort.abort();
        this.end('interrupted', error.code);
        return error;
      },
      maxBuffered: run.maxBuffered,
    });
    run.whileStreaming({ deliveredTokens: () => delivered.count(), onDeadline: (error) => this.end('interrupted', error.code) });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<RawAnthropicEvent>> {
    const next = await this.reader.next();
    if (!next.done) return next;
    if (!this.stopped) {
      const error = this.run.pastDeadline() ?? upstreamError('Anthropic ended the stream before message_stop.');
      this.end('interrupted', error.code);
      throw error;
    }
    this.end('completed');
    return next;
  }

  /** The client went away: stop the upstream and bill what it delivered. */
  async return(): Promise<IteratorResult<RawAnthropicEvent>> {
    if (!this.ended) {
      // Ended first: the abort makes a read still waiting on the upstream fail, which is not an upstream failure.
      this.end('aborted', 'client_closed');
      this.run.abort.abort();
    }
    await this.reader.stop();
    return { done: true, value: undefined };
  }

  private meter(event: RawAnthropicEvent): RawAnthropicEvent {
    const doc = event.doc;
    switch (event.type) {
      case 'message_start': {
        const message = (doc.message ?? {}) as Record<string, unknown>;
        this.usage = usageOfMessages((message.usage ?? {}) as Partial<MessagesUsage>);
        message.model = this.run.model.id;
        return { ...event, data: JSON.stringify(doc) };
      }
      case 'message_delta':
        if (doc.usage && typeof doc.usage === 'object') {
          this.usage = usageOfMessages(doc.usage as Partial<MessagesUsage>, this.usage ?? ZERO_USAGE);
          if (typeof (doc.usage as Record<string, unknown>).output_tokens === 'number') this.finalCount = true;
        }
        return event;
      case 'message_stop':
        this.stopped = true;
        return event;
      case 'content_block_start': {
        const block = (doc.content_block ?? {}) as Record<string, unknown>;
        if ((block.type === 'thinking' || block.type === 'redacted_thinking') && typeof doc.index === 'number') {
          this.thinkingBlocks.add(doc.index);
          this.thinkingStarted = true;
        }
        return event;
      }
      case 'content_block_delta': {
        const delta = (doc.delta ?? {}) as Record<string, unknown>;
        const piece = delta.text ?? delta.partial_json ?? delta.thinking;
        if (typeof piece === 'string' && piece) {
          this.pieces.push(piece);
          if (typeof delta.thinking !== 'string') this.answerPieces.push(piece);
          this.firstTokenMs ??= Date.now() - this.run.scope.startedAtMs;
        }
        return event;
      }
      default:
        return event;
    }
  }

  /** The upward estimate of output for summarized thinking whose count has not come (see the class). */
  private thinkingEstimate(): number | undefined {
    const t = this.thinking;
    if (!t?.summarized || !this.thinkingStarted || this.finalCount) return undefined;
    return thinkingOutputFloor(t, this.answerPieces.join(''));
  }

  private end(status: Outcome['status'], errorCode?: string): void {
    if (this.ended) return;
    this.ended = true;
    this.answer.deadline.dispose(status !== 'completed');
    this.run.finish({
      status,
      httpStatus: 200,
      usage: this.usage ? chatUsage(this.usage) : undefined,
      completionText: this.pieces.join(''),
      outputTokensAtLeast: status === 'completed' ? undefined : this.thinkingEstimate(),
      route: this.route,
      errorCode,
      timeToFirstTokenMs: this.firstTokenMs,
    });
  }
}
