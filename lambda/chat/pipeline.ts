import type { Catalog, ModelEntry, ModelKind, RouteConfig } from '../catalog';
import { GatewayError, internalError, invalidRequest, modelNotAllowed, modelNotFound, upstreamError, upstreamTimeout, wrongModelKind } from '../contract/errors';
import type { ChatCompletion, ChatCompletionChunk, CompletionUsage } from '../contract/openai';
import type { ChatCompletionRequest } from '../contract/request';
import { usageExtras, withUsageExtras } from '../contract/usage';
import { askServerTool, pricesServerTool, pricesTier, unpricedTierError, unpricedToolError, type BillingAsk } from '../money/billing-ask';
import { estimatePromptTokens } from '../money/tokens';
import { THINKING, thinkingOutputFloor, type ThinkingBilling, type ThinkingSignal } from '../money/thinking';
import type { Admission, AdmissionRequest, Admitted, Outcome } from '../money/types';
import type { ProviderRegistry } from '../providers';
import type { Provider, ProviderCall, UpstreamTimeouts } from '../providers/types';
import type { ProviderKeys } from '../secrets/provider-keys';
import type { KeyRecord } from '../store/keys';
import { upstreamAttempt, type UpstreamAttempt } from '../observability/records';
import { checkedEvent, dataMeter, type RelayedData } from './passthrough';
import type { BackgroundTasks } from './background';
import { UpstreamReader } from './upstream-reader';
import { countTokens } from '../money/tokens';
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
}

export const ROUTE_HEADER = 'x-itapi-route';

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

/** An admitted completion whose upstream has answered: a whole answer, or a stream that settles itself. */
export type OpenedCompletion =
  | { kind: 'json'; completion: ChatCompletion; route: string }
  | { kind: 'stream'; chunks: MeteredChunks; route: string }
  /** With `relayData`, on a route whose provider speaks OpenAI's protocol: the events as the upstream sent them. */
  | { kind: 'data'; events: MeteredStream<string, RelayedData>; route: string };

/**
 * The path every completion endpoint shares (chat, responses, messages): admission, the route
 * loop with fallback before the first byte, the request's deadline, metering of what is
 * delivered, and exactly one settlement, however the request ends. Errors before the upstream
 * answered are thrown as GatewayErrors (and the hold is released); the caller renders them.
 */
export async function openCompletion(
  deps: CompletionDeps,
  scope: RequestScope,
  key: KeyRecord,
  model: ModelEntry,
  request: ChatCompletionRequest,
): Promise<Exclude<OpenedCompletion, { kind: 'data' }>>;
export async function openCompletion(
  deps: CompletionDeps,
  scope: RequestScope,
  key: KeyRecord,
  model: ModelEntry,
  request: ChatCompletionRequest,
  options: { relayData: boolean },
): Promise<OpenedCompletion>;
export async function openCompletion(
  deps: CompletionDeps,
  scope: RequestScope,
  key: KeyRecord,
  model: ModelEntry,
  request: ChatCompletionRequest,
  options: { relayData?: boolean } = {},
): Promise<OpenedCompletion> {
  // Before admission: an embedding model has no output to hold for and no chat route.
  checkModelKind(model, 'chat');
  const stream = request.stream === true;
  const billing = chatBillingAsk(request, model);
  // The upstream call, the same for a speculative first attempt (chat/overlap.ts) and for the route loop.
  const attempt = async (p: Provider, call: ProviderCall<ChatCompletionRequest>): Promise<Attempted> => {
    if (!stream) return { kind: 'json', completion: await p.complete(call) };
    // Read the first event before answering, so a route that fails at once still falls through.
    if (options.relayData && p.streamData) {
      const data = (await p.streamData(call))[Symbol.asyncIterator]();
      const first = await data.next();
      try {
        if (!first.done) checkedEvent(first.value);
      } catch (err) {
        await data.return?.().catch(() => undefined);
        throw err;
      }
      return { kind: 'data', data, first };
    }
    const iterator = (await p.stream(call))[Symbol.asyncIterator]();
    return { kind: 'stream', iterator, first: await iterator.next() };
  };
  const { run, head } = await admitOverlapped(
    deps,
    scope,
    key,
    model,
    {
      promptTokens: estimatePromptTokens(request, model.tokenRules),
      outputLimit: request.max_completion_tokens ?? request.max_tokens ?? undefined,
      n: request.n ?? 1,
      stream,
      billing,
    },
    { requestFor: (outputTokens) => withOutputLimit(request, outputTokens), attempt, release: releaseAttempted },
  );
  const upstreamRequest = withOutputLimit(request, run.admitted.outputTokens);
  try {
    const { value, route } = await run.route(upstreamRequest, attempt, head);
    if (value.kind === 'json') {
      const completion = value.completion;
      completion.model = model.id;
      run.finish({
        status: 'completed',
        httpStatus: 200,
        usage: completion.usage,
        // The text is only counted when the provider reported no usage.
        completionText: completion.usage ? '' : completion.choices.map(choiceText).join(''),
        route: routeName(route),
      });
      return { kind: 'json', completion, route: routeName(route) };
    }
    const served = routeName(route);
    if (value.kind === 'data') return { kind: 'data', events: new MeteredStream(run, value.data, value.first, served, dataMeter(model.id)), route: served };
    return { kind: 'stream', chunks: new MeteredChunks(run, value.iterator, value.first, served), route: served };
  } catch (err) {
    const error = err instanceof GatewayError ? err : internalError(err);
    run.failed(error);
    throw error;
  }
}

/** What one upstream call of a completion gave: a whole answer, or a stream with its first event read. */
type Attempted =
  | { kind: 'json'; completion: ChatCompletion }
  | { kind: 'data'; data: AsyncIterator<string>; first: IteratorResult<string> }
  | { kind: 'stream'; iterator: AsyncIterator<ChatCompletionChunk>; first: IteratorResult<ChatCompletionChunk> };

/** Closes a speculative stream that will not be relayed (its socket is cut by the call's abort too). */
async function releaseAttempted(value: Attempted): Promise<void> {
  if (value.kind === 'data') await value.data.return?.();
  else if (value.kind === 'stream') await value.iterator.return?.();
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
  if (request.web_search_options != null) {
    if (!pricesServerTool(model, 'web_search')) throw unpricedToolError(model, "Web search ('web_search_options')", 'web_search_options');
    askServerTool(ask, 'web_search', 1);
    ask.impliedServerToolCalls = { web_search: 1 };
  }
  return ask;
}

/**
 * The output limit the hold pays for always goes upstream (ARCHITECTURE §3), in the field the
 * client used (`max_tokens` when it named none); providers put it in their own words.
 */
function withOutputLimit(request: ChatCompletionRequest, outputTokens: number): ChatCompletionRequest {
  if (request.max_completion_tokens != null) return { ...request, max_completion_tokens: outputTokens, max_tokens: undefined };
  return { ...request, max_tokens: outputTokens };
}

function choiceText(choice: ChatCompletion['choices'][number]): string {
  return (choice.message.content ?? '') + (choice.message.tool_calls ?? []).map((c) => ('function' in c ? c.function.arguments : '')).join('');
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
  input: Pick<AdmissionRequest, 'promptTokens' | 'outputLimit' | 'n' | 'stream' | 'billing'>,
): Promise<AdmittedRun> {
  const admitted = await deps.admission.admit({ requestId: scope.requestId, key, model, startedAtMs: scope.startedAtMs, ...input });
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
  async route<T, R = ChatCompletionRequest>(
    request: R,
    attempt: (provider: Provider, call: ProviderCall<R>) => Promise<T>,
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
  attempt: (provider: Provider, call: ProviderCall<R>) => Promise<T>,
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

/** What a metered stream records of the items that pass: the provider's usage, and the text it delivered. */
export interface StreamMeter<In, Out = In> {
  /** Records what the item carries and returns it as the client is to get it. */
  observe(item: In): Out;
  usage(): CompletionUsage | undefined;
  /** The text and tool arguments delivered, for the tokenizer when the provider's usage did not come. */
  text(): string;
  /** True once an item carried output (for the time to first token). */
  produced(): boolean;
  /** A floor under the output tokens while the provider's count has not come (summarized thinking cut short). */
  outputTokensAtLeast?(): number | undefined;
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

/**
 * A completion's stream as the upstream sends it, metered on the way by a StreamMeter. The
 * upstream is read at its own pace into a bounded buffer (UpstreamReader), whatever the client
 * does, so the meter sees what the provider sent. The request settles when the client has read
 * the end, when the upstream fails (an error, the deadline's included, or a client too far
 * behind), at the deadline by the run's own timer whatever the client's socket does, or when the
 * client goes away (`return`). Once the upstream has answered, every end bills the prompt and the
 * output the upstream sent, as the provider does.
 */
export class MeteredStream<In, Out = In> implements AsyncIterableIterator<Out> {
  private firstTokenMs: number | undefined;
  private readonly reader: UpstreamReader<In, Out>;

  constructor(
    private readonly run: AdmittedRun,
    upstream: AsyncIterator<In>,
    first: IteratorResult<In>,
    readonly route: string,
    private readonly meter: StreamMeter<In, Out>,
  ) {
    const delivered = new DeliveredTokens(meter.text, () => Math.max(meter.usage()?.completion_tokens ?? 0, meter.outputTokensAtLeast?.() ?? 0));
    this.reader = new UpstreamReader(upstream, first, {
      observe: (item) => {
        const out = meter.observe(item);
        if (this.firstTokenMs === undefined && meter.produced()) this.firstTokenMs = Date.now() - run.scope.startedAtMs;
        return out;
      },
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

  async next(): Promise<IteratorResult<Out>> {
    // A failure was settled as it happened (onFailure); the client gets its error now.
    const next = await this.reader.next();
    if (next.done) this.end('completed');
    return next;
  }

  /** The client went away: bill what the upstream sent, and stop it. */
  async return(): Promise<IteratorResult<Out>> {
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

  private end(status: Outcome['status'], errorCode?: string): void {
    const usage = this.meter.usage();
    this.run.finish({
      status,
      httpStatus: 200,
      usage,
      // Counted only where the provider's usage will not settle it.
      completionText: usage && status === 'completed' ? '' : this.meter.text(),
      outputTokensAtLeast: status === 'completed' ? undefined : this.meter.outputTokensAtLeast?.(),
      route: this.route,
      errorCode,
      timeToFirstTokenMs: this.firstTokenMs,
    });
  }
}

/** Chunks parsed into OpenAI's shapes (every provider), with the gateway's model id. */
export class MeteredChunks extends MeteredStream<ChatCompletionChunk> {
  constructor(run: AdmittedRun, upstream: AsyncIterator<ChatCompletionChunk>, first: IteratorResult<ChatCompletionChunk>, route: string) {
    super(run, upstream, first, route, chunkMeter(run.model.id));
  }
}

/** Reasoning text some OpenAI-compatible upstreams stream beside `content`. */
export interface ReasoningDelta {
  reasoning_content?: string | null;
  reasoning?: string | null;
}

function chunkMeter(modelId: string): StreamMeter<ChatCompletionChunk> {
  const pieces: string[] = [];
  /** Output outside thinking (text, tool input), for the thinking floor. */
  const answerPieces: string[] = [];
  let usage: CompletionUsage | undefined;
  let serviceTier: string | undefined;
  let thinking: ThinkingBilling | undefined;
  return {
    observe(chunk) {
      chunk.model = modelId;
      if (chunk.usage) usage = chunk.usage;
      if (typeof chunk.service_tier === 'string') serviceTier = chunk.service_tier;
      // Thinking a provider's mapper passed beside the chunks (Claude on Anthropic and Bedrock): metered like text.
      const signal = (chunk as { [THINKING]?: ThinkingSignal })[THINKING];
      if (signal) {
        if (signal.text) pieces.push(signal.text);
        thinking ??= signal.billing;
      }
      for (const choice of chunk.choices) {
        const delta = choice.delta;
        if (delta.content) {
          pieces.push(delta.content);
          answerPieces.push(delta.content);
        }
        // Reasoning is output, billed like text: DeepSeek's `reasoning_content`, and `reasoning` as some OpenAI-compatible upstreams name it.
        const reasoning = (delta as ReasoningDelta).reasoning_content ?? (delta as ReasoningDelta).reasoning;
        if (typeof reasoning === 'string' && reasoning) pieces.push(reasoning);
        for (const call of delta.tool_calls ?? []) {
          if (!call.function?.arguments) continue;
          pieces.push(call.function.arguments);
          answerPieces.push(call.function.arguments);
        }
      }
      return chunk;
    },
    // The provider's own tier word (Anthropic's `standard`), carried in the usage extras, wins over the chunk's OpenAI word for it.
    usage: () => (usage && serviceTier && usageExtras(usage).serviceTier === undefined ? withUsageExtras(usage, { serviceTier }) : usage),
    text: () => pieces.join(''),
    produced: () => pieces.length > 0,
    // Summarized thinking is billed in full and its count comes only with the usage: until then, the upward rule.
    outputTokensAtLeast: () => (thinking && !usage ? thinkingOutputFloor(thinking, answerPieces.join('')) : undefined),
  };
}
