import { upstreamError } from '../../contract/errors';
import type { ChatCompletionChunk, FinishReason } from '../../contract/openai';
import { ChunkBuilder, completionUsage, type ProviderTokenCounts } from '../openai-shapes';
import { anthropicError } from './errors';
import { anthropicFinishReason, anthropicTokenCounts, applyAnthropicUsage } from './response';
import { THINKING, type ThinkingBilling, type ThinkingSignal } from '../../money/thinking';
import type { AnthropicStreamEvent } from './wire';

/** What one Anthropic content block (by its `index`) is becoming on the OpenAI side. */
type BlockState =
  | { kind: 'text' }
  | { kind: 'tool_call'; toolIndex: number; argumentsSent: boolean }
  | { kind: 'json_answer'; textSent: boolean }
  | { kind: 'thinking' }
  | { kind: 'ignored' };

type Phase = 'before_message' | 'in_message' | 'stopped';

/**
 * Anthropic's SSE events → OpenAI chunks, one event at a time.
 *
 * message_start gives the first chunk (role) and the input usage; each tool_use block opens the
 * next OpenAI tool call (its own index, id and name in its first chunk); text_delta and
 * input_json_delta stream as they come; message_delta carries the stop reason and the final,
 * cumulative usage (replacing, never adding to, message_start's); message_stop emits the finish
 * chunk and the usage chunk; ping is ignored; an error event throws. Thinking blocks reach no
 * client; they pass to the meter as choice-less chunks carrying THINKING (their text, and how to
 * bill summarized thinking cut short: see lambda/money/thinking.ts).
 */
export class AnthropicStreamMapper {
  private phase: Phase = 'before_message';
  private builder: ChunkBuilder | undefined;
  private readonly blocks = new Map<number, BlockState>();
  private counts: ProviderTokenCounts = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
  private stopReason: string | null = null;
  private calledTools = false;

  constructor(
    private readonly jsonToolName: string | undefined,
    /** Set when the request enabled thinking: as sent upstream. */
    private readonly thinking?: ThinkingBilling,
  ) {}

  get finished(): boolean {
    return this.phase === 'stopped';
  }

  push(event: AnthropicStreamEvent): ChatCompletionChunk[] {
    switch (event.type) {
      case 'ping':
        return [];
      case 'error':
        throw anthropicError(event.error?.type, event.error?.message);
      case 'message_start': {
        this.builder = new ChunkBuilder(`chatcmpl-${event.message.id}`, event.message.model);
        this.phase = 'in_message';
        this.counts = anthropicTokenCounts(event.message.usage);
        return [this.builder.start()];
      }
      case 'content_block_start':
        return this.blockStart(event.index, event.content_block);
      case 'content_block_delta':
        return this.blockDelta(event.index, event.delta);
      case 'content_block_stop':
        return this.blockStop(event.index);
      case 'message_delta': {
        this.stopReason = event.delta.stop_reason ?? this.stopReason;
        // message_delta's counts are cumulative: they replace message_start's, field by field.
        this.counts = applyAnthropicUsage(this.counts, (event.usage ?? {}) as Record<string, unknown>);
        return [];
      }
      case 'message_stop': {
        const builder = this.requireMessage();
        this.phase = 'stopped';
        const reason: FinishReason = anthropicFinishReason(this.stopReason, this.calledTools);
        return [builder.finish(reason), builder.usage(completionUsage(this.counts))];
      }
      default:
        // Anthropic may add event types; unknown ones carry nothing we translate.
        return [];
    }
  }

  /** Called when the upstream body ends: a stream cut before message_stop is a failure, not an answer. */
  end(): void {
    if (this.phase !== 'stopped') throw upstreamError('Anthropic ended the stream before message_stop.');
  }

  private requireMessage(): ChunkBuilder {
    if (!this.builder || this.phase !== 'in_message') throw upstreamError('Anthropic sent an event outside a message.');
    return this.builder;
  }

  private blockStart(index: number, block: Extract<AnthropicStreamEvent, { type: 'content_block_start' }>['content_block']): ChatCompletionChunk[] {
    const builder = this.requireMessage();
    if (block.type === 'text') {
      this.blocks.set(index, { kind: 'text' });
      return block.text ? [builder.text(block.text)] : [];
    }
    if (block.type === 'tool_use') {
      if (block.name === this.jsonToolName) {
        this.blocks.set(index, { kind: 'json_answer', textSent: false });
        return [];
      }
      this.calledTools = true;
      const { index: toolIndex, chunk } = builder.toolCallStart(block.id, block.name);
      this.blocks.set(index, { kind: 'tool_call', toolIndex, argumentsSent: false });
      return [chunk];
    }
    if (block.type === 'thinking' || block.type === 'redacted_thinking') {
      this.blocks.set(index, { kind: 'thinking' });
      return [this.thinkingChunk(builder, { text: '', billing: this.thinking?.summarized ? this.thinking : undefined })];
    }
    this.blocks.set(index, { kind: 'ignored' });
    return [];
  }

  /** A chunk no client wire sends (no choices, no usage), carrying thinking to the meter. */
  private thinkingChunk(builder: ChunkBuilder, signal: ThinkingSignal): ChatCompletionChunk {
    return Object.assign(builder.bare(), { [THINKING]: signal });
  }

  private blockDelta(index: number, delta: Extract<AnthropicStreamEvent, { type: 'content_block_delta' }>['delta']): ChatCompletionChunk[] {
    const builder = this.requireMessage();
    const block = this.blocks.get(index);
    if (!block) throw upstreamError(`Anthropic sent a delta for content block ${index}, which never started.`);
    if (delta.type === 'text_delta') {
      return block.kind === 'text' && delta.text ? [builder.text(delta.text)] : [];
    }
    if (delta.type === 'thinking_delta') {
      const text = (delta as { thinking?: unknown }).thinking;
      return block.kind === 'thinking' && typeof text === 'string' && text ? [this.thinkingChunk(builder, { text })] : [];
    }
    if (delta.type === 'input_json_delta') {
      if (!delta.partial_json) return [];
      if (block.kind === 'json_answer') {
        block.textSent = true;
        return [builder.text(delta.partial_json)];
      }
      if (block.kind !== 'tool_call') return [];
      block.argumentsSent = true;
      return [builder.toolCallArguments(block.toolIndex, delta.partial_json)];
    }
    return [];
  }

  private blockStop(index: number): ChatCompletionChunk[] {
    const builder = this.requireMessage();
    const block = this.blocks.get(index);
    // A tool called with no input streams no JSON at all; clients parse the arguments, so send `{}`.
    if (block?.kind === 'tool_call' && !block.argumentsSent) {
      block.argumentsSent = true;
      return [builder.toolCallArguments(block.toolIndex, '{}')];
    }
    if (block?.kind === 'json_answer' && !block.textSent) {
      block.textSent = true;
      return [builder.text('{}')];
    }
    return [];
  }
}
