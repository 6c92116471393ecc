import { upstreamError } from '../contract/errors';
import { usageExtras } from '../contract/usage';
import type { ChatCompletion, ChatCompletionChunk, CompletionUsage } from '../contract/openai';
import type { ContentBlock, Message, MessageStreamEvent, StopReason, Usage } from './wire';

/** OpenAI's finish_reason in Anthropic's words. */
export function stopReasonOf(finishReason: string | null | undefined): StopReason {
  switch (finishReason) {
    case 'length':
      return 'max_tokens';
    case 'tool_calls':
    case 'function_call':
      return 'tool_use';
    case 'content_filter':
      return 'refusal';
    default:
      return 'end_turn';
  }
}

/**
 * Anthropic's `input_tokens` leaves out the cache reads and writes that OpenAI's `prompt_tokens`
 * includes; writes (a Bedrock route's, say), server-tool calls and the tier go in Anthropic's own fields.
 */
export function anthropicUsage(usage: CompletionUsage | undefined, estimate: { promptTokens: number; completionTokens: number }): Usage {
  if (!usage) return { input_tokens: estimate.promptTokens, output_tokens: estimate.completionTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  const cached = Math.min(usage.prompt_tokens_details?.cached_tokens ?? 0, usage.prompt_tokens);
  const extras = usageExtras(usage);
  const writes5m = extras.cacheWriteTokens ?? 0;
  const writes1h = extras.cacheWrite1hTokens ?? 0;
  const writes = Math.min(writes5m + writes1h, usage.prompt_tokens - cached);
  const out: Usage = { input_tokens: usage.prompt_tokens - cached - writes, output_tokens: usage.completion_tokens, cache_creation_input_tokens: writes, cache_read_input_tokens: cached };
  if (writes) out.cache_creation = { ephemeral_5m_input_tokens: writes5m, ephemeral_1h_input_tokens: writes1h };
  if (extras.serverToolCalls) out.server_tool_use = Object.fromEntries(Object.entries(extras.serverToolCalls).map(([tool, n]) => [`${tool}_requests`, n]));
  if (extras.serviceTier) out.service_tier = extras.serviceTier;
  return out;
}

/** A tool call's arguments as the `input` object Anthropic's clients expect; text that is not a JSON object is kept under `arguments`. */
function toolInput(args: string): Record<string, unknown> {
  if (!args.trim()) return {};
  try {
    const value: unknown = JSON.parse(args);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through
  }
  return { arguments: args };
}

/** A whole ChatCompletion (first choice) → an Anthropic Message. */
export function completionToMessage(completion: ChatCompletion, id: string, model: string, promptTokensEstimate: number): Message {
  const choice = completion.choices[0];
  const content: ContentBlock[] = [];
  const text = (choice?.message.content ?? '') || (choice?.message.refusal ?? '');
  if (text) content.push({ type: 'text', text });
  (choice?.message.tool_calls ?? []).forEach((call, i) => {
    if (call.type !== 'function') return;
    content.push({ type: 'tool_use', id: call.id || `toolu_${id.slice(4)}_${i}`, name: call.function.name, input: toolInput(call.function.arguments) });
  });
  return {
    id,
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: stopReasonOf(choice?.finish_reason),
    stop_sequence: null,
    usage: anthropicUsage(completion.usage, { promptTokens: promptTokensEstimate, completionTokens: 0 }),
  };
}

type OpenBlock = { kind: 'text'; index: number } | { kind: 'tool_use'; index: number; toolIndex: number };

/**
 * OpenAI chunks → Anthropic's stream events, the sequence its SDKs and Claude Code rely on:
 * `message_start` and a `ping`, then content blocks with contiguous indices (0, 1, …), one open
 * at a time — text as `text_delta`, each tool call as a `tool_use` block (id and name in
 * `content_block_start`, arguments as `input_json_delta`) — then `message_delta` with the stop
 * reason and the final usage (which overwrites message_start's estimate), and `message_stop`.
 */
export class ChatChunksToMessageEvents {
  private open: OpenBlock | undefined;
  private nextIndex = 0;
  private readonly toolBlocks = new Map<number, number>();
  private finishReason: string | null = null;
  private usage: CompletionUsage | undefined;
  private outputPieces = 0;

  constructor(
    private readonly id: string,
    private readonly model: string,
    private readonly promptTokensEstimate: number,
  ) {}

  start(): MessageStreamEvent[] {
    const message: Message = {
      id: this.id,
      type: 'message',
      role: 'assistant',
      model: this.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: this.promptTokensEstimate, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    };
    return [{ type: 'message_start', message }, { type: 'ping' }];
  }

  push(chunk: ChatCompletionChunk): MessageStreamEvent[] {
    if (chunk.usage) this.usage = chunk.usage;
    const events: MessageStreamEvent[] = [];
    for (const choice of chunk.choices) {
      if (choice.index !== 0) continue;
      const delta = choice.delta;
      const text = delta.content || delta.refusal;
      if (text) {
        if (this.open?.kind !== 'text') this.openBlock(events, { type: 'text', text: '' });
        events.push({ type: 'content_block_delta', index: this.open!.index, delta: { type: 'text_delta', text } });
        this.outputPieces++;
      }
      for (const call of delta.tool_calls ?? []) {
        let index = this.toolBlocks.get(call.index);
        if (index === undefined) {
          const id = call.id || `toolu_${this.id.slice(4)}_${call.index}`;
          index = this.openBlock(events, { type: 'tool_use', id, name: call.function?.name ?? '', input: {} }, call.index);
          this.toolBlocks.set(call.index, index);
        } else if (this.open?.index !== index) {
          throw upstreamError('The upstream interleaved the arguments of two tool calls, which an Anthropic stream cannot carry.');
        }
        const fragment = call.function?.arguments;
        if (fragment) {
          events.push({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: fragment } });
          this.outputPieces++;
        }
      }
      if (choice.finish_reason) this.finishReason = choice.finish_reason;
    }
    return events;
  }

  /** After the upstream's last chunk: the open block closes, then the stop reason and final usage. */
  finish(): MessageStreamEvent[] {
    const events: MessageStreamEvent[] = [];
    this.closeBlock(events);
    const usage = anthropicUsage(this.usage, { promptTokens: this.promptTokensEstimate, completionTokens: this.outputPieces });
    events.push(
      { type: 'message_delta', delta: { stop_reason: stopReasonOf(this.finishReason), stop_sequence: null }, usage },
      { type: 'message_stop' },
    );
    return events;
  }

  private openBlock(events: MessageStreamEvent[], block: ContentBlock, toolIndex?: number): number {
    this.closeBlock(events);
    const index = this.nextIndex++;
    this.open = block.type === 'text' ? { kind: 'text', index } : { kind: 'tool_use', index, toolIndex: toolIndex ?? 0 };
    events.push({ type: 'content_block_start', index, content_block: block });
    return index;
  }

  private closeBlock(events: MessageStreamEvent[]): void {
    if (!this.open) return;
    events.push({ type: 'content_block_stop', index: this.open.index });
    this.open = undefined;
  }
}
