import { withUsageExtras, type CarriedUsage } from '../contract/usage';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionMessageToolCall, CompletionUsage, FinishReason } from '../contract/openai';

/** Token counts as Messages-style APIs report them: input excludes the cached parts. */
export interface ProviderTokenCounts {
  input: number;
  output: number;
  cacheRead: number;
  /** Every cache write, whatever its lifetime. */
  cacheWrite: number;
  /** The part of `cacheWrite` written for an hour (Anthropic's `cache_creation.ephemeral_1h_input_tokens`). */
  cacheWrite1h?: number;
  /** Server-tool calls by the catalog's tool name (`web_search`, `web_fetch`). */
  serverToolCalls?: Record<string, number>;
  /** The service tier the provider says it served with. */
  serviceTier?: string;
}

/**
 * Cache reads and writes are prompt tokens too; the reads are what OpenAI calls cached. What
 * OpenAI's usage has no field for (writes by lifetime, server-tool calls, the tier) rides along
 * as the usage's extras, for settlement and for the endpoints whose wire has fields for it.
 */
export function completionUsage(counts: ProviderTokenCounts): CarriedUsage {
  const prompt = counts.input + counts.cacheRead + counts.cacheWrite;
  const writes1h = Math.min(counts.cacheWrite1h ?? 0, counts.cacheWrite);
  return withUsageExtras(
    {
      prompt_tokens: prompt,
      completion_tokens: counts.output,
      total_tokens: prompt + counts.output,
      prompt_tokens_details: { cached_tokens: counts.cacheRead },
    },
    { cacheWriteTokens: counts.cacheWrite - writes1h, cacheWrite1hTokens: writes1h, serverToolCalls: counts.serverToolCalls, serviceTier: counts.serviceTier },
  );
}

type ChunkDelta = ChatCompletionChunk.Choice.Delta;

/**
 * Builds OpenAI stream chunks in the order clients rely on: `role` in the first delta, each tool
 * call with its own index (0, 1, … in order of appearance) and its id and name in its first chunk,
 * one finish chunk, then usage in a chunk without choices.
 */
export class ChunkBuilder {
  private roleSent = false;
  private toolCalls = 0;

  constructor(
    readonly id: string,
    readonly model: string,
    readonly created: number = Math.floor(Date.now() / 1000),
  ) {}

  /** The first chunk: the assistant role and empty content, as OpenAI sends it. */
  start(): ChatCompletionChunk {
    return this.choice({ content: '' }, null);
  }

  text(text: string): ChatCompletionChunk {
    return this.choice({ content: text }, null);
  }

  /** Opens the next tool call; returns its OpenAI index with the chunk. */
  toolCallStart(id: string, name: string): { index: number; chunk: ChatCompletionChunk } {
    const index = this.toolCalls++;
    const chunk = this.choice({ tool_calls: [{ index, id, type: 'function', function: { name, arguments: '' } }] }, null);
    return { index, chunk };
  }

  toolCallArguments(index: number, fragment: string): ChatCompletionChunk {
    return this.choice({ tool_calls: [{ index, function: { arguments: fragment } }] }, null);
  }

  finish(reason: FinishReason): ChatCompletionChunk {
    return this.choice({}, reason);
  }

  usage(usage: CompletionUsage): ChatCompletionChunk {
    return { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [], usage };
  }

  /** A chunk with no choices and no usage: no client wire sends it (a carrier for the meter's side channels). */
  bare(): ChatCompletionChunk {
    return { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [] };
  }

  private choice(delta: ChunkDelta, finishReason: FinishReason | null): ChatCompletionChunk {
    const first = this.roleSent ? {} : { role: 'assistant' as const };
    this.roleSent = true;
    return {
      id: this.id,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.model,
      choices: [{ index: 0, delta: { ...first, ...delta }, finish_reason: finishReason, logprobs: null }],
    };
  }
}

/** One choice's worth of answer, gathered from a provider's content blocks. */
export interface AssistantAnswer {
  id: string;
  model: string;
  text: string[];
  toolCalls: ChatCompletionMessageToolCall[];
  finishReason: FinishReason;
  usage: CompletionUsage;
}

export function chatCompletion(answer: AssistantAnswer): ChatCompletion {
  const content = answer.text.join('');
  return {
    id: answer.id,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: answer.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: content.length > 0 || answer.toolCalls.length === 0 ? content : null,
          refusal: null,
          ...(answer.toolCalls.length > 0 ? { tool_calls: answer.toolCalls } : {}),
        },
        finish_reason: answer.finishReason,
        logprobs: null,
      },
    ],
    usage: answer.usage,
  };
}
