// Temporary (issue 18): the Chat-shaped seam for the endpoints not yet on their codecs
// (`/v1/responses` until issue-18h, `/v1/messages`' translated routes until issue-18g). They call
// the one pipeline (`openAnswer`) with the Chat request decoded, and read the answer back in Chat's
// shapes. Delete this file once both endpoints encode `AnswerEvent`s with their own codecs.
import type { ModelEntry } from '../catalog';
import { ChatChunkEncoder, decodeChatRequest, encodeChatCompletion, type ChatCompletionWithThinking } from '../codecs/openai-chat';
import type { GatewayError } from '../contract/errors';
import type { ChatCompletionChunk } from '../contract/openai';
import type { ChatCompletionRequest } from '../contract/request';
import type { Answer, AnswerEvent } from '../core/answer';
import { estimatePromptTokens } from '../money/tokens';
import { refuseWhatAnthropicCannotTake } from '../providers';
import type { KeyRecord } from '../store/keys';
import { chatBillingAsk, openAnswer, type CompletionDeps, type MeteredAnswer, type RequestScope } from './pipeline';

export type OpenedCompletion = { kind: 'json'; completion: ChatCompletionWithThinking; route: string } | { kind: 'stream'; chunks: ChatChunks; route: string };

/** A Chat Completions request through the one pipeline, answered in Chat's shapes (one choice). */
export async function openCompletion(deps: CompletionDeps, scope: RequestScope, key: KeyRecord, model: ModelEntry, request: ChatCompletionRequest): Promise<OpenedCompletion> {
  const opened = await openAnswer(deps, scope, key, model, decodeChatRequest(request), {
    promptTokens: estimatePromptTokens(request, model.tokenRules),
    billing: chatBillingAsk(request, model),
    check: (call) => {
      if (call.route.provider === 'anthropic') refuseWhatAnthropicCannotTake(request);
    },
  });
  if (opened.kind === 'json') return { kind: 'json', completion: chatCompletionOf(opened.answer), route: opened.route };
  if (opened.kind === 'relay') throw new Error('openCompletion asks for no relay.');
  return { kind: 'stream', chunks: new ChatChunks(opened.events), route: opened.route };
}

/** A whole answer as a ChatCompletion (the gateway's `chatcmpl-` id). */
export function chatCompletionOf(answer: Answer): ChatCompletionWithThinking {
  return encodeChatCompletion({ ...answer, id: chatId(answer.id) });
}

function chatId(id: string): string {
  return id.startsWith('chatcmpl-') ? id : `chatcmpl-${id}`;
}

/** A metered answer's events as Chat chunks (the usage chunk last), with the meter's `return` and `fail`. */
export class ChatChunks implements AsyncIterableIterator<ChatCompletionChunk> {
  private readonly encoder = new ChatChunkEncoder();
  private readonly queue: ChatCompletionChunk[] = [];
  private ended = false;

  constructor(private readonly events: MeteredAnswer<AnswerEvent>) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<ChatCompletionChunk>> {
    while (!this.queue.length) {
      if (this.ended) return { done: true, value: undefined };
      const next = await this.events.next();
      if (next.done) {
        this.ended = true;
        this.queue.push(...this.encoder.end());
      } else {
        const event = next.value;
        this.queue.push(...this.encoder.push(event.type === 'start' ? { ...event, id: chatId(event.id) } : event));
      }
    }
    return { done: false, value: this.queue.shift()! };
  }

  async return(): Promise<IteratorResult<ChatCompletionChunk>> {
    await this.events.return();
    return { done: true, value: undefined };
  }

  async fail(error: GatewayError): Promise<void> {
    await this.events.fail(error);
  }
}
