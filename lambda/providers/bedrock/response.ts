import type { ConverseResponse, TokenUsage } from '@aws-sdk/client-bedrock-runtime';
import type { ChatCompletion, ChatCompletionMessageToolCall } from '../../contract/openai';
import { finishReasonOfAnthropic } from '../../codecs/anthropic-messages';
import { chatFinishReason } from '../../codecs/openai-chat';
import { ZERO_USAGE, type Answer, type AnswerPart, type FinishReason, type Usage } from '../../core/answer';
import { chatCompletion, completionUsage, type ProviderTokenCounts } from '../openai-shapes';

/** Canonical usage in the counts the OpenAI-shaped usage is built from (every write, and the 1-hour part of them). */
export function tokenCountsOf(usage: Usage): ProviderTokenCounts {
  return {
    input: usage.inputTokens,
    output: usage.outputTokens,
    cacheRead: usage.cacheReadTokens,
    cacheWrite: usage.cacheWriteTokens + usage.cacheWrite1hTokens,
    cacheWrite1h: usage.cacheWrite1hTokens,
  };
}

/**
 * A Converse answer → a ChatCompletion, for the `Provider` interface until the pipeline takes
 * answers: the canonical answer's text (a JSON-mode tool's input included) and tool calls, its
 * reasoning left out, its finish reason in OpenAI's words.
 */
export function bedrockResponseToCompletion(
  response: ConverseResponse,
  meta: { id: string; model: string; jsonToolName: string | undefined },
): ChatCompletion {
  const answer = answerOfConverse(response, meta);
  const toolCalls = answer.parts.flatMap((p): ChatCompletionMessageToolCall[] =>
    p.type === 'tool_call' ? [{ id: p.id, type: 'function', function: { name: p.name, arguments: p.arguments } }] : [],
  );
  return chatCompletion({
    id: meta.id,
    model: meta.model,
    text: answer.parts.flatMap((p) => (p.type === 'text' ? [p.text] : [])),
    toolCalls,
    finishReason: chatFinishReason(answer.finishReason, toolCalls.length > 0),
    usage: completionUsage(tokenCountsOf(answer.usage ?? ZERO_USAGE)),
  });
}

// ---- the canonical model (issue 18) -----------------------------------------------------------

/**
 * Converse's stopReason as a canonical finish reason: Anthropic's words as the Anthropic codec
 * reads them, filters as `refusal`, and `tool_use` ending a JSON-mode answer (no real tool called)
 * as `stop`.
 */
export function finishReasonOfConverse(stopReason: string | undefined, calledTools: boolean): FinishReason {
  switch (stopReason) {
    case 'content_filtered':
    case 'guardrail_intervened':
      return 'refusal';
    case 'tool_use':
      return calledTools ? 'tool_calls' : 'stop';
    default:
      return finishReasonOfAnthropic(stopReason);
  }
}

/** The stop sequence Claude matched, which Converse passes on in the model's own response fields. */
export function stopSequenceOf(fields: unknown): string | undefined {
  const value = fields !== null && typeof fields === 'object' ? (fields as { stop_sequence?: unknown }).stop_sequence : undefined;
  return typeof value === 'string' ? value : undefined;
}

/**
 * Converse's usage → canonical. `inputTokens` excludes cache reads and writes (as Anthropic
 * counts); writes split by lifetime when `cacheDetails` says (what it does not place is a
 * 5-minute write), and the tier Bedrock says it served.
 */
export function usageOfConverse(usage: TokenUsage | undefined, serviceTier?: { type?: string } | undefined): Usage {
  const writes = usage?.cacheWriteInputTokens ?? 0;
  const details = usage?.cacheDetails ?? [];
  const oneHour = details.reduce((sum, d) => sum + (d.ttl === '1h' ? d.inputTokens ?? 0 : 0), 0);
  const placed = details.reduce((sum, d) => sum + (d.inputTokens ?? 0), 0);
  return {
    inputTokens: usage?.inputTokens ?? 0,
    cacheReadTokens: usage?.cacheReadInputTokens ?? 0,
    cacheWriteTokens: Math.max(writes, placed) - oneHour,
    cacheWrite1hTokens: oneHour,
    outputTokens: usage?.outputTokens ?? 0,
    ...(serviceTier?.type !== undefined && { serviceTier: serviceTier.type }),
  };
}

/** A redacted thinking block's bytes as the canonical `redactedData` (base64, as Converse's JSON carries them). */
export function redactedDataOf(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/**
 * A Converse answer → a canonical answer: text, reasoning (text + signature, or redacted bytes)
 * and tool calls in the model's order; `jsonToolName`'s input becomes text.
 */
export function answerOfConverse(response: ConverseResponse, meta: { id: string; model: string; jsonToolName: string | undefined }): Answer {
  const parts: AnswerPart[] = [];
  let calledTools = false;
  for (const block of response.output?.message?.content ?? []) {
    if (block.text !== undefined) parts.push({ type: 'text', text: block.text });
    else if (block.reasoningContent?.reasoningText) {
      const { text, signature } = block.reasoningContent.reasoningText;
      parts.push({ type: 'reasoning', text: text ?? '', ...(signature !== undefined && { signature }) });
    } else if (block.reasoningContent?.redactedContent) {
      parts.push({ type: 'reasoning', text: '', redactedData: redactedDataOf(block.reasoningContent.redactedContent) });
    } else if (block.toolUse) {
      const { toolUseId, name, input } = block.toolUse;
      const args = JSON.stringify(input ?? {});
      if (name === meta.jsonToolName) parts.push({ type: 'text', text: args });
      else {
        calledTools = true;
        parts.push({ type: 'tool_call', id: toolUseId ?? '', name: name ?? '', arguments: args });
      }
    }
  }
  const stopSequence = stopSequenceOf(response.additionalModelResponseFields);
  return {
    id: meta.id,
    model: meta.model,
    createdS: Math.floor(Date.now() / 1000),
    parts,
    finishReason: finishReasonOfConverse(response.stopReason, calledTools),
    ...(stopSequence !== undefined && { stopSequence }),
    usage: usageOfConverse(response.usage, response.serviceTier),
  };
}
