import type { ContentBlockDelta, ContentBlockStart, ConverseStreamOutput } from '@aws-sdk/client-bedrock-runtime';
import { upstreamError } from '../../contract/errors';
import type { ChatCompletionChunk } from '../../contract/openai';
import { ChunkBuilder, completionUsage } from '../openai-shapes';
import { THINKING, type ThinkingBilling, type ThinkingSignal } from '../../money/thinking';
import { bedrockError } from './errors';
import type { AnswerEvent } from '../../core/answer';
import { chatFinishReason } from '../../codecs/openai-chat';
import { finishReasonOfConverse, redactedDataOf, stopSequenceOf, tokenCountsOf, usageOfConverse } from './response';

type Phase = 'before_message' | 'in_message' | 'stopped' | 'done';

/**
 * ConverseStream events → OpenAI chunks, for the `Provider` interface until the pipeline takes
 * answer events: the canonical decoder's events in OpenAI's shapes. messageStart gives the first
 * chunk (role); each tool call its own OpenAI index, with id and name in its first chunk; the
 * finish and the usage chunks come from messageStop and metadata. Reasoning reaches no client; it
 * passes to the meter as choice-less chunks carrying THINKING (see lambda/money/thinking.ts).
 */
export class BedrockStreamMapper {
  private readonly decoder: ConverseEventDecoder;
  private readonly builder: ChunkBuilder;
  /** OpenAI tool-call index by answer part. */
  private readonly toolIndex = new Map<number, number>();
  private readonly thinkingParts = new Set<number>();
  private calledTools = false;

  constructor(
    id: string,
    model: string,
    jsonToolName: string | undefined,
    /** Set when the request enabled thinking: as sent upstream. */
    private readonly thinking?: ThinkingBilling,
  ) {
    this.decoder = new ConverseEventDecoder(id, model, jsonToolName);
    this.builder = new ChunkBuilder(id, model);
  }

  get finished(): boolean {
    return this.decoder.finished;
  }

  push(event: ConverseStreamOutput): ChatCompletionChunk[] {
    return this.decoder.push(event).flatMap((e) => this.chunksOf(e));
  }

  /** Called when the event stream ends: a stream cut before messageStop is a failure, not an answer. */
  end(): void {
    this.decoder.end();
  }

  private chunksOf(event: AnswerEvent): ChatCompletionChunk[] {
    switch (event.type) {
      case 'start':
        return [this.builder.start()];
      case 'text':
        return event.text ? [this.builder.text(event.text)] : [];
      case 'reasoning':
      case 'reasoning_redacted': {
        const signal: ThinkingSignal = { text: event.type === 'reasoning' ? event.text : '' };
        if (this.thinkingParts.has(event.index)) {
          if (!signal.text) return [];
        } else {
          this.thinkingParts.add(event.index);
          if (this.thinking?.summarized) signal.billing = this.thinking;
        }
        return [Object.assign(this.builder.bare(), { [THINKING]: signal })];
      }
      case 'tool_call_start': {
        this.calledTools = true;
        const { index, chunk } = this.builder.toolCallStart(event.id, event.name);
        this.toolIndex.set(event.index, index);
        return [chunk];
      }
      case 'tool_call_delta':
        return [this.builder.toolCallArguments(this.toolIndex.get(event.index)!, event.arguments)];
      case 'finish':
        return [this.builder.finish(chatFinishReason(event.reason, this.calledTools))];
      case 'usage':
        return [this.builder.usage(completionUsage(tokenCountsOf(event.usage)))];
      default:
        return [];
    }
  }
}

// ---- the canonical model (issue 18) -----------------------------------------------------------

/** What one Converse content block (by contentBlockIndex) is in the canonical answer: its part index and kind. */
type PartState =
  | { kind: 'text' | 'reasoning'; index: number }
  | { kind: 'redacted'; index: number; bytes: Uint8Array[] }
  | { kind: 'tool_call' | 'json_answer'; index: number; argumentsSent: boolean }
  | { kind: 'ignored' };

/**
 * ConverseStream events → answer events, one event at a time. Parts are numbered in the order
 * their blocks open (text and reasoning blocks open with their first delta, tool uses with
 * contentBlockStart); reasoning keeps its text, signature and redacted bytes (base64), in its
 * place ahead of the tool calls that followed it. messageStop gives the finish, metadata (which
 * follows it) the usage with every class Bedrock reports. Exception events throw GatewayErrors.
 */
export class ConverseEventDecoder {
  private phase: Phase = 'before_message';
  private readonly blocks = new Map<number, PartState>();
  private nextIndex = 0;
  private calledTools = false;

  constructor(
    private readonly id: string,
    private readonly model: string,
    private readonly jsonToolName: string | undefined,
  ) {}

  get finished(): boolean {
    return this.phase === 'done';
  }

  push(event: ConverseStreamOutput): AnswerEvent[] {
    throwException(event);
    if (event.messageStart) {
      this.phase = 'in_message';
      return [{ type: 'start', id: this.id, model: this.model, createdS: Math.floor(Date.now() / 1000) }];
    }
    if (event.contentBlockStart) {
      this.requireMessage();
      return this.blockStart(event.contentBlockStart.contentBlockIndex ?? 0, event.contentBlockStart.start);
    }
    if (event.contentBlockDelta) {
      this.requireMessage();
      return this.blockDelta(event.contentBlockDelta.contentBlockIndex ?? 0, event.contentBlockDelta.delta);
    }
    if (event.contentBlockStop) {
      this.requireMessage();
      return this.blockStop(event.contentBlockStop.contentBlockIndex ?? 0);
    }
    if (event.messageStop) {
      this.requireMessage();
      this.phase = 'stopped';
      const stopSequence = stopSequenceOf(event.messageStop.additionalModelResponseFields);
      return [{ type: 'finish', reason: finishReasonOfConverse(event.messageStop.stopReason, this.calledTools), ...(stopSequence !== undefined && { stopSequence }) }];
    }
    if (event.metadata) {
      if (this.phase !== 'stopped') throw upstreamError('Amazon Bedrock sent usage before the message stopped.');
      this.phase = 'done';
      return [{ type: 'usage', usage: usageOfConverse(event.metadata.usage, event.metadata.serviceTier) }];
    }
    return [];
  }

  /** Called when the event stream ends: a stream cut before messageStop is a failure, not an answer. */
  end(): void {
    if (this.phase !== 'stopped' && this.phase !== 'done') throw upstreamError('Amazon Bedrock ended the stream before messageStop.');
  }

  private requireMessage(): void {
    if (this.phase !== 'in_message') throw upstreamError('Amazon Bedrock sent an event outside a message.');
  }

  private open<S extends PartState>(block: number, state: (index: number) => S): S {
    const opened = state(this.nextIndex++);
    this.blocks.set(block, opened);
    return opened;
  }

  private blockStart(block: number, start: ContentBlockStart | undefined): AnswerEvent[] {
    const toolUse = start?.toolUse;
    if (!toolUse) {
      this.blocks.set(block, { kind: 'ignored' });
      return [];
    }
    if (toolUse.name === this.jsonToolName) {
      const part = this.open(block, (index) => ({ kind: 'json_answer' as const, index, argumentsSent: false }));
      return [{ type: 'text', index: part.index, text: '' }];
    }
    this.calledTools = true;
    const part = this.open(block, (index) => ({ kind: 'tool_call' as const, index, argumentsSent: false }));
    return [{ type: 'tool_call_start', index: part.index, id: toolUse.toolUseId ?? '', name: toolUse.name ?? '' }];
  }

  private blockDelta(block: number, delta: ContentBlockDelta | undefined): AnswerEvent[] {
    if (!delta) return [];
    const state = this.blocks.get(block);
    if (delta.text !== undefined) {
      // Text blocks have no start event: the first delta opens the part.
      if (!state) return [{ type: 'text', index: this.open(block, (index) => ({ kind: 'text' as const, index })).index, text: delta.text }];
      return state.kind === 'text' && delta.text ? [{ type: 'text', index: state.index, text: delta.text }] : [];
    }
    if (delta.reasoningContent) return this.reasoningDelta(block, state, delta.reasoningContent);
    if (delta.toolUse) {
      const fragment = delta.toolUse.input ?? '';
      if (!state) throw upstreamError(`Amazon Bedrock sent tool input for content block ${block}, which never started.`);
      if (!fragment || (state.kind !== 'tool_call' && state.kind !== 'json_answer')) return [];
      state.argumentsSent = true;
      return [state.kind === 'json_answer' ? { type: 'text', index: state.index, text: fragment } : { type: 'tool_call_delta', index: state.index, arguments: fragment }];
    }
    return [];
  }

  private reasoningDelta(block: number, state: PartState | undefined, delta: NonNullable<ContentBlockDelta['reasoningContent']>): AnswerEvent[] {
    if (delta.redactedContent !== undefined) {
      const part = state ?? this.open(block, (index) => ({ kind: 'redacted' as const, index, bytes: [] as Uint8Array[] }));
      if (part.kind !== 'redacted') return [];
      // A redacted block is whole in one event; should Bedrock split it, the later event carries all of it.
      part.bytes.push(delta.redactedContent);
      return [{ type: 'reasoning_redacted', index: part.index, data: redactedDataOf(Buffer.concat(part.bytes)) }];
    }
    const out: AnswerEvent[] = [];
    let part = state;
    if (!part) {
      part = this.open(block, (index) => ({ kind: 'reasoning' as const, index }));
      out.push({ type: 'reasoning', index: part.index, text: delta.text ?? '' });
    } else if (part.kind !== 'reasoning') return [];
    else if (delta.text) out.push({ type: 'reasoning', index: part.index, text: delta.text });
    if (delta.signature !== undefined) out.push({ type: 'reasoning_signature', index: part.index, signature: delta.signature });
    return out;
  }

  private blockStop(block: number): AnswerEvent[] {
    const state = this.blocks.get(block);
    // A tool called with no input streams no JSON at all; clients parse the arguments, so send `{}`.
    if ((state?.kind === 'tool_call' || state?.kind === 'json_answer') && !state.argumentsSent) {
      state.argumentsSent = true;
      return [state.kind === 'tool_call' ? { type: 'tool_call_delta', index: state.index, arguments: '{}' } : { type: 'text', index: state.index, text: '{}' }];
    }
    return [];
  }
}

/** An exception event inside ConverseStream, thrown in the gateway's words. */
function throwException(event: ConverseStreamOutput): void {
  const exception =
    event.internalServerException ??
    event.modelStreamErrorException ??
    event.serviceUnavailableException ??
    event.throttlingException ??
    event.validationException;
  if (exception) throw bedrockError(exception);
}
