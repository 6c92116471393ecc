import { ChatChunkEncoder, chatFrame, chatStreamTerminals, decodeChatRequest, encodeChatCompletion } from '../codecs/openai-chat';
import { invalidRequest } from '../contract/errors';
import { jsonSourceOf } from '../contract/json-body';
import { letGo } from '../contract/json-splice';
import { parseChatCompletionRequest, type ChatCompletionRequest } from '../contract/request';
import type { AnswerEvent } from '../core/answer';
import { DONE_FRAME, type SseFrame } from '../core/sse';
import { chatPromptEstimate } from '../money/tokens';
import { refuseWhatAnthropicCannotTake } from '../providers';
import type { AnswerCall, AnswerProvider } from '../providers/types';
import type { KeyRecord } from '../store/keys';
import { modelField, relayedChatData, relayedForClient } from './passthrough';
import { chatBillingAsk, JSON_HEADERS, modelFor, openAnswer, scopedResponse, type CompletionDeps, type RequestScope } from './pipeline';
import { sseBody, type SseBytes } from './sse-body';

export { ROUTE_HEADER, type CompletionDeps as ChatDeps, type RequestRecord, type RequestScope } from './pipeline';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  // Tells nginx-style proxies not to buffer.
  'x-accel-buffering': 'no',
};

/**
 * `POST /v1/chat/completions` once the key is known: decoded with the Chat codec, then the one
 * pipeline (`openAnswer`), answered with the same codec: JSON by `encodeChatCompletion`, a stream
 * by `ChatChunkEncoder` and Chat's terminals, or, on a route whose upstream speaks OpenAI's
 * protocol, its `data:` frames relayed untouched (the model id and `finish_reason` words aside).
 *
 * `n > 1` needs a provider that answers several choices (`servesSeveralChoices`: OpenAI-compatible
 * upstreams, the mock): served there, JSON or stream, and refused with a 400 (`param: n`) on the
 * routes of providers that answer one (Anthropic, Bedrock), before admission when no route can.
 */
export async function chatCompletion(deps: CompletionDeps, scope: RequestScope, key: KeyRecord, body: unknown): Promise<Response> {
  const request = parseChatCompletionRequest(body);
  const model = modelFor(deps, key, request.model);
  const n = request.n ?? 1;
  if (n > 1 && !model.routes.some((r) => deps.providers[r.provider]?.servesSeveralChoices)) throw severalChoices();
  const source = jsonSourceOf(body);
  const decoded = decodeChatRequest(request);
  if (source) decoded.source = { ...source, wire: 'openai-chat' };
  const opened = await openAnswer(deps, scope, key, model, decoded, {
    prompt: chatPromptEstimate(request, model.tokenRules, key.accountId),
    billing: chatBillingAsk(request, model),
    n,
    relay: 'openai-chat',
    check: (call, provider) => refuseOnRoute(request, call, provider),
  });
  // The upstream call is made: the stream (which holds its call) no longer needs the client's bytes.
  if (decoded.source) letGo(decoded.source);
  if (opened.kind === 'json') {
    return scopedResponse(scope, JSON.stringify(encodeChatCompletion({ ...opened.answer, id: chatId(opened.answer.id) })), JSON_HEADERS);
  }

  const includeUsage = request.stream_options?.include_usage === true;
  let body$: SseBytes;
  if (opened.kind === 'relay') {
    const modelId = modelField(model.id);
    body$ = sseBody(
      opened.events,
      (event) => {
        // Relayed as the upstream wrote it (issue 12), the usage as the client asked.
        const json = relayedForClient(relayedChatData(event.data, modelId), includeUsage);
        return json === undefined ? NO_FRAMES : [{ data: json, raw: true }];
      },
      chatStreamTerminals,
    );
  } else {
    const encoder = new ChatChunkEncoder({ includeUsage });
    body$ = sseBody(
      opened.events,
      (event: AnswerEvent) => encoder.push(event.type === 'start' ? { ...event, id: chatId(event.id) } : event).map(chatFrame),
      { ended: () => [...encoder.end().map(chatFrame), DONE_FRAME], failed: chatStreamTerminals.failed },
    );
  }
  return scopedResponse(scope, body$, SSE_HEADERS);
}

const NO_FRAMES: SseFrame[] = [];

function chatId(id: string): string {
  return id.startsWith('chatcmpl-') ? id : `chatcmpl-${id}`;
}

/** What a route cannot take from a Chat request, refused before its call (400, no fallback). */
function refuseOnRoute(request: ChatCompletionRequest, call: AnswerCall, provider: AnswerProvider): void {
  if (call.route.provider === 'anthropic') refuseWhatAnthropicCannotTake(request);
  if ((request.n ?? 1) > 1 && !provider.servesSeveralChoices) throw severalChoices();
}

function severalChoices(): ReturnType<typeof invalidRequest> {
  return invalidRequest(
    "'n' above 1 is served only by routes that speak OpenAI's protocol; this model's route answers one choice per request.",
    'n',
    'unsupported_parameter',
  );
}
