import type { Catalog, ModelEntry, ModelKind, RouteConfig } from '../catalog';
import { chatUsage } from '../codecs/openai-chat';
import { GatewayError, internalError, invalidRequest, modelNotAllowed, modelNotFound, upstreamError, upstreamTimeout, wrongModelKind } from '../contract/errors';
import type { ChatCompletionRequest } from '../contract/request';
import { AnswerCollector, deliveredTextOf, type Answer, type AnswerEvent, type Usage } from '../core/answer';
import { callFor, heldOutputLimit, type Call, type DecodedRequest } from '../core/call';
import type { WireName } from '../core/prompt';
import { askServerTool, pricesServerTool, pricesTier, unpricedTierError, unpricedToolError, type BillingAsk } from '../money/billing-ask';
import { thinkingOutputFloor, type ThinkingBilling } from '../money/thinking';
import type { Admission, AdmissionRequest, Admitted, Outcome } from '../money/types';
import type { ProviderRegistry } from '../providers';
import type { AnswerCall, AnswerProvider, ProviderCall, RelayedEvent, UpstreamTimeouts } from '../providers/types';
import type { ProviderKeys } from '../secrets/provider-keys';
import type { KeyRecord } from '../store/keys';
import { sameKeyTerms } from '../auth';
import { upstreamAttempt, type UpstreamAttempt } from '../observability/records';
import type { BackgroundTasks } from './background';
import { UpstreamReader } from './upstream-reader';
import { isSseBody, sseResponse, type SseBytes } from './sse-body';
import { countTokens, type PromptEstimate } from '../money/tokens';
import { admitOverlapped, type RouteHead, type SpeculationCancelled } from './overlap';

/** What every completion endpoint needs; the entry points build it once per process. */
export interface CompletionDeps {
  catalog: Catalog;
  providers: ProviderRegistry;
  providerKeys: ProviderKeys;
  admission: Admission;
  background: BackgroundTasks;
  timeouts: UpstreamTimeouts;
  /** Called once per upstream call of the route loop, answered or failed: the per-provider metrics. */
  observeAttempt?(attempt: UpstreamAttempt): void;
  /** Called once per speculative upstream call cancelled (chat/overlap.ts): never charged, always counted. */
  observeSpeculationCancelled?(cancelled: SpeculationCancelled): void;
  /** How often a stream records its delivered output on its hold item. @default 5000 */
  checkpointMs?: number;
  /** Events a stream reads ahead of a client that does not keep up. @default 16384 */
  maxBufferedEvents?: number;
}

/** A streaming request as its run sees it: the output it delivered, and its settlement at the deadline. */
export interface StreamingRun {
  deliveredTokens(): number;
  onDeadline(error: GatewayError): void;
}

/** Delivered output is on the hold item at least this often while a stream runs (issue 17). */
export const DEFAULT_CHECKPOINT_MS = 5_000;

export interface RequestRecord extends Outcome {
  requestId: string;
  keyId: string;
  accountId: string;
  model: string;
}

/** Per-request state shared with the app: headers every answer carries, errors included. */
export interface RequestScope {
  requestId: string;
  startedAtMs: number;
  responseHeaders: Record<string, string>;
  /** Aborted when the client goes away before its answer began (local server; Lambda never aborts it). */
  signal?: AbortSignal;
  /** Called once if the request is admitted, after its last byte: the app folds it into the request's one record. */
  observe?(record: RequestRecord): void;
  /**
   * Reads the request's key again, when its cache entry's trust had run out
   * (`Authenticator.authenticateAhead`'s `confirm`): until then the key the endpoint was given may
   * start work that answers nothing and writes nothing; admission (`confirmedKey`) and any answer
   * await this first.
   */
  keyCheck?: () => Promise<KeyRecord>;
}

/** The error a request gets when its client left before its answer began. */
export const clientClosed = (): GatewayError => new GatewayError(499 as number, 'invalid_request_error', 'client_closed', 'The client closed the request.');

/**
 * The key read for the request allows other things than the one its work started on (a limit, a
 * model list, a tier changed within the last minute): the work is redone with `key`, nothing having
 * been answered or written (the app's completion routes catch it).
 */
export class KeyChanged extends Error {
  constructor(readonly key: KeyRecord) {
    super('The API key changed while it was read again.');
  }
}

/**
 * The key admission may write for: the one given when it was within its trust, else the key read
 * again (`scope.keyCheck`), once: its 401 thrown as it comes, `KeyChanged` when it allows other
 * things than the one the request's work started on.
 */
export async function confirmedKey(scope: RequestScope, key: KeyRecord): Promise<KeyRecord> {
  const check = scope.keyCheck;
  if (!check) return key;
  scope.keyCheck = undefined;
  const confirmed = await check();
  if (!sameKeyTerms(confirmed, key)) throw new KeyChanged(confirmed);
  return confirmed;
}

export const ROUTE_HEADER = 'x-itapi-route';

/** A JSON answer's own header. */
export const JSON_HEADERS: Readonly<Record<string, string>> = { 'content-type': 'application/json' };

/** Marks a Response whose headers already carry every header of its request's scope (`scopedResponse`). */
export const SCOPED_HEADERS = Symbol.for('itapi.scopedHeaders');

/**
 * An endpoint's answer with the scope's headers in it (`x-request-id` and `responseHeaders`, which
 * win over the endpoint's own, as they did when the app's outermost layer added them), marked so
 * that this layer leaves its headers as they are: on the way to a stream's first byte no Web
 * `Headers` is built from them and read back (issue 22), and Hono's Node adapter writes the plain
 * object as given.
 */
export function scopedResponse(scope: RequestScope, body: BodyInit | SseBytes | null, headers: Readonly<Record<string, string>>): Response {
  const init = { status: 200, headers: { ...headers, ...scope.responseHeaders, 'x-request-id': scope.requestId } };
  const response = isSseBody(body) ? sseResponse(body, init) : new Response(body, init);
  // How many scope headers it carries: one added later sends the answer through the app's usual path.
  (response as ScopedResponse)[SCOPED_HEADERS] = Object.keys(scope.responseHeaders).length;
  return response;
}

export type ScopedResponse = Response & { [SCOPED_HEADERS]?: number };

/**
 * The output limit sent upstream, on every answer whose limit differs from the client's or whose
 * client named none (ARCHITECTURE §8): the model's maximum, clamped, lowered to what the balance
 * pays or fitted to what the minute has left.
 */
export const OUTPUT_LIMIT_HEADER = 'x-itapi-output-limit';

/** Names what a request carried that no route runs (hosted tools, server tools, reasoning items); the request itself is answered. */
export const IGNORED_HEADER = 'x-itapi-ignored';

/** A client's word as it may appear in a header: no control characters, no commas, at most 80 characters. */
export function headerWord(text: string): string {
  return text.replace(/[^A-Za-z0-9_.:\-]/g, '_').slice(0, 80);
}

/** Sets `x-itapi-ignored` to what was dropped, each word made safe for a header, whoever named it. */
export function noteIgnored(scope: RequestScope, words: readonly string[]): void {
  if (words.length) scope.responseHeaders[IGNORED_HEADER] = words.map(headerWord).join(', ').slice(0, 1024);
}

/**
 * The catalog entry a key may use, or the 404/403 that says why not, or the 400 when the model is
 * of another kind than the endpoint serves. Chat endpoints (chat, responses, messages) leave
 * `kind` at its default; `POST /v1/embeddings` asks for `'embedding'`.
 */
export function modelFor(deps: Pick<CompletionDeps, 'catalog' | 'admission'>, key: KeyRecord, modelId: string, kind: ModelKind = 'chat'): ModelEntry {
  const model = deps.catalog.get(modelId);
  if (!model) throw modelNotFound(modelId);
  if (!(deps.admission.allowsModel?.(key, model.id) ?? (!key.models || key.models.includes(model.id)))) throw modelNotAllowed(model.id);
  checkModelKind(model, kind);
  return model;
}

/** The 400 for a model of another kind than the endpoint serves (an embedding model on chat, or the reverse). */
export function checkModelKind(model: ModelEntry, kind: ModelKind): void {
  const actual: ModelKind = model.kind === 'embedding' ? 'embedding' : 'chat';
  if (actual !== kind) throw wrongModelKind(model.id, actual);
}

/**
 * The one pipeline every completion endpoint calls (issue 18): `openAnswer(deps, scope, key, model,
 * decoded, options)` takes the request as its wire's codec decoded it (`DecodedRequest`), admits it
 * (overlapped with the first route's call when the rule allows, chat/overlap.ts), builds the
 * `Call` with the output limit the hold paid for (`callFor(decoded, heldOutputLimit(...))`), tries
 * the model's routes (`AnswerProvider`s, fallback before the first byte) and answers:
 * - `{kind: 'json', answer}`: a whole `Answer` (already settled); the endpoint encodes it with its codec;
 * - `{kind: 'stream', events}`: a `MeteredAnswer` of `AnswerEvent`s (the `start` event carries the
 *   gateway's model id), which settles itself exactly once however it ends;
 * - `{kind: 'relay', events}`: with `options.relay` naming the endpoint's wire and a route whose
 *   provider speaks it, a `MeteredAnswer` of `RelayedEvent`s (frames as the upstream sent them).
 * The endpoint writes a stream with `sseBody(events, encode, terminals)` (chat/sse-body.ts): an
 * encoder from items to `SseFrame`s and its wire's `StreamTerminals`; the body's cancel reaches
 * the meter's `return()`. Errors before the upstream answered are thrown as GatewayErrors (the
 * hold released); the endpoint renders them in its wire's error shape.
 */
export type OpenedAnswer =
  | { kind: 'json'; answer: Answer; route: string }
  | { kind: 'stream'; events: MeteredAnswer<AnswerEvent>; route: string }
  | { kind: 'relay'; events: MeteredAnswer<RelayedEvent>; route: string };

/** What an endpoint tells the pipeline besides the decoded request. */
export interface OpenAnswerOptions {
  /** The prompt's estimated tokens, as the endpoint counts its wire's request (admission and TPM): counted when admission needs them. */
  prompt: PromptEstimate;
  /** What the request may be billed beyond its tokens (tier, server tools), or the 400 already thrown. */
  billing: BillingAsk;
  /** Choices the hold pays for (only a provider with `servesSeveralChoices` answers more than one). @default 1 */
  n?: number;
  /** The endpoint's wire: a stream on a route whose provider speaks it is relayed frame by frame. */
  relay?: WireName;
  /** The 400s of what a route cannot take, thrown before its upstream call (not a fallback). */
  check?(call: AnswerCall, provider: AnswerProvider): void;
}

export async function openAnswer(
  deps: CompletionDeps,
  scope: RequestScope,
  key: KeyRecord,
  model: ModelEntry,
  decoded: DecodedRequest,
  options: OpenAnswerOptions,
): Promise<OpenedAnswer> {
  // Before admission: an embedding model has no output to hold for and no chat route.
  checkModelKind(model, 'chat');
  const stream = decoded.options.stream;
  // The upstream call, the same for a speculative first attempt (chat/overlap.ts) and for the route loop.
  const attempt = (p: AnswerProvider, call: AnswerCall): Promise<Attempted> => attemptAnswer(p, call, options);
  const { run, head } = await admitOverlapped(
    deps,
    scope,
    key,
    model,
    { prompt: options.prompt, outputLimit: decoded.options.outputLimit, n: options.n ?? 1, stream, billing: options.billing },
    { requestFor: (outputTokens) => callFor(decoded, heldOutputLimit(outputTokens)), attempt, release: releaseAttempted },
  );
  try {
    const { value, route } = await run.route(callFor(decoded, heldOutputLimit(run.admitted.outputTokens)), attempt, head);
    const served = routeName(route);
    if (value.kind === 'json') {
      const answer = { ...value.answer, model: model.id };
      run.finishJson(answer.usage, () => deliveredTextOf(answer), served);
      return { kind: 'json', answer, route: served };
    }
    return meteredOf(run, value, served);
  } catch (err) {
    throw run.failedWith(err);
  }
}

/** What one upstream call of a completion gave: a whole answer, or a stream with its first event read. */
export type Attempted =
  | { kind: 'json'; answer: Answer }
  | { kind: 'stream'; iterator: AsyncIterator<AnswerEvent>; first: IteratorResult<AnswerEvent>; thinking?: ThinkingBilling }
  | { kind: 'relay'; iterator: AsyncIterator<RelayedEvent>; first: IteratorResult<RelayedEvent>; deliveredText?: () => string; thinking?: ThinkingBilling };

/**
 * One upstream call in the canonical model: a whole answer, a relay (when `relay` names the
 * provider's own wire), or a stream of answer events, read up to its first event so that a route
 * that fails at once still falls through.
 */
export async function attemptAnswer(provider: AnswerProvider, call: AnswerCall, options: Pick<OpenAnswerOptions, 'relay' | 'check'> = {}): Promise<Attempted> {
  options.check?.(call, provider);
  if (!call.request.settings.stream) return { kind: 'json', answer: await provider.answer(call) };
  const billing = provider.thinkingBilling?.(call);
  const thinking = billing?.summarized ? billing : undefined;
  if (options.relay !== undefined && provider.relayWire === options.relay && provider.relayStream) {
    const relay = await provider.relayStream(call);
    const iterator = relay[Symbol.asyncIterator]();
    const first = await firstOf(iterator);
    return { kind: 'relay', iterator, first, ...(relay.deliveredText && { deliveredText: relay.deliveredText.bind(relay) }), thinking };
  }
  const iterator = (await provider.answerStream(call))[Symbol.asyncIterator]();
  return { kind: 'stream', iterator, first: await firstOf(iterator), thinking };
}

async function firstOf<T>(iterator: AsyncIterator<T>): Promise<IteratorResult<T>> {
  try {
    return await iterator.next();
  } catch (err) {
    await iterator.return?.().catch(() => undefined);
    throw err;
  }
}

/** The metered stream of an attempt that answered with a stream (relayed or in answer events). */
export function meteredOf(run: AdmittedRun, value: Exclude<Attempted, { kind: 'json' }>, route: string): Exclude<OpenedAnswer, { kind: 'json' }> {
  if (value.kind === 'relay') {
    const deliveredText = value.deliveredText;
    return {
      kind: 'relay',
      route,
      events: new MeteredAnswer(run, value.iterator, value.first, route, {
        meaning: (item) => item.answer,
        thinking: value.thinking,
        // A relay that decodes lazily (OpenAI chat) gives its text on demand, and output is seen in the frame as sent.
        ...(deliveredText && { deliveredText, produced: (item: RelayedEvent) => PRODUCED.test(item.data) }),
      }),
    };
  }
  const modelId = run.model.id;
  return {
    kind: 'stream',
    route,
    events: new MeteredAnswer(run, value.iterator, value.first, route, {
      meaning: (event) => [event],
      relabel: (event) => (event.type === 'start' ? { ...event, model: modelId } : event),
      thinking: value.thinking,
    }),
  };
}

/** Output in a relayed OpenAI chunk, seen without a parse (the time to first token). */
const PRODUCED = /"(?:content|arguments|reasoning_content|reasoning)"\s*:\s*"[^"]/;

/** Closes a speculative stream that will not be relayed (its socket is cut by the call's abort too). */
async function releaseAttempted(value: Attempted): Promise<void> {
  if (value.kind !== 'json') await value.iterator.return?.();
}

/**
 * What a Chat Completions request may be billed beyond its tokens, or the 400 for what the model
 * does not price: a `service_tier` (but `auto` and `default`), `web_search_options` (OpenAI's
 * search models search once per request, and do not count it in their usage).
 */
export function chatBillingAsk(request: ChatCompletionRequest, model: ModelEntry): BillingAsk {
  const ask: BillingAsk = {};
  const tier = request.service_tier;
  if (tier != null) {
    if (typeof tier !== 'string') throw invalidRequest("Invalid type for 'service_tier': expected a string.", 'service_tier', 'invalid_type');
    if (!pricesTier(model, tier)) throw unpricedTierError(model, tier);
    ask.serviceTier = tier;
  }
  // Audio output is billed at audio-token prices the catalog has no field for (and a Chat answer would carry it unpriced).
  const raw = request as { modalities?: unknown; audio?: unknown };
  if (Array.isArray(raw.modalities) && raw.modalities.includes('audio')) throw unpricedAudioError(model, 'modalities');
  if (raw.audio != null) throw unpricedAudioError(model, 'audio');
  if (request.web_search_options != null) {
    if (!pricesServerTool(model, 'web_search')) throw unpricedToolError(model, "Web search ('web_search_options')", 'web_search_options');
    askServerTool(ask, 'web_search', 1);
    ask.impliedServerToolCalls = { web_search: 1 };
  }
  return ask;
}

function unpricedAudioError(model: ModelEntry, param: string): GatewayError {
  return invalidRequest(
    `Audio output is billed by the provider at audio-token prices, and the model '${model.id}' prices no audio in this gateway's catalog, so it cannot be billed: ask for text only (omit 'audio' and 'modalities').`,
    param,
    'unsupported_parameter',
  );
}

export function routeName(route: RouteConfig): string {
  return `${route.provider}:${route.model}`;
}

/**
 * Admission for any endpoint (chat, responses, messages, embeddings): the hold is taken and the
 * rate-limit headers set on the scope. The run then tries routes and finishes exactly once.
 */
export async function admitRun(
  deps: CompletionDeps,
  scope: RequestScope,
  key: KeyRecord,
  model: ModelEntry,
  input: Pick<AdmissionRequest, 'promptTokens' | 'outputLimit' | 'n' | 'stream' | 'billing' | 'afterUpstreamCall' | 'countPrompt'>,
): Promise<AdmittedRun> {
  // A key given ahead of its read is read again inside admission, once the admission is counted
  // in flight, and the run goes on with the key as read; a client gone meanwhile gets no write.
  const confirmKey = scope.keyCheck
    ? async () => {
        key = await confirmedKey(scope, key);
        if (scope.signal?.aborted) throw clientClosed();
        return key;
      }
    : undefined;
  const admitted = await deps.admission.admit({ requestId: scope.requestId, key, model, startedAtMs: scope.startedAtMs, ...input, ...(confirmKey && { confirmKey }) });
  Object.assign(scope.responseHeaders, admitted.headers);
  if (input.outputLimit === undefined || admitted.outputTokens !== input.outputLimit) scope.responseHeaders[OUTPUT_LIMIT_HEADER] = String(admitted.outputTokens);
  return new AdmittedRun(deps, scope, key, model, admitted, input.stream, input.billing);
}

/**
 * One admitted request between admission and settlement: the route loop, the deadline (its
 * `abort` fires and `deadlineError` is set when ITAPI_MAX_REQUEST_S is reached), and `finish`,
 * which settles (after the last byte) and records the request, once, whatever calls it.
 */
export class AdmittedRun {
  readonly abort = new AbortController();
  /** Set when the request reached its deadline (ITAPI_MAX_REQUEST_S): what the client is told. */
  deadlineError: GatewayError | undefined;
  private readonly deadlineTimer: NodeJS.Timeout;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private streaming: StreamingRun | undefined;
  private done = false;

  constructor(
    private readonly deps: CompletionDeps,
    readonly scope: RequestScope,
    private readonly key: KeyRecord,
    readonly model: ModelEntry,
    readonly admitted: Admitted,
    private readonly stream: boolean,
    private readonly billing?: BillingAsk,
  ) {
    this.deadlineTimer = setTimeout(() => this.reachDeadline(), Math.max(0, admitted.deadlineMs - Date.now()));
    this.deadlineTimer.unref?.();
  }

  /** The request's deadline: the client is told, the upstream aborted, and a stream settled now. */
  private reachDeadline(): void {
    if (this.deadlineError) return;
    const maxMs = this.admitted.deadlineMs - this.scope.startedAtMs;
    this.deadlineError = upstreamTimeout(
      `The request reached the gateway's longest request time of ${Math.round(maxMs / 1000)} s (ITAPI_MAX_REQUEST_S) and was ended.`,
    );
    this.abort.abort(this.deadlineError);
    // Settled now, by this timer, whatever the client's socket does: a client that stopped reading does not hold it open.
    this.streaming?.onDeadline(this.deadlineError);
  }

  /**
   * Whether the deadline has been reached. The upstream call's own timers are armed for the same
   * instant and may fire before ours: a failure that arrives at the deadline is the deadline's.
   */
  pastDeadline(): GatewayError | undefined {
    if (!this.deadlineError && !this.done && Date.now() >= this.admitted.deadlineMs) this.reachDeadline();
    return this.deadlineError;
  }

  /** Items a stream may read ahead of its client before the request is ended. */
  get maxBuffered(): number | undefined {
    return this.deps.maxBufferedEvents;
  }

  /**
   * A stream has begun: at the deadline it is settled by `onDeadline`, and until it ends the output
   * it delivered is checkpointed on the hold item every `checkpointMs` (when it grew), so that a
   * sweep after a crash charges it.
   */
  whileStreaming(streaming: StreamingRun): void {
    this.streaming = streaming;
    const checkpoint = this.admitted.checkpoint;
    if (!checkpoint || this.done) return;
    let recorded = 0;
    this.checkpointTimer = setInterval(() => {
      if (this.done) return;
      const tokens = streaming.deliveredTokens();
      if (tokens <= recorded) return;
      recorded = tokens;
      this.deps.background.run(() => checkpoint(tokens));
    }, this.deps.checkpointMs ?? DEFAULT_CHECKPOINT_MS);
    this.checkpointTimer.unref?.();
  }

  /** The upstream call failed: released whole, unless the deadline cut it while the provider worked (the prompt is then charged). */
  failed(error: GatewayError): void {
    if (this.pastDeadline()) this.finish({ status: 'interrupted', httpStatus: error.status, completionText: '', errorCode: error.code });
    else this.finish({ status: 'failed', httpStatus: error.status, completionText: '', errorCode: error.code });
  }

  /** Settles a failure of anything between admission and the answer; returns the GatewayError the client gets. */
  failedWith(err: unknown): GatewayError {
    const error = err instanceof GatewayError ? err : internalError(err);
    this.failed(error);
    return error;
  }

  /** A whole (JSON) answer was served: usage as reported, else `deliveredText` (the answer's text) is counted. */
  finishJson(usage: Usage | undefined, deliveredText: () => string, route: string): void {
    this.finish({
      status: 'completed',
      httpStatus: 200,
      usage: usage ? chatUsage(usage) : undefined,
      // The text is only counted when the provider reported no usage.
      completionText: usage ? '' : deliveredText(),
      route,
    });
  }

  /** Exactly once: settlement after the last byte (in the background), and the request's record. */
  finish(outcome: Omit<Outcome, 'latencyMs' | 'stream'>): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.deadlineTimer);
    clearInterval(this.checkpointTimer);
    const full: Outcome = {
      ...outcome,
      // What settlement prices when the answer does not say: the tier asked for, the calls the request implied.
      ...(this.billing?.serviceTier !== undefined && { requestedServiceTier: this.billing.serviceTier }),
      // Only an OpenAI-protocol upstream takes `web_search_options` (others never see it, and never search).
      ...(this.billing?.impliedServerToolCalls &&
        outcome.route?.startsWith('openai-compatible:') && { impliedServerToolCalls: this.billing.impliedServerToolCalls as Record<string, number> }),
      latencyMs: Date.now() - this.scope.startedAtMs,
      stream: this.stream,
    };
    this.deps.background.run(() => this.admitted.settle(full));
    this.scope.observe?.({ ...full, requestId: this.scope.requestId, keyId: this.key.keyId, accountId: this.key.accountId, model: this.model.id });
  }

  /**
   * Tries the model's routes in order. A route that fails before its first byte with a
   * fallback-able error hands over to the next; the last error is what the client sees.
   */
  async route<T, R = Call>(
    request: R,
    attempt: (provider: AnswerProvider, call: ProviderCall<R>) => Promise<T>,
    /** The first route's call, already under way (a speculative call made while admission was in flight). */
    head?: RouteHead<T>,
  ): Promise<{ value: T; route: RouteConfig }> {
    let lastError: GatewayError | undefined;
    for (const [index, route] of this.model.routes.entries()) {
      const started = index === 0 ? head : undefined;
      const attemptStartedAtMs = started?.startedAtMs ?? Date.now();
      let failure: unknown;
      try {
        const value = started
          ? await started.value
          : await callRoute(this.deps, this.model, route, request, attempt, this.abort.signal, this.timeouts(), this.scope.requestId);
        this.scope.responseHeaders[ROUTE_HEADER] = routeName(route);
        return { value, route };
      } catch (err) {
        const pastDeadline = this.pastDeadline();
        failure = this.deadlineError ?? err;
        if (pastDeadline) throw this.deadlineError;
        if (!(err instanceof GatewayError)) throw err;
        lastError = err;
        if (!err.fallback) break;
      } finally {
        this.deps.observeAttempt?.(upstreamAttempt(this.scope.requestId, route, attemptStartedAtMs, failure));
      }
    }
    throw lastError ?? upstreamError('The model has no routes.');
  }

  /** Ties a call started before admission (speculative) to the run: the run's abort (deadline, client, failure) aborts it. */
  adopt(controller: AbortController): void {
    if (this.abort.signal.aborted) controller.abort(this.abort.signal.reason);
    else this.abort.signal.addEventListener('abort', () => controller.abort(this.abort.signal.reason), { once: true });
  }

  /** The upstream timeouts, none past the request's deadline. */
  private timeouts(): UpstreamTimeouts {
    const leftMs = Math.max(1, this.admitted.deadlineMs - Date.now());
    const t = this.deps.timeouts;
    return { firstByteMs: Math.min(t.firstByteMs, leftMs), idleMs: t.idleMs, totalMs: Math.min(t.totalMs, leftMs) };
  }
}

/** One upstream call on one route: the provider and its key looked up (a missing one falls through), then `attempt`. */
export async function callRoute<T, R>(
  deps: Pick<CompletionDeps, 'providers' | 'providerKeys'>,
  model: ModelEntry,
  route: RouteConfig,
  request: R,
  attempt: (provider: AnswerProvider, call: ProviderCall<R>) => Promise<T>,
  signal: AbortSignal,
  timeouts: UpstreamTimeouts,
  requestId: string,
): Promise<T> {
  const provider = deps.providers[route.provider];
  if (!provider) throw upstreamError(`No '${route.provider}' provider is available in this build.`, { fallback: true });
  const apiKey = route.secret ? await deps.providerKeys.get(route.secret) : undefined;
  if (route.secret && !apiKey) throw upstreamError(`No upstream key is configured for '${route.secret}'.`, { fallback: true });
  return attempt(provider, { request, route, apiKey, maxOutputTokens: model.maxOutputTokens, signal, timeouts, requestId });
}

/**
 * Tokens of the output an upstream delivered so far, counted as it grows (the new text only), for
 * the checkpoints on the hold item: the provider's own count when it reported a larger one.
 */
export class DeliveredTokens {
  private chars = 0;
  private tokens = 0;

  constructor(
    private readonly text: () => string,
    private readonly reported: () => number | undefined = () => undefined,
  ) {}

  count(): number {
    const text = this.text();
    if (text.length > this.chars) {
      this.tokens += countTokens(text.slice(this.chars));
      this.chars = text.length;
    }
    return Math.max(this.tokens, this.reported() ?? 0);
  }
}

/** How a metered stream reads its items: what each means in the canonical model, and what the client gets. */
export interface AnswerMeterSource<T> {
  /** The item's canonical meaning (a relayed frame's `.answer`, an answer event itself). */
  meaning(item: T): ReadonlyArray<AnswerEvent>;
  /** The item as the client is to get it (the gateway's model id on `start`). */
  relabel?(item: T): T;
  /** A relay that decodes lazily: the text it delivered, read back only when the tokenizer must count it. */
  deliveredText?(): string;
  /** With `deliveredText`: whether the item carried output (the time to first token). */
  produced?(item: T): boolean;
  /** Summarized thinking billed in full (`AnswerProvider.thinkingBilling`): the upward rule while its count has not come. */
  thinking?: ThinkingBilling;
}

/**
 * The one metered stream (issue 18): a completion's answer as the upstream sends it, answer
 * events or relayed frames, metered on the way by their canonical meaning (usage events for
 * settlement, an `AnswerCollector` for the text delivered, the thinking floor). The upstream is
 * read at its own pace into a bounded buffer (UpstreamReader), whatever the client does, so the
 * meter sees what the provider sent. The request settles exactly once: when the client has read
 * the end, when the upstream fails (an error, the deadline's included, or a client too far
 * behind), at the deadline by the run's own timer whatever the client's socket does, when the
 * client goes away (`return`), or when the endpoint cannot go on (`fail`). Once the upstream has
 * answered, every end bills the prompt and the output the upstream sent, as the provider does.
 */
export class MeteredAnswer<T = AnswerEvent> implements AsyncIterableIterator<T> {
  private firstTokenMs: number | undefined;
  private readonly reader: UpstreamReader<T, T>;
  private readonly collector = new AnswerCollector();
  private usage: Usage | undefined;
  /** A usage event after the finish: the provider's final count. */
  private finalUsage = false;
  private finished = false;
  private thinkingStarted = false;
  private produced = false;

  constructor(
    private readonly run: AdmittedRun,
    upstream: AsyncIterator<T>,
    first: IteratorResult<T>,
    readonly route: string,
    private readonly source: AnswerMeterSource<T>,
  ) {
    const delivered = new DeliveredTokens(
      () => this.text(),
      () => Math.max(this.usage?.outputTokens ?? 0, this.thinkingFloor() ?? 0),
    );
    this.reader = new UpstreamReader<T, T>(upstream, first, {
      observe: (item) => this.observe(item),
      onFailure: (err) => {
        const error = run.pastDeadline() ?? (err instanceof GatewayError ? err : upstreamError('The upstream failed mid-stream.', { cause: err }));
        run.abort.abort();
        this.end('interrupted', error.code);
        return error;
      },
      maxBuffered: run.maxBuffered,
    });
    run.whileStreaming({ deliveredTokens: () => delivered.count(), onDeadline: (error) => this.end('interrupted', error.code) });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<T>> {
    // A failure was settled as it happened (onFailure); the client gets its error now.
    const next = await this.reader.next();
    if (next.done) this.end('completed');
    return next;
  }

  /** The client went away: bill what the upstream sent, and stop it. */
  async return(): Promise<IteratorResult<T>> {
    // Settled first: a read still pending fails once the upstream is cut, and must not count as an upstream failure.
    this.end('aborted', 'client_closed');
    this.run.abort.abort();
    await this.reader.stop();
    return { done: true, value: undefined };
  }

  /** The caller cannot go on with the items (its translation of them failed): stop the upstream and bill what it delivered. */
  async fail(error: GatewayError): Promise<void> {
    this.run.abort.abort();
    await this.reader.stop();
    this.end('interrupted', error.code);
  }

  /** The provider's usage so far (the last usage event), if any came. */
  reportedUsage(): Usage | undefined {
    return this.usage;
  }

  /** The answer the events added up to so far (a lazily decoded relay has only its usage in it). */
  answer(): Answer {
    return this.collector.answer();
  }

  private observe(item: T): T {
    for (const event of this.source.meaning(item)) {
      switch (event.type) {
        case 'usage':
          this.usage = event.usage;
          if (this.finished) this.finalUsage = true;
          break;
        case 'finish':
          this.finished = true;
          break;
        case 'reasoning':
        case 'reasoning_redacted':
          this.thinkingStarted = true;
          if (event.type === 'reasoning' && event.text) this.produced = true;
          break;
        case 'text':
        case 'refusal':
          if (event.text) this.produced = true;
          break;
        case 'tool_call_delta':
          if (event.arguments) this.produced = true;
          break;
      }
      this.collector.push(event);
    }
    if (!this.produced && this.source.produced?.(item)) this.produced = true;
    if (this.firstTokenMs === undefined && this.produced) this.firstTokenMs = Date.now() - this.run.scope.startedAtMs;
    return this.source.relabel ? this.source.relabel(item) : item;
  }

  /** The text, thinking and tool arguments delivered, for the tokenizer when the provider's usage did not come. */
  private text(): string {
    return this.source.deliveredText ? this.source.deliveredText() : this.collector.deliveredText();
  }

  /** Summarized thinking is billed in full and its count comes only with the final usage: until then, the upward rule. */
  private thinkingFloor(): number | undefined {
    const thinking = this.source.thinking;
    if (!thinking || !this.thinkingStarted || this.finalUsage) return undefined;
    const answerText = this.collector
      .answer()
      .parts.map((p) => (p.type === 'tool_call' ? p.arguments : p.type === 'reasoning' ? '' : p.text))
      .join('');
    return thinkingOutputFloor(thinking, answerText);
  }

  private end(status: Outcome['status'], errorCode?: string): void {
    const usage = this.usage;
    this.run.finish({
      status,
      httpStatus: 200,
      usage: usage ? chatUsage(usage) : undefined,
      // Counted only where the provider's usage will not settle it.
      completionText: usage && status === 'completed' ? '' : this.text(),
      outputTokensAtLeast: status === 'completed' ? undefined : this.thinkingFloor(),
      route: this.route,
      errorCode,
      timeToFirstTokenMs: this.firstTokenMs,
    });
  }
}
