import { Readable } from 'node:stream';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import { sameKeyTerms, type Authenticator, type KeyAhead } from './auth';
import { chatCompletion, type ChatDeps, type RequestScope } from './chat/completions';
import type { ModelEntry } from './catalog';
import { confirmedKey, IGNORED_HEADER, KeyChanged, OUTPUT_LIMIT_HEADER, routeName, SCOPED_HEADERS, type CompletionDeps, type ScopedResponse } from './chat/pipeline';
import { errorResponse, GatewayError, modelNotFound, routeNotFound } from './contract/errors';
import { refuseOtherMethods, toGatewayError, type KnownRoutes } from './contract/http';
import { readJsonBody, type BodyAtHand } from './contract/json-body';
import { randomHex } from './observability/random-hex';
import type { Model } from './contract/openai';
import { anthropicErrorResponse } from './messages/errors';
import {
  anthropicClientHeaders,
  anthropicModel,
  anthropicModelList,
  fromAnthropicClient,
  keyMayUse,
  REQUEST_ID_HEADER,
  speaksAnthropic,
  usableModels,
} from './messages/routes';
import { RequestRecorder, type RequestObservation } from './observability/records';
import type { KeyRecord } from './store/keys';
import type { ResponsesStore } from './store/responses';

export interface AppDeps extends ChatDeps {
  auth: Authenticator;
  /** Called once per request, whatever its status, after its last byte: the access log and request metrics. */
  observeRequest(observation: RequestObservation): void;
  /** Largest request body accepted. @default MAX_BODY_BYTES (4 MiB) */
  maxBodyBytes?: number;
  /** `GET /v1/credits`: the caller's balance, tier and limits. */
  credits?(key: KeyRecord): Promise<unknown>;
  /** Admin routes, mounted under `/admin` (locally behind a token, in AWS behind IAM). */
  admin?: Hono;
  /** The account holder's console under `/console/`, loaded on its first request (it never weighs on `/v1`). */
  console?: () => Promise<WebApp>;
  /** Browser origins allowed to call the API (never with credentials: keys travel in a header). @default none */
  corsOrigins?: string[];
  /** Writes one line for a failure the client saw as a 5xx; never keys, prompts or completions. */
  logError(requestId: string, err: unknown): void;
  /** Stored Responses API responses; without it `/v1/responses` is not served. */
  responses?: Pick<ResponsesStore, 'get' | 'put' | 'delete'>;
}

/*
 * Endpoints the first chat request does not need, loaded on the first request of their routes
 * (docs/BENCHMARKS.md, "Cold start"): in the chat bundle their top-level code (request schemas,
 * wire codecs) runs then, not at init. test/lambda/cold-start.test.ts fails if one is imported eagerly.
 */
const embeddingsEndpoint = () => import('./embeddings/create-embeddings');
const messagesEndpoints = () => import('./messages/create');
const responsesEndpoints = () => import('./responses/endpoints');

type Env = { Variables: { scope: RequestScope; key: KeyRecord; recorder: RequestRecorder } };

/** Anything that answers Web-standard requests, as a Hono app does. */
export interface WebApp {
  fetch(request: Request, env?: unknown): Response | Promise<Response>;
}

/**
 * The largest body the gateway accepts: 4 MiB. Lambda refuses an invocation whose event exceeds
 * 6 MB (6,291,456 bytes), and the event carries the body as a JSON string (each `"` and `\\`
 * escaped) beside the headers, twice over in a REST event: a body near 6 MiB never reached the
 * function, and API Gateway answered its own 413. At 4 MiB the event stays under 6 MB unless about
 * half the body needs escaping, so a body over the limit gets this gateway's own 413.
 */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
const DEFAULT_MAX_BODY_BYTES = MAX_BODY_BYTES;

/** The methods of the API under /v1 (DELETE: `DELETE /v1/responses/{id}`). */
export const CORS_METHODS = ['GET', 'POST', 'DELETE'] as const;

/**
 * Every path the gateway serves and its methods: the one list its 405s come from (a known path
 * asked with another method answers 405 with `Allow`, not 404). The admin API and the console keep
 * lists of their own (`ADMIN_ROUTES`, `CONSOLE_ROUTES`).
 */
export const GATEWAY_ROUTES = {
  '/v1/chat/completions': ['POST'],
  '/v1/embeddings': ['POST'],
  '/v1/messages': ['POST'],
  '/v1/messages/count_tokens': ['POST'],
  '/v1/models': ['GET'],
  '/v1/models/:model{.+}': ['GET'],
  '/v1/credits': ['GET'],
  '/v1/responses': ['POST'],
  '/v1/responses/:id': ['GET', 'DELETE'],
  '/v1/responses/:id/input_items': ['GET'],
} as const satisfies KnownRoutes;

const CORS_EXPOSED_HEADERS = [
  'x-request-id',
  'x-itapi-route',
  'retry-after',
  'retry-after-ms',
  IGNORED_HEADER,
  OUTPUT_LIMIT_HEADER,
  ...['requests', 'tokens'].flatMap((k) => ['limit', 'remaining', 'reset'].map((p) => `x-ratelimit-${p}-${k}`)),
];

/**
 * CORS for the API. A preflight (`OPTIONS`) is Hono's `cors` middleware's, as configured here. On
 * any other request the three headers it would set (the allowed origin echoed, the exposed headers,
 * `Vary: Origin`) are set on the answer after the handler, never before: Hono's middleware sets
 * them on the context's response first, and Hono then wraps the handler's answer in a new
 * `Response` over its body, which builds an SSE answer's Web stream and takes it off the entries'
 * direct write (`takeSseBody`). Error answers get them too (`onError` runs inside `next()`).
 */
export function corsAfterHandler(origins: readonly string[]): MiddlewareHandler {
  const preflight = cors({
    origin: [...origins],
    allowMethods: [...CORS_METHODS],
    // `*` covers the SDKs' own headers (x-stainless-*, openai-*, anthropic-*); `authorization` must be named.
    allowHeaders: ['authorization', 'content-type', '*'],
    exposeHeaders: [...CORS_EXPOSED_HEADERS],
    maxAge: 3600,
  });
  const exposed = CORS_EXPOSED_HEADERS.join(',');
  return async (c, next) => {
    if (c.req.method === 'OPTIONS') return preflight(c, next);
    await next();
    const origin = c.req.header('origin');
    const set = (headers: Headers) => {
      if (origin && origins.includes(origin)) {
        headers.set('Access-Control-Allow-Origin', origin);
        headers.set('Access-Control-Expose-Headers', exposed);
      }
      headers.append('Vary', 'Origin');
    };
    try {
      set(c.res.headers);
    } catch {
      // An answer with immutable headers (none of the API's today): a copy over the same body takes them.
      const copy = new Response(c.res.body, c.res);
      set(copy.headers);
      c.res = undefined;
      c.res = copy;
    }
  };
}

/**
 * Where a request's body may be at hand without its Web stream: the Node request under a
 * local-mode request (Hono's Node adapter's `incoming` binding), or the bytes the Lambda entry
 * hands beside a JSON API request (`body`, lambda/entry/lambda-http.ts); undefined in tests.
 */
function bodyAtHand(c: Context): BodyAtHand | undefined {
  const env = c.env as { incoming?: unknown; body?: unknown } | undefined;
  if (env?.body instanceof Uint8Array) return env.body;
  const incoming = env?.incoming;
  return incoming instanceof Readable && typeof (incoming as { complete?: unknown }).complete === 'boolean' ? (incoming as Readable & { complete: boolean }) : undefined;
}

/** Whether an admission's headers are among these (what the outermost layer checks on the answer). */
function hasLimitHeaders(headers: Record<string, string>): boolean {
  return 'x-ratelimit-limit-requests' in headers || 'x-ratelimit-limit-tokens' in headers;
}

/** The gateway as a Web-standard app: the Lambda entry and the local server each wrap it in a few lines. */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  const maxBodyBytes = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;

  app.use(async function requestScope(c, next) {
    const requestId = `req_${randomHex(12)}`;
    const startedAtMs = Date.now();
    const recorder = new RequestRecorder(requestId, c.req.method, c.req.path, startedAtMs, deps.observeRequest);
    const scope: RequestScope = {
      requestId,
      startedAtMs,
      responseHeaders: {},
      signal: c.req.raw.signal,
      observe: (record) => recorder.chatEnded(record),
    };
    c.set('scope', scope);
    c.set('recorder', recorder);
    await next();
    const key = c.get('key');
    // An endpoint's answer that carries the scope's headers already (chat/pipeline.ts
    // `scopedResponse`), limits included or no key to tell them for: left as built.
    const scoped = (c.res as ScopedResponse)[SCOPED_HEADERS];
    if (scoped !== undefined && scoped === Object.keys(scope.responseHeaders).length && (!key || hasLimitHeaders(scope.responseHeaders))) {
      recorder.answered(c.res.status, key);
      return;
    }
    c.res.headers.set('x-request-id', scope.requestId);
    for (const [name, value] of Object.entries(scope.responseHeaders)) {
      if (!c.res.headers.has(name)) c.res.headers.set(name, value);
    }
    // Answers that ended before admission (a 400, a 403, /v1/models) tell the limits as last seen.
    if (key && !c.res.headers.has('x-ratelimit-limit-requests') && !c.res.headers.has('x-ratelimit-limit-tokens')) {
      const headers = await deps.admission.headersFor?.(key).catch(() => undefined);
      for (const [name, value] of Object.entries(headers ?? {})) c.res.headers.set(name, value);
    }
    // The outermost layer sees every answer, those refused before admission included.
    recorder.answered(c.res.status, key);
  });

  // The one place CORS is configured (the Function URL and the REST API add none): the API's
  // methods, preflights answered here. The console is same-origin and gets no CORS headers.
  if (deps.corsOrigins?.length) app.use('/v1/*', corsAfterHandler(deps.corsOrigins));

  app.onError((err, c) => renderError(deps, c, err));
  app.notFound((c) => renderError(deps, c, routeNotFound(c.req.method, c.req.path)));

  /** The one key check: `Authorization: Bearer`, and on Anthropic's wire `x-api-key` too (it wins), as Anthropic's clients send it. */
  const authenticate = async (c: Context<Env>, next: () => Promise<void>) => {
    if (speaksAnthropic(c)) {
      c.var.scope.responseHeaders[REQUEST_ID_HEADER] = c.var.scope.requestId;
      c.set('key', await deps.auth.authenticateAnthropic(c.req.header('x-api-key'), c.req.header('authorization')));
    } else {
      c.set('key', await deps.auth.authenticate(c.req.header('authorization')));
    }
    await next();
  };

  /** Tells the request's recorder when a completion endpoint has its answer (its record comes through the scope). */
  const observed = <T>(c: Context<Env>, run: (deps: CompletionDeps) => Promise<T>): Promise<T> =>
    run(deps).then((answer) => {
      c.var.recorder.chatAnswered();
      return answer;
    });

  /**
   * The key check of the completion endpoints (chat, Messages, Responses): `authenticateAhead`, so
   * that a key whose cache entry's trust ran out (a client whose requests come more than 5 s apart)
   * starts its request while the key is read again. The endpoint's work up to admission answers
   * nothing and writes nothing; admission awaits the read (`confirmedKey`), and so does every
   * answer given before it (`completion`).
   */
  const authenticateAhead = async (c: Context<Env>, next: () => Promise<void>) => {
    let ahead: KeyAhead;
    if (speaksAnthropic(c)) {
      c.var.scope.responseHeaders[REQUEST_ID_HEADER] = c.var.scope.requestId;
      ahead = await deps.auth.authenticateAnthropicAhead(c.req.header('x-api-key'), c.req.header('authorization'));
    } else {
      ahead = await deps.auth.authenticateAhead(c.req.header('authorization'));
    }
    c.set('key', ahead.key);
    c.var.scope.keyCheck = ahead.confirm;
    await next();
  };

  /**
   * A completion endpoint's work on a parsed body, with the key `authenticateAhead` gave. A failure
   * before admission waits for the key's read under way: its 401 wins; a key now allowing other
   * things (`KeyChanged`, or a refusal made on its older terms) redoes the work once with the key
   * as read, nothing having been answered or written. The recorder is told when the answer is in.
   */
  const completion = async (c: Context<Env>, run: (deps: CompletionDeps, key: KeyRecord, body: unknown) => Promise<Response>): Promise<Response> => {
    const scope = c.var.scope;
    let body: unknown;
    const attempt = async (key: KeyRecord) => {
      body ??= await readJsonBody(c.req.raw, maxBodyBytes, bodyAtHand(c));
      const answer = await run(deps, key, body);
      // An answer that came without admission (none does today) still waits for the key's read.
      if (scope.keyCheck) {
        await confirmedKey(scope, key).catch(async (err: unknown) => {
          await answer.body?.cancel().catch(() => undefined);
          throw err;
        });
      }
      return answer;
    };
    let answer: Response;
    try {
      answer = await attempt(c.var.key);
    } catch (err) {
      const given = c.var.key;
      let confirmed: KeyRecord;
      try {
        if (err instanceof KeyChanged) confirmed = err.key;
        else if (scope.keyCheck) {
          const check = scope.keyCheck;
          scope.keyCheck = undefined;
          confirmed = await check();
          if (sameKeyTerms(confirmed, given)) throw err;
        } else throw err;
      } catch (failure) {
        // The key refused when read again: its 401 carries no account limits and is not the key's request.
        if (failure instanceof GatewayError && failure.status === 401) c.set('key', undefined as unknown as KeyRecord);
        throw failure;
      }
      c.set('key', confirmed);
      answer = await attempt(confirmed);
    }
    c.var.recorder.chatAnswered();
    return answer;
  };

  app.post('/v1/chat/completions', authenticateAhead, (c) => completion(c, (d, key, body) => chatCompletion(d, c.var.scope, key, body)));

  // Embeddings: `POST /v1/embeddings` on `"kind": "embedding"` models.
  app.post('/v1/embeddings', authenticate, async (c) => {
    const body = await readJsonBody(c.req.raw, maxBodyBytes, bodyAtHand(c));
    const { createEmbeddings } = await embeddingsEndpoint();
    return observed(c, (d) => createEmbeddings(d, c.var.scope, c.var.key, body));
  });

  // Anthropic's Messages API (Claude Code, the Anthropic SDKs), in Anthropic's shapes and errors.
  app.post('/v1/messages', authenticateAhead, (c) =>
    completion(c, async (d, key, body) => (await messagesEndpoints()).createMessage(d, c.var.scope, key, body, anthropicClientHeaders(c))),
  );
  app.post('/v1/messages/count_tokens', authenticate, async (c) => {
    const body = await readJsonBody(c.req.raw, maxBodyBytes, bodyAtHand(c));
    const { countMessageTokens } = await messagesEndpoints();
    return c.json(countMessageTokens(deps, c.var.key, body));
  });
  // Claude Code's connection pre-warm: no key, and its answer is ignored.
  app.get('/', function preconnect(c) {
    if (c.req.method !== 'HEAD') throw routeNotFound(c.req.method, c.req.path);
    return c.body(null, 200);
  });

  // Model discovery in the client's own shape: Anthropic's for Anthropic clients, OpenAI's otherwise.
  app.get('/v1/models', authenticate, (c) => {
    if (fromAnthropicClient(c)) return c.json(anthropicModelList(deps, c.var.key, c.req.query()));
    return c.json({ object: 'list', data: usableModels(deps, c.var.key).map(modelObject) });
  });

  app.get('/v1/models/:model{.+}', authenticate, (c) => {
    const id = c.req.param('model') ?? '';
    if (fromAnthropicClient(c)) return c.json(anthropicModel(deps, c.var.key, id));
    const entry = deps.catalog.get(id);
    if (!entry || !keyMayUse(deps, c.var.key, id)) throw modelNotFound(id);
    return c.json(modelDetail(entry));
  });

  if (deps.credits) {
    const credits = deps.credits;
    app.get('/v1/credits', authenticate, async (c) => c.json(await credits(c.var.key)));
  }

  // OpenAI Responses API: POST (JSON or SSE), and the stored responses of the key's account.
  if (deps.responses) {
    const responses = deps.responses;
    const responsesDeps = { ...deps, responses };
    app.post('/v1/responses', authenticateAhead, (c) =>
      completion(c, async (_d, key, body) => (await responsesEndpoints()).createResponse(responsesDeps, c.var.scope, key, body)),
    );
    app.get('/v1/responses/:id/input_items', authenticate, async (c) =>
      (await responsesEndpoints()).listInputItems(responsesDeps, c.var.key, c.req.param('id') ?? '', new URL(c.req.url).searchParams),
    );
    app.get('/v1/responses/:id', authenticate, async (c) =>
      (await responsesEndpoints()).retrieveResponse(responsesDeps, c.var.key, c.req.param('id') ?? '', new URL(c.req.url).searchParams),
    );
    app.delete('/v1/responses/:id', authenticate, async (c) => (await responsesEndpoints()).deleteResponse(responsesDeps, c.var.key, c.req.param('id') ?? ''));
  }

  if (deps.admin) app.route('/admin', deps.admin);

  if (deps.console) {
    const load = deps.console;
    let loaded: Promise<WebApp> | undefined;
    const serveConsole = async (c: Context<Env>) => {
      loaded ??= load().catch((err: unknown) => {
        loaded = undefined;
        throw err;
      });
      return (await loaded).fetch(c.req.raw, c.env);
    };
    app.all('/console', serveConsole);
    app.all('/console/*', serveConsole);
  }

  // Known paths answer a wrong method with 405, not 404; last, so a served method never runs it.
  refuseOtherMethods(app, GATEWAY_ROUTES);

  return app;
}

/** OpenAI's model object; `shutdown_date` is the earliest shutdown among the routes serving today (null when none). */
function modelObject(m: ModelEntry): Model & { shutdown_date: string | null } {
  return { id: m.id, object: 'model', created: m.created, owned_by: m.ownedBy, shutdown_date: m.shutdownDate ?? null };
}

/**
 * One model, as `GET /v1/models/{id}` answers it: the model object, and under `itapi` where it
 * routes today (`provider:model`, as `x-itapi-route` names the route that answered) and which
 * model takes over at `shutdown_date`.
 */
function modelDetail(m: ModelEntry): Model & { shutdown_date: string | null; itapi: { routes: string[]; successor: string | null } } {
  return { ...modelObject(m), itapi: { routes: m.routes.map(routeName), successor: m.successor ?? null } };
}

/**
 * The one place failures become responses, with the request's headers: Anthropic's error body on
 * Anthropic's wire (`/v1/messages…`, model discovery by an Anthropic client), OpenAI's elsewhere.
 */
function renderError(deps: AppDeps, c: Context<Env>, err: unknown): Response {
  const error = toGatewayError(err);
  c.var.recorder?.failed(error);
  const requestId = c.var.scope?.requestId ?? null;
  if (error.status >= 500) deps.logError(requestId ?? 'unknown', err);
  if (!speaksAnthropic(c)) return errorResponse(error);
  if (c.var.scope && requestId) c.var.scope.responseHeaders[REQUEST_ID_HEADER] = requestId;
  return anthropicErrorResponse(error, requestId);
}
