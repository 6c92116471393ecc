import { SSE_HEADERS } from '../chat/completions';
import { admitRun, attemptAnswer, meteredOf, modelFor, noteIgnored, routeName, type Attempted, type CompletionDeps, type RequestScope } from '../chat/pipeline';
import { ChatChunks, chatCompletionOf } from '../chat/chat-hub';
import { decodeChatRequest } from '../codecs/openai-chat';
import { callFor, heldOutputLimit } from '../core/call';
import { GatewayError, internalError, upstreamError } from '../contract/errors';
import type { ChatCompletion, ChatCompletionChunk } from '../contract/openai';
import type { KeyRecord } from '../store/keys';
import { UNKNOWN_INPUT_TOKENS } from '../money/billing-ask';
import { boundedServerTools, messagesBillingAsk } from './billing';
import { anthropicErrorBody } from './errors';
import { ChatChunksToMessageEvents, completionToMessage } from './from-chat';
import { messageUsage, MeteredMessageEvents, openNativeMessage, summarizesThinking, type NativeAnswer, type ThinkingBilling } from './native';
import { parseCountTokensRequest, parseMessagesRequest } from './request';
import { messagesToChat } from './to-chat';
import { estimateMessagesPromptTokens } from './tokens';
import type { MessagesRequest, MessageStreamEvent } from './wire';

/** What the client sent besides its body, for the Anthropic passthrough. */
export interface MessagesClientHeaders {
  anthropicVersion?: string;
  anthropicBeta?: string;
  betaQuery: boolean;
}


const encoder = new TextEncoder();

/** One event as Anthropic frames it: `event: <type>` and `data: <json>`; its SDKs skip frames without the `event:` line. */
function sseEvent(type: string, data: string): Uint8Array {
  return encoder.encode(`event: ${type}\ndata: ${data}\n\n`);
}

/** An Anthropic route's native answer, or another route's answer in the canonical model (read back in Chat's shapes until issue-18g). */
type RouteAnswer = NativeAnswer | { kind: 'answer'; value: Attempted };

/**
 * `POST /v1/messages` once the key is known. Same admission, limits, deadline, billing and
 * settlement as chat (lambda/chat/pipeline.ts): an `anthropic` route gets the client's request as
 * sent (model and `max_tokens` set by the gateway, `anthropic-version`/`anthropic-beta`
 * forwarded) and its stream is relayed event by event; any other route gets the request
 * translated to Chat Completions, and its answer translated back into Anthropic's shapes.
 */
export async function createMessage(
  deps: CompletionDeps,
  scope: RequestScope,
  key: KeyRecord,
  body: unknown,
  client: MessagesClientHeaders,
): Promise<Response> {
  const request = parseMessagesRequest(body);
  const model = modelFor(deps, key, request.model);
  const translation = messagesToChat(request, model.id);
  // A request no route of the model can take is refused before any hold is taken.
  if (translation.unsupported && !model.routes.some((r) => r.provider === 'anthropic')) throw translation.unsupported;

  const stream = request.stream === true;
  const billing = messagesBillingAsk(request, model);
  // A document by URL or file id counts as UNKNOWN_INPUT_TOKENS in the minute (money holds the context window).
  const promptTokens = estimateMessagesPromptTokens(request, model.tokenRules) + (billing.unknownSizeInputs ?? 0) * UNKNOWN_INPUT_TOKENS;
  const run = await admitRun(deps, scope, key, model, { promptTokens, outputLimit: request.max_tokens, n: 1, stream, billing });
  const outputTokens = run.admitted.outputTokens;
  const upstreamCall = callFor(decodeChatRequest(translation.request), heldOutputLimit(outputTokens));
  const messageId = `msg_${scope.requestId.slice('req_'.length)}`;

  let answer: RouteAnswer;
  let route: string;
  try {
    const routed = await run.route<RouteAnswer>(upstreamCall, async (provider, call) => {
      if (call.route.provider === 'anthropic') {
        return openNativeMessage(call, {
          body: nativeBody(body as Record<string, unknown>, request, call.route.model, outputTokens),
          version: client.anthropicVersion,
          beta: client.anthropicBeta,
          betaQuery: client.betaQuery,
        });
      }
      if (translation.unsupported) throw translation.unsupported;
      // A stream is read up to its first event, so a route that fails at once still falls through.
      return { kind: 'answer', value: await attemptAnswer(provider, call) };
    });
    answer = routed.value;
    route = routeName(routed.route);
    if (answer.kind === 'answer') {
      noteIgnored(scope, translation.droppedTools);
    }
  } catch (err) {
    const error = err instanceof GatewayError ? err : internalError(err);
    run.failed(error);
    throw error;
  }

  if (answer.kind === 'answer') {
    const value = answer.value;
    if (value.kind === 'json') {
      const completion = chatCompletionOf({ ...value.answer, model: model.id });
      run.finish({
        status: 'completed',
        httpStatus: 200,
        usage: completion.usage,
        // The text is only counted when the provider reported no usage.
        completionText: completion.usage ? '' : completionText(completion),
        route,
      });
      return json(completionToMessage(completion, messageId, model.id, promptTokens), scope);
    }
    const metered = meteredOf(run, value, route);
    if (metered.kind !== 'stream') throw internalError(new Error('A translated route relayed.'));
    return sse(translatedStream(new ChatChunks(metered.events), new ChatChunksToMessageEvents(messageId, model.id, promptTokens), scope), scope);
  }
  switch (answer.kind) {
    case 'json': {
      const message = answer.message;
      message.model = model.id;
      const usage = messageUsage(message.usage as unknown as Record<string, unknown> | undefined);
      run.finish({ status: 'completed', httpStatus: 200, usage, completionText: usage ? '' : deliveredText(message.content), route });
      return json(message, scope);
    }
    case 'stream':
      return sse(nativeStream(new MeteredMessageEvents(run, answer, route, thinkingBilling(request, route, outputTokens)), scope), scope);
  }
}

/** How thinking is billed if the stream is cut short: the budget as sent upstream (see nativeBody). */
function thinkingBilling(request: MessagesRequest, route: string, outputTokens: number): ThinkingBilling | undefined {
  if (!request.thinking || request.thinking.type === 'disabled') return undefined;
  const budget = request.thinking.budget_tokens;
  return {
    budgetTokens: budget === undefined ? undefined : Math.min(budget, Math.max(1, outputTokens - 1)),
    outputLimit: outputTokens,
    summarized: summarizesThinking(route),
  };
}

/**
 * The client's body for an Anthropic route: as sent, with the route's model id and the output
 * limit admission paid for (a `max_tokens` above the model's maximum is clamped, not refused); a
 * thinking budget the clamped limit no longer leaves room for is lowered with it; a server tool
 * with no `max_uses` gets the one its hold paid for.
 */
function nativeBody(body: Record<string, unknown>, request: MessagesRequest, upstreamModel: string, outputTokens: number): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body, model: upstreamModel, max_tokens: outputTokens };
  if (body.tools !== undefined) out.tools = boundedServerTools(body.tools);
  const budget = request.thinking?.budget_tokens;
  if (request.thinking?.type === 'enabled' && budget !== undefined && budget >= outputTokens) {
    out.thinking = { ...request.thinking, budget_tokens: Math.max(1, outputTokens - 1) };
  }
  return out;
}

function completionText(completion: ChatCompletion): string {
  return completion.choices
    .map((c) => (c.message.content ?? '') + (c.message.tool_calls ?? []).map((t) => (t.type === 'function' ? t.function.arguments : '')).join(''))
    .join('');
}

/** A native message's text, thinking and tool input, for the tokenizer when Anthropic reported no usage. */
function deliveredText(content: unknown): string {
  if (!Array.isArray(content)) return '';
  return content
    .map((b: Record<string, unknown>) => (typeof b.text === 'string' ? b.text : typeof b.thinking === 'string' ? b.thinking : b.input !== undefined ? JSON.stringify(b.input) : ''))
    .join('');
}

function json(value: unknown, scope: RequestScope): Response {
  return new Response(JSON.stringify(value), { status: 200, headers: { 'content-type': 'application/json', ...scope.responseHeaders } });
}

function sse(body: ReadableStream<Uint8Array>, scope: RequestScope): Response {
  return new Response(body, { status: 200, headers: { ...SSE_HEADERS, ...scope.responseHeaders } });
}

/** A failure after the stream began: Anthropic's `error` event, then the end of the body. */
function errorEvent(err: unknown, scope: RequestScope): Uint8Array {
  const error = err instanceof GatewayError ? err : upstreamError('The upstream failed mid-stream.', { cause: err });
  return sseEvent('error', JSON.stringify(anthropicErrorBody(error, scope.requestId)));
}

function nativeStream(events: MeteredMessageEvents, scope: RequestScope): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await events.next();
        if (next.done) controller.close();
        else controller.enqueue(sseEvent(next.value.type, next.value.data));
      } catch (err) {
        controller.enqueue(errorEvent(err, scope));
        controller.close();
      }
    },
    async cancel() {
      await events.return();
    },
  });
}

function translatedStream(chunks: ChatChunks, events: ChatChunksToMessageEvents, scope: RequestScope): ReadableStream<Uint8Array> {
  const send = (controller: ReadableStreamDefaultController<Uint8Array>, list: MessageStreamEvent[]) => {
    for (const event of list) controller.enqueue(sseEvent(event.type, JSON.stringify(event)));
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      send(controller, events.start());
    },
    async pull(controller) {
      for (;;) {
        let next: IteratorResult<ChatCompletionChunk>;
        try {
          next = await chunks.next();
        } catch (err) {
          // The metered stream has ended and settled itself.
          controller.enqueue(errorEvent(err, scope));
          controller.close();
          return;
        }
        let out: MessageStreamEvent[];
        try {
          out = next.done ? events.finish() : events.push(next.value);
        } catch (err) {
          const error = err instanceof GatewayError ? err : internalError(err);
          await chunks.fail(error);
          controller.enqueue(errorEvent(error, scope));
          controller.close();
          return;
        }
        send(controller, out);
        if (next.done) {
          controller.close();
          return;
        }
        if (out.length) return;
      }
    },
    async cancel() {
      await chunks.return();
    },
  });
}

/** `POST /v1/messages/count_tokens`: the prompt's tokens by the model's rules; no hold, no upstream call. */
export function countMessageTokens(deps: Pick<CompletionDeps, 'catalog' | 'admission'>, key: KeyRecord, body: unknown): { input_tokens: number } {
  const request = parseCountTokensRequest(body);
  const model = modelFor(deps, key, request.model);
  return { input_tokens: estimateMessagesPromptTokens(request, model.tokenRules) };
}
