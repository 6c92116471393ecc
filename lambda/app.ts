import { Hono, type Context } from 'hono';
import { cors } from 'hono/cors';
import { randomBytes } from 'node:crypto';
import type { Authenticator } from './auth';
import { chatCompletion, type ChatDeps, type RequestScope } from './chat/completions';
import type { ModelEntry } from './catalog';
import { IGNORED_HEADER, OUTPUT_LIMIT_HEADER, routeName, type CompletionDeps } from './chat/pipeline';
import {
  GatewayError,
  internalError,
  methodNotAllowed,
  modelNotFound,
  routeNotFound,
  serverOverloaded,
} from './contract/errors';
import { readJsonBody } from './contract/json-body';
import type { Model } from './contract/openai';
import { createEmbeddings } from './embeddings/create-embeddings';
import { messagesApp } from './messages/routes';
import { RequestRecorder, type RequestObservation } from './observability/records';
import { createResponse, deleteResponse, listInputItems, retrieveResponse } from './responses/endpoints';
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

const CORS_EXPOSED_HEADERS = [
  'x-request-id',
  'x-itapi-route',
  'retry-after',
  'retry-after-ms',
  IGNORED_HEADER,
  OUTPUT_LIMIT_HEADER,
  ...['requests', 'tokens'].flatMap((k) => ['limit', 'remaining', 'reset'].map((p) => `x-ratelimit-${p}-${k}`)),
];

/** The gateway as a Web-standard app: the Lambda entry and the local server each wrap it in a few lines. */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  const maxBodyBytes = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;

  app.use(async function requestScope(c, next) {
    const requestId = `req_${randomBytes(12).toString('hex')}`;
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
    c.res.headers.set('x-request-id', scope.requestId);
    for (const [name, value] of Object.entries(scope.responseHeaders)) {
      if (!c.res.headers.has(name)) c.res.headers.set(name, value);
    }
    // Answers that ended before admission (a 400, a 403, /v1/models) tell the limits as last seen.
    const key = c.get('key');
    if (key && !c.res.headers.has('x-ratelimit-limit-requests') && !c.res.headers.has('x-ratelimit-limit-tokens')) {
      const headers = await deps.admission.headersFor?.(key).catch(() => undefined);
      for (const [name, value] of Object.entries(headers ?? {})) c.res.headers.set(name, value);
    }
    // The outermost layer sees every answer, those refused before admission included.
    recorder.answered(c.res.status, key);
  });

  // The one place CORS is configured (the Function URL and the REST API add none): the API's
  // methods, preflights answered here. The console is same-origin and gets no CORS headers.
  if (deps.corsOrigins?.length) {
    app.use(
      '/v1/*',
      cors({
        origin: deps.corsOrigins,
        allowMethods: [...CORS_METHODS],
        // `*` covers the SDKs' own headers (x-stainless-*, openai-*, anthropic-*); `authorization` must be named.
        allowHeaders: ['authorization', 'content-type', '*'],
        exposeHeaders: [...CORS_EXPOSED_HEADERS],
        maxAge: 3600,
      }),
    );
  }

  app.onError((err, c) => renderError(deps, c, err));
  app.notFound((c) => renderError(deps, c, routeNotFound(c.req.method, c.req.path)));

  const authenticate = async (c: Context<Env>, next: () => Promise<void>) => {
    const key = await deps.auth.authenticate(c.req.header('authorization'));
    c.set('key', key);
    await next();
  };

  /** Tells the request's recorder when a completion endpoint has its answer (its record comes through the scope). */
  const observed = <T>(c: Context<Env>, run: (deps: CompletionDeps) => Promise<T>): Promise<T> =>
    run(deps).then((answer) => {
      c.var.recorder.chatAnswered();
      return answer;
    });

  app.post('/v1/chat/completions', authenticate, async (c) => {
    const body = await readJsonBody(c.req.raw, maxBodyBytes);
    return observed(c, (d) => chatCompletion(d, c.var.scope, c.var.key, body));
  });

  // Embeddings: `POST /v1/embeddings` on `"kind": "embedding"` models.
  app.post('/v1/embeddings', authenticate, async (c) => {
    const body = await readJsonBody(c.req.raw, maxBodyBytes);
    return observed(c, (d) => createEmbeddings(d, c.var.scope, c.var.key, body));
  });
  app.all('/v1/embeddings', (c) => renderError(deps, c, methodNotAllowed(c.req.method, c.req.path)));
  // Anthropic's Messages API (Claude Code, the Anthropic SDKs), in Anthropic's shapes and errors;
  // ahead of /v1/models, whose Anthropic shape it serves to Anthropic clients.
  app.route(
    '/',
    messagesApp({
      ...deps,
      readJsonBody: (c) => readJsonBody(c.req.raw, maxBodyBytes),
      toGatewayError,
      observed: (c, run) => observed(c as Context<Env>, run),
      failed: (c, error) => (c as Context<Env>).var.recorder?.failed(error),
    }),
  );

  app.get('/v1/models', authenticate, (c) => {
    const data = deps.catalog
      .list()
      .filter((m) => allows(deps, c.var.key, m.id))
      .map((m) => modelObject(m));
    return c.json({ object: 'list', data });
  });

  app.get('/v1/models/:model{.+}', authenticate, (c) => {
    const id = c.req.param('model') ?? '';
    const entry = deps.catalog.get(id);
    if (!entry || !allows(deps, c.var.key, id)) throw modelNotFound(id);
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
    app.post('/v1/responses', authenticate, async (c) => {
      const body = await readJsonBody(c.req.raw, maxBodyBytes);
      return observed(c, () => createResponse(responsesDeps, c.var.scope, c.var.key, body));
    });
    app.get('/v1/responses/:id/input_items', authenticate, (c) =>
      listInputItems(responsesDeps, c.var.key, c.req.param('id') ?? '', new URL(c.req.url).searchParams),
    );
    app.get('/v1/responses/:id', authenticate, (c) => retrieveResponse(responsesDeps, c.var.key, c.req.param('id') ?? '', new URL(c.req.url).searchParams));
    app.delete('/v1/responses/:id', authenticate, (c) => deleteResponse(responsesDeps, c.var.key, c.req.param('id') ?? ''));
    for (const path of ['/v1/responses', '/v1/responses/:id', '/v1/responses/:id/input_items']) {
      app.all(path, (c) => renderError(deps, c, methodNotAllowed(c.req.method, c.req.path)));
    }
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

  // Known paths answer a wrong method with 405, not 404.
  for (const path of ['/v1/chat/completions', '/v1/models', '/v1/models/:model{.+}', '/v1/credits']) {
    app.all(path, (c) => renderError(deps, c, methodNotAllowed(c.req.method, c.req.path)));
  }

  return app;
}

function allows(deps: AppDeps, key: KeyRecord, modelId: string): boolean {
  return deps.admission.allowsModel?.(key, modelId) ?? (!key.models || key.models.includes(modelId));
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

/** The one place failures become responses: OpenAI's error body, with the request's headers. */
function renderError(deps: AppDeps, c: Context<Env>, err: unknown): Response {
  const error = toGatewayError(err);
  c.var.recorder?.failed(error);
  if (error.status >= 500) deps.logError(c.var.scope?.requestId ?? 'unknown', err);
  const headers: Record<string, string> = { 'content-type': 'application/json', ...error.headers };
  return new Response(JSON.stringify(error.toBody()), { status: error.status, headers });
}

function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  // A store or other AWS dependency that failed or throttled: fail closed, never unmetered.
  if (isDependencyFailure(err)) return serverOverloaded('A dependency of the gateway is unavailable; try again shortly.', { cause: err });
  return internalError(err);
}

function isDependencyFailure(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { $metadata?: unknown; name?: string; code?: string; cause?: { code?: string } };
  if (e.$metadata !== undefined) return true;
  const code = e.code ?? e.cause?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || e.name === 'TimeoutError';
}
