import type { Admission, Admitted, Outcome } from '../admission/types';
import type { Catalog, ModelEntry, RouteConfig } from '../catalog';
import { GatewayError, internalError, modelNotAllowed, modelNotFound, upstreamError } from '../contract/errors';
import type { ChatCompletion, ChatCompletionChunk } from '../contract/openai';
import { parseChatCompletionRequest, type ChatCompletionRequest } from '../contract/request';
import { SSE_DONE, sseData, sseError } from '../contract/sse';
import type { ProviderRegistry } from '../providers';
import type { ProviderCall, UpstreamTimeouts } from '../providers/types';
import type { ProviderKeys } from '../secrets/provider-keys';
import type { KeyRecord } from '../store/keys';
import { upstreamAttempt, type UpstreamAttempt } from '../observability/records';
import type { BackgroundTasks } from './background';

/** What the chat route needs; the entry points build it once per process. */
export interface ChatDeps {
  catalog: Catalog;
  providers: ProviderRegistry;
  providerKeys: ProviderKeys;
  admission: Admission;
  background: BackgroundTasks;
  timeouts: UpstreamTimeouts;
  /** Called once per admitted request, after its last byte: the app folds it into the request's one record. */
  observe(record: RequestRecord): void;
  /** Called once per upstream call of the route loop, answered or failed: the per-provider metrics. */
  observeAttempt?(attempt: UpstreamAttempt): void;
}

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
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  // Tells nginx-style proxies not to buffer.
  'x-accel-buffering': 'no',
};

export const ROUTE_HEADER = 'x-itapi-route';

/** `POST /v1/chat/completions` once the key is known: validate, admit, route, relay, settle. */
export async function chatCompletion(deps: ChatDeps, scope: RequestScope, key: KeyRecord, body: unknown): Promise<Response> {
  const request = parseChatCompletionRequest(body);
  const model = deps.catalog.get(request.model);
  if (!model) throw modelNotFound(request.model);
  if (!(deps.admission.allowsModel?.(key, model.id) ?? (!key.models || key.models.includes(model.id)))) {
    throw modelNotAllowed(model.id);
  }

  const admitted = await deps.admission.admit({ requestId: scope.requestId, key, model, request, startedAtMs: scope.startedAtMs });
  Object.assign(scope.responseHeaders, admitted.headers);

  let done = false;
  const finish = (outcome: Omit<Outcome, 'latencyMs' | 'stream'>) => {
    if (done) return;
    done = true;
    const full: Outcome = { ...outcome, latencyMs: Date.now() - scope.startedAtMs, stream: request.stream === true };
    deps.background.run(() => admitted.settle(full));
    deps.observe({ ...full, requestId: scope.requestId, keyId: key.keyId, accountId: key.accountId, model: model.id });
  };

  const upstreamRequest = withOutputLimit(request, admitted);
  const abort = new AbortController();
  try {
    if (request.stream) return await streamCompletion(deps, scope, model, upstreamRequest, abort, finish);
    return await jsonCompletion(deps, scope, model, upstreamRequest, abort, finish);
  } catch (err) {
    const error = err instanceof GatewayError ? err : internalError(err);
    finish({ status: error.status, failed: true, completionText: '', errorCode: error.code });
    throw error;
  }
}

function withOutputLimit(request: ChatCompletionRequest, admitted: Admitted): ChatCompletionRequest {
  if (admitted.maxOutputTokens === undefined) return request;
  const field = request.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  return { ...request, [field]: admitted.maxOutputTokens };
}

type Finish = (outcome: Omit<Outcome, 'latencyMs' | 'stream'>) => void;

async function jsonCompletion(
  deps: ChatDeps,
  scope: RequestScope,
  model: ModelEntry,
  request: ChatCompletionRequest,
  abort: AbortController,
  finish: Finish,
): Promise<Response> {
  const { value: completion, route } = await firstRouteThatAnswers(deps, model, request, abort.signal, scope, (p, call) =>
    p.complete(call),
  );
  completion.model = model.id;
  // The text is only counted when the provider reported no usage.
  const text = completion.usage ? '' : completion.choices.map((c) => (c.message.content ?? '') + (c.message.tool_calls ?? []).map(argumentsOf).join('')).join('');
  const body = JSON.stringify(completion satisfies ChatCompletion);
  finish({ status: 200, failed: false, usage: completion.usage, completionText: text, route: routeName(route) });
  return new Response(body, { status: 200, headers: { 'content-type': 'application/json', ...scope.responseHeaders } });
}

function argumentsOf(call: { type: string; function?: { arguments: string } }): string {
  return call.function?.arguments ?? '';
}

async function streamCompletion(
  deps: ChatDeps,
  scope: RequestScope,
  model: ModelEntry,
  request: ChatCompletionRequest,
  abort: AbortController,
  finish: Finish,
): Promise<Response> {
  const { value: chunks, route, first } = await firstRouteThatAnswers(deps, model, request, abort.signal, scope, async (p, call) => {
    const iterable = await p.stream(call);
    const iterator = iterable[Symbol.asyncIterator]();
    // Read the first chunk before answering, so a route that fails at once still falls through.
    return { iterator, first: await iterator.next() };
  }).then(({ value, route }) => ({ value: value.iterator, first: value.first, route }));

  const includeUsage = request.stream_options?.include_usage === true;
  const pieces: string[] = [];
  let usage: ChatCompletionChunk['usage'];
  let firstTokenMs: number | undefined;
  let pendingFirst: IteratorResult<ChatCompletionChunk> | undefined = first;
  const served = routeName(route);
  /** Settles with what the upstream produced so far; nothing produced means the hold goes back whole. */
  const finishWith = (extra: Partial<Outcome> = {}) => {
    const text = pieces.join('');
    finish({
      status: 200,
      failed: !extra.errorCode && !extra.clientAborted ? false : text.length === 0 && !usage,
      usage: usage ?? undefined,
      completionText: text,
      route: served,
      timeToFirstTokenMs: firstTokenMs,
      ...extra,
    });
  };

  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          const next = pendingFirst ?? (await chunks.next());
          pendingFirst = undefined;
          if (next.done) {
            controller.enqueue(SSE_DONE);
            controller.close();
            finishWith();
            return;
          }
          const chunk = next.value;
          chunk.model = model.id;
          if (chunk.usage) usage = chunk.usage;
          if (chunk.choices.length === 0) {
            if (includeUsage && chunk.usage) {
              controller.enqueue(sseData(chunk));
              return;
            }
            continue;
          }
          if (!includeUsage && chunk.usage !== undefined) delete chunk.usage;
          for (const choice of chunk.choices) {
            const delta = choice.delta;
            if (delta.content) pieces.push(delta.content);
            if (delta.tool_calls) for (const call of delta.tool_calls) if (call.function?.arguments) pieces.push(call.function.arguments);
          }
          if (firstTokenMs === undefined && pieces.length) firstTokenMs = Date.now() - scope.startedAtMs;
          controller.enqueue(sseData(chunk));
          return;
        }
      } catch (err) {
        const error = err instanceof GatewayError ? err : upstreamError('The upstream failed mid-stream.', { cause: err });
        controller.enqueue(sseError(error.toBody()));
        controller.enqueue(SSE_DONE);
        controller.close();
        abort.abort();
        finishWith({ errorCode: error.code });
      }
    },
    async cancel() {
      // The client went away: stop the upstream and bill what it produced.
      abort.abort();
      await chunks.return?.().catch(() => undefined);
      finishWith({ clientAborted: true });
    },
  });

  return new Response(body, { status: 200, headers: { ...SSE_HEADERS, ...scope.responseHeaders } });
}

function routeName(route: RouteConfig): string {
  return `${route.provider}:${route.model}`;
}

/**
 * Tries the model's routes in order. A route that fails before its first byte with a
 * fallback-able error hands over to the next; the last error is what the client sees.
 */
async function firstRouteThatAnswers<T>(
  deps: ChatDeps,
  model: ModelEntry,
  request: ChatCompletionRequest,
  signal: AbortSignal,
  scope: RequestScope,
  attempt: (provider: NonNullable<ProviderRegistry[keyof ProviderRegistry]>, call: ProviderCall) => Promise<T>,
): Promise<{ value: T; route: RouteConfig }> {
  let lastError: GatewayError | undefined;
  for (const route of model.routes) {
    const attemptStartedAtMs = Date.now();
    let failure: unknown;
    try {
      const provider = deps.providers[route.provider];
      if (!provider) throw upstreamError(`No '${route.provider}' provider is available in this build.`, { fallback: true });
      const apiKey = route.secret ? await deps.providerKeys.get(route.secret) : undefined;
      if (route.secret && !apiKey) throw upstreamError(`No upstream key is configured for '${route.secret}'.`, { fallback: true });
      const call: ProviderCall = {
        request,
        route,
        apiKey,
        maxOutputTokens: model.maxOutputTokens,
        signal,
        timeouts: deps.timeouts,
        requestId: scope.requestId,
      };
      const value = await attempt(provider, call);
      scope.responseHeaders[ROUTE_HEADER] = routeName(route);
      return { value, route };
    } catch (err) {
      failure = err;
      if (!(err instanceof GatewayError)) throw err;
      lastError = err;
      if (!err.fallback) break;
    } finally {
      deps.observeAttempt?.(upstreamAttempt(scope.requestId, route, attemptStartedAtMs, failure));
    }
  }
  throw lastError ?? upstreamError('The model has no routes.');
}
