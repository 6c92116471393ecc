import { SSE_HEADERS } from '../chat/completions';
import { admitOverlapped } from '../chat/overlap';
import { JSON_HEADERS, MeteredAnswer, modelFor, noteIgnored, routeName, scopedResponse, type AdmittedRun, type CompletionDeps, type RequestScope } from '../chat/pipeline';
import { sseBody, type SseBytes } from '../chat/sse-body';
import { decodeMessagesRequest, encodeMessagesAnswer, MessagesEventEncoder, messagesFrame, messagesStreamTerminals } from '../codecs/anthropic-messages';
import { jsonSourceOf } from '../contract/json-body';
import { letGo } from '../contract/json-splice';
import { AnswerCollector, ZERO_USAGE, type Answer, type AnswerEvent } from '../core/answer';
import { callFor, heldOutputLimit, type Call, type DecodedRequest } from '../core/call';
import type { SseFrame } from '../core/sse';
import type { KeyRecord } from '../store/keys';
import { UNKNOWN_INPUT_TOKENS } from '../money/billing-ask';
import type { ThinkingBilling } from '../money/thinking';
import type { AnswerCall, AnswerProvider } from '../providers/types';
import { refuseWhatTheFirstRouteCannotTake } from '../providers';
import { boundedServerTools, messagesBillingAsk } from './billing';
import { parseCountTokensRequest, parseMessagesRequest, type MessagesRequest } from './request';
import { estimateMessagesPromptTokens, messagesPromptEstimate } from './tokens';
import { plusTokens } from '../money/tokens';

/** What the client sent besides its body, for an Anthropic route (a same-wire relay). */
export interface MessagesClientHeaders {
  anthropicVersion?: string;
  anthropicBeta?: string;
  betaQuery: boolean;
}

/**
 * One step of an answer as the meter and the SSE body see it: its canonical meaning, and on a
 * same-wire relay the upstream's frame as sent (written to the client untouched).
 */
interface AnswerItem {
  answer: readonly AnswerEvent[];
  frame?: { event?: string; data: string };
}

/** An admitted route's answer, before it is metered. */
type Opened =
  | { kind: 'relay_json'; body: Record<string, unknown>; answer: Answer }
  | { kind: 'json'; answer: Answer }
  | { kind: 'stream'; items: AsyncIterator<AnswerItem>; first: IteratorResult<AnswerItem>; relay: boolean; thinking?: ThinkingBilling };

/** Where `output_config.effort` is dropped (see docs/CLIENTS.md): the catalog does not say which OpenAI models reason. */
const EFFORT_IGNORED = 'output_config.effort';

/**
 * `POST /v1/messages` once the key is known: decoded with the Messages codec, admitted (overlapped
 * with the first route's call when the rule allows, chat/overlap.ts) and settled like every
 * endpoint (lambda/chat/pipeline.ts). On an Anthropic route (the same wire) the
 * client's request goes as sent (the route's model, the output limit the hold paid for, the
 * client's `anthropic-version` / `anthropic-beta`) and the upstream's events are relayed
 * untouched, metered from their canonical meaning; on any other route the provider answers the
 * canonical call and its `AnswerEvent`s are encoded with `MessagesEventEncoder`. Every frame is
 * written by `core/sse.ts`; a failure after the first byte is Anthropic's `error` event.
 */
export async function createMessage(
  deps: CompletionDeps,
  scope: RequestScope,
  key: KeyRecord,
  body: unknown,
  client: MessagesClientHeaders,
): Promise<Response> {
  const request = parseMessagesRequest(body);
  // The client's bytes: on an Anthropic route its long fields (messages, system, tools) go as they came.
  const source = jsonSourceOf(body);
  const model = modelFor(deps, key, request.model);
  const decoded = decodeMessagesRequest(request);
  // What the first route cannot take is refused before any hold; a later route refuses in its turn.
  const first = model.routes[0];
  refuseWhatTheFirstRouteCannotTake(first, callForRoute(callFor(decoded, heldOutputLimit(request.max_tokens)), first.provider));
  // Tools the provider runs (web search, bash, …) reach only Anthropic's own route; another drops them, named.
  const droppedTools = decoded.options.tools.flatMap((tool) => (tool.kind === 'provider' ? [tool.name ?? tool.type] : []));

  const stream = decoded.options.stream;
  const billing = messagesBillingAsk(request, model);
  // A document but plain text (a PDF, or one by URL or file id) counts as UNKNOWN_INPUT_TOKENS in the minute (money holds the context window).
  const prompt = plusTokens(messagesPromptEstimate(request, model.tokenRules, key.accountId), (billing.unknownSizeInputs ?? 0) * UNKNOWN_INPUT_TOKENS);
  const requestFor = (outputTokens: number): Call => callFor(decoded, heldOutputLimit(outputTokens));
  // One upstream call, the same for a speculative first attempt (chat/overlap.ts) and for the route
  // loop: its output limit is the call's own (the one admission fitted, or foresaw).
  const attempt = async (provider: AnswerProvider, providerCall: AnswerCall): Promise<Opened> => {
    if (providerCall.route.provider === 'anthropic' && provider.relayWire === 'anthropic-messages') {
      const sameWire = {
        body: relayBody(body as Record<string, unknown>, request, providerCall.route.model, providerCall.request.settings.maxOutputTokens),
        source,
        version: client.anthropicVersion,
        beta: client.anthropicBeta,
        betaQuery: client.betaQuery,
      };
      return openRelay(provider, { ...providerCall, sameWire }, stream);
    }
    const routeCall = { ...providerCall, request: callForRoute(providerCall.request, providerCall.route.provider) };
    return openCanonical(provider, routeCall, stream);
  };
  const { run, head } = await admitOverlapped(
    deps,
    scope,
    key,
    model,
    { prompt, outputLimit: request.max_tokens, n: 1, stream, billing },
    { requestFor, attempt, release: releaseOpened },
  );
  const call = requestFor(run.admitted.outputTokens);
  const messageId = `msg_${scope.requestId.slice('req_'.length)}`;
  const thinkingShown = decoded.options.reasoning !== undefined && decoded.options.reasoning.mode !== 'disabled';

  let opened: Opened;
  let route: string;
  try {
    const routed = await run.route<Opened, Call>(call, attempt, head);
    // The upstream call is made: the relay (which holds its call) no longer needs the client's bytes.
    if (source) letGo(source);
    opened = routed.value;
    route = routeName(routed.route);
    if (routed.route.provider !== 'anthropic') noteIgnored(scope, [...droppedTools, ...effortIgnored(decoded, routed.route.provider)]);
  } catch (err) {
    throw run.failedWith(err);
  }

  switch (opened.kind) {
    case 'relay_json': {
      const message = { ...opened.body, model: model.id };
      finishJson(run, opened.answer, route);
      return json(message, scope);
    }
    case 'json': {
      const answer = shownAnswer(opened.answer, thinkingShown);
      finishJson(run, opened.answer, route);
      // No usage reported: the prompt estimate stands in for input_tokens, as on a stream's message_start.
      const usage = answer.usage ?? { ...ZERO_USAGE, inputTokens: prompt.tokens() };
      return json(encodeMessagesAnswer({ ...answer, id: messageId, model: model.id, usage }), scope);
    }
    case 'stream': {
      const items = new MeteredAnswer(run, opened.items, opened.first, route, {
        meaning: (item: AnswerItem) => item.answer,
        // A relayed `message_start` carries the gateway's model id.
        relabel: (item: AnswerItem) =>
          item.frame?.event === 'message_start' ? { ...item, frame: { ...item.frame, data: withModel(item.frame.data, model.id) } } : item,
        thinking: opened.thinking,
      });
      if (opened.relay) return sse(sseBody(items, relayedFrames, messagesStreamTerminals), scope);
      const encoder = new MessagesEventEncoder(prompt.tokens());
      const frames = (item: AnswerItem) =>
        item.answer
          .filter((e) => thinkingShown || !isThinking(e))
          .flatMap((e) => encoder.push(e.type === 'start' ? { ...e, id: messageId, model: model.id } : e))
          .map(messagesFrame);
      return sse(
        sseBody(items, frames, { ended: () => [...encoder.end().map(messagesFrame), ...messagesStreamTerminals.ended()], failed: messagesStreamTerminals.failed }),
        scope,
      );
    }
  }
}

/**
 * The call as a route other than Anthropic's takes it. Anthropic's `service_tier` words (`auto`,
 * `standard_only`) and `metadata.user_id` (Claude Code's JSON device id) are not OpenAI's and are
 * left out, as before. An OpenAI-compatible upstream gets no `output_config.effort` as
 * `reasoning_effort`: the catalog does not say which of its models reason, and one that does not
 * refuses the field with a 400 the Messages client cannot fix (Claude Code sends an effort
 * unasked); it is named in `x-itapi-ignored` instead.
 */
export function callForRoute(call: Call, provider: string): Call {
  const { serviceTier: _tier, user: _user, ...settings } = call.settings;
  const r = settings.reasoning;
  if (provider !== 'openai-compatible' || r?.effort === undefined) return { ...call, settings };
  const { effort: _dropped, ...reasoning } = r;
  return { ...call, settings: { ...settings, reasoning } };
}

function effortIgnored(decoded: DecodedRequest, provider: string): string[] {
  return provider === 'openai-compatible' && decoded.options.reasoning?.effort !== undefined ? [EFFORT_IGNORED] : [];
}

async function openRelay(provider: AnswerProvider, call: AnswerCall, stream: boolean): Promise<Opened> {
  if (!stream) {
    if (!provider.relayAnswer) return { kind: 'json', answer: await provider.answer(call) };
    return { kind: 'relay_json', ...(await provider.relayAnswer(call)) };
  }
  const thinking = summarized(provider.thinkingBilling?.(call));
  if (!provider.relayStream) return openCanonical(provider, call, stream);
  const relayed = (await provider.relayStream(call))[Symbol.asyncIterator]();
  const items = mapIterator(relayed, (e): AnswerItem => ({ answer: e.answer, frame: { ...(e.event !== undefined && { event: e.event }), data: e.data } }));
  return { kind: 'stream', items, first: await items.next(), relay: true, ...(thinking && { thinking }) };
}

async function openCanonical(provider: AnswerProvider, call: AnswerCall, stream: boolean): Promise<Opened> {
  if (!stream) return { kind: 'json', answer: await provider.answer(call) };
  const thinking = summarized(provider.thinkingBilling?.(call));
  const events = (await provider.answerStream(call))[Symbol.asyncIterator]();
  const items = mapIterator(events, (e): AnswerItem => ({ answer: [e] }));
  // Read the first event before answering, so a route that fails at once still falls through.
  return { kind: 'stream', items, first: await items.next(), relay: false, ...(thinking && { thinking }) };
}

/** Closes a speculative answer that will not be relayed (its socket is cut by the call's abort too). */
async function releaseOpened(opened: Opened): Promise<void> {
  if (opened.kind === 'stream') await opened.items.return?.();
}

function summarized(billing: ThinkingBilling | undefined): ThinkingBilling | undefined {
  return billing?.summarized ? billing : undefined;
}

function mapIterator<A, B>(source: AsyncIterator<A>, map: (a: A) => B): AsyncIterator<B> {
  return {
    async next() {
      const next = await source.next();
      return next.done ? { done: true, value: undefined } : { done: false, value: map(next.value) };
    },
    async return() {
      await source.return?.();
      return { done: true, value: undefined };
    },
  };
}

/**
 * The client's body for an Anthropic route: as sent, with the route's model id and the output
 * limit admission paid for (a `max_tokens` above the model's maximum is clamped, not refused); a
 * thinking budget the clamped limit no longer leaves room for is lowered with it; a server tool
 * with no `max_uses` gets the one its hold paid for.
 */
function relayBody(body: Record<string, unknown>, request: MessagesRequest, upstreamModel: string, outputTokens: number): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body, model: upstreamModel, max_tokens: outputTokens };
  if (body.tools !== undefined) out.tools = boundedServerTools(body.tools);
  const thinking = request.thinking;
  if (thinking?.type === 'enabled' && thinking.budget_tokens >= outputTokens) {
    out.thinking = { ...thinking, budget_tokens: Math.max(1, outputTokens - 1) };
  }
  return out;
}

function isThinking(event: AnswerEvent): boolean {
  return event.type === 'reasoning' || event.type === 'reasoning_signature' || event.type === 'reasoning_redacted' || event.type === 'reasoning_encrypted';
}

/** Thinking is shown only to a client that enabled it (an OpenAI-compatible upstream may reason unasked). */
function shownAnswer(answer: Answer, thinkingShown: boolean): Answer {
  return thinkingShown ? answer : { ...answer, parts: answer.parts.filter((p) => p.type !== 'reasoning') };
}

function finishJson(run: AdmittedRun, answer: Answer, route: string): void {
  const collector = new AnswerCollector();
  collector.push({ type: 'start', id: answer.id, model: answer.model });
  answer.parts.forEach((part, index) => {
    if (part.type === 'tool_call') collector.push({ type: 'tool_call_start', index, id: part.id, name: part.name });
    if (part.type === 'tool_call') collector.push({ type: 'tool_call_delta', index, arguments: part.arguments });
    else collector.push({ type: part.type, index, text: part.text });
  });
  run.finishJson(answer.usage, () => collector.deliveredText(), route);
}

function withModel(data: string, modelId: string): string {
  const doc = JSON.parse(data) as { message?: { model?: string } };
  if (doc.message) doc.message.model = modelId;
  return JSON.stringify(doc);
}

function relayedFrames(item: AnswerItem): SseFrame[] {
  return item.frame ? [{ ...(item.frame.event !== undefined && { event: item.frame.event }), data: item.frame.data, raw: true }] : [];
}

function json(value: unknown, scope: RequestScope): Response {
  return scopedResponse(scope, JSON.stringify(value), JSON_HEADERS);
}

function sse(body: SseBytes, scope: RequestScope): Response {
  return scopedResponse(scope, body, SSE_HEADERS);
}

/** `POST /v1/messages/count_tokens`: the prompt's tokens by the model's rules; no hold, no upstream call. */
export function countMessageTokens(deps: Pick<CompletionDeps, 'catalog' | 'admission'>, key: KeyRecord, body: unknown): { input_tokens: number } {
  const request = parseCountTokensRequest(body);
  const model = modelFor(deps, key, request.model);
  return { input_tokens: estimateMessagesPromptTokens(request, model.tokenRules) };
}
