import type { ContentBlockDelta, ContentBlockStart, ConverseStreamOutput } from '@aws-sdk/client-bedrock-runtime';
import { upstreamError } from '../../contract/errors';
import { bedrockError } from './errors';
import type { AnswerEvent } from '../../core/answer';
import { finishReasonOfConverse, redactedDataOf, stopSequenceOf, usageOfConverse } from './response';

type Phase = 'before_message' | 'in_message' | 'stopped' | 'done';


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
