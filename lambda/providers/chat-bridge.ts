// Temporary (issue 18, until the pipeline meters AnswerEvents itself): a provider that speaks the
// canonical model, behind the chat-chunk `Provider` interface the pipeline still calls.
import { ChatChunkEncoder, decodeChatRequest, encodeChatCompletion } from '../codecs/openai-chat';
import type { AnswerEvent } from '../core/answer';
import { callFor, heldOutputLimit } from '../core/call';
import type { ChatCompletionChunk } from '../contract/openai';
import type { ChatCompletionRequest } from '../contract/request';
import { THINKING, type ThinkingBilling, type ThinkingSignal } from '../money/thinking';
import type { AnswerCall, AnswerProvider, Provider, ProviderCall } from './types';

/**
 * `provider` as a chat `Provider`: the validated Chat request decoded with the Chat codec into a
 * `Call` (its output limit the one the pipeline sent, which the hold paid for), the answer encoded
 * back with it: the provider's thinking in `reasoning_content` / `thinking_blocks`, summarized
 * thinking's billing passed to the meter on the first thinking chunk (THINKING). `validate` throws
 * the 400s of what the route cannot take, before any upstream call.
 */
export function chatProviderOf(provider: AnswerProvider, validate?: (request: ChatCompletionRequest) => void): Provider & AnswerProvider {
  const callOf = (call: ProviderCall): AnswerCall => {
    validate?.(call.request);
    const limit = call.request.max_completion_tokens ?? call.request.max_tokens ?? call.maxOutputTokens;
    return { ...call, request: callFor(decodeChatRequest(call.request), heldOutputLimit(limit)) };
  };
  return {
    // The canonical side too, for endpoints already on it (`/v1/messages`).
    answer: (call) => provider.answer(call),
    answerStream: (call) => provider.answerStream(call),
    ...(provider.relayWire && { relayWire: provider.relayWire }),
    ...(provider.relayStream && { relayStream: provider.relayStream.bind(provider) }),
    ...(provider.relayAnswer && { relayAnswer: provider.relayAnswer.bind(provider) }),
    ...(provider.thinkingBilling && { thinkingBilling: provider.thinkingBilling.bind(provider) }),
    async complete(call) {
      const answer = await provider.answer(callOf(call));
      return encodeChatCompletion({ ...answer, id: chatId(answer.id) });
    },
    async stream(call) {
      const answerCall = callOf(call);
      const billing = provider.thinkingBilling?.(answerCall);
      return chunksOf(await provider.answerStream(answerCall), billing?.summarized ? billing : undefined);
    },
    ...(provider.embed && { embed: provider.embed.bind(provider) }),
  };
}

function chatId(id: string): string {
  return id.startsWith('chatcmpl-') ? id : `chatcmpl-${id}`;
}

async function* chunksOf(events: AsyncIterable<AnswerEvent>, billing: ThinkingBilling | undefined): AsyncGenerator<ChatCompletionChunk> {
  const encoder = new ChatChunkEncoder();
  let thinkingSignalled = false;
  let head = { id: '', model: '', created: 0 };
  for await (const event of events) {
    if (event.type === 'start') head = { id: chatId(event.id), model: event.model, created: event.createdS ?? Math.floor(Date.now() / 1000) };
    const chunks = encoder.push(event.type === 'start' ? { ...event, id: head.id } : event);
    if (billing && !thinkingSignalled && (event.type === 'reasoning' || event.type === 'reasoning_redacted')) {
      thinkingSignalled = true;
      // A chunk without choices or usage, which no client wire sends: thinking began, even before its first text.
      const signal: ThinkingSignal = { text: '', billing };
      const bare: ChatCompletionChunk = { ...head, object: 'chat.completion.chunk', choices: [] };
      yield Object.assign(bare, { [THINKING]: signal });
    }
    yield* chunks;
  }
  yield* encoder.end();
}
