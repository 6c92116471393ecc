import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { randomBytes } from 'node:crypto';
import type { Authenticator } from './auth';
import { chatCompletion, type ChatDeps, type RequestScope } from './chat/completions';
import {
  GatewayError,
  internalError,
  invalidRequest,
  methodNotAllowed,
  modelNotFound,
  requestTooLarge,
  routeNotFound,
  serverOverloaded,
} from './contract/errors';
import type { Model } from './contract/openai';
import { createResponse, deleteResponse, IGNORED_HEADER, listInputItems, retrieveResponse } from './responses/endpoints';
import type { KeyRecord } from './store/keys';
import type { ResponsesStore } from './store/responses';

export interface AppDeps extends ChatDeps {
  auth: Authenticator;
  /** Largest request body accepted. @default 6 MiB (the Lambda payload limit) */
  maxBodyBytes?: number;
  /** `GET /v1/credits`: the caller's balance, tier and limits. */
  credits?(key: KeyRecord): Promise<unknown>;
  /** Admin routes, mounted under `/admin` (locally behind a token, in AWS behind IAM). */
  admin?: Hono;
  /** Browser origins allowed to call the API (never with credentials: keys travel in a header). @default none */
  corsOrigins?: string[];
  /** Writes one line for a failure the client saw as a 5xx; never keys, prompts or completions. */
  logError(requestId: string, err: unknown): void;
  /** Stored Responses API responses; without it `/v1/responses` is not served. */
  responses?: Pick<ResponsesStore, 'get' | 'put' | 'delete'>;
}

type Env = { Variables: { scope: RequestScope; key: KeyRecord } };

const DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024;

const CORS_EXPOSED_HEADERS = [
  'x-request-id',
  'x-itapi-route',
  'retry-after',
  'retry-after-ms',
  IGNORED_HEADER,
  ...['requests', 'tokens'].flatMap((k) => ['limit', 'remaining', 'reset'].map((p) => `x-ratelimit-${p}-${k}`)),
];

/** The gateway as a Web-standard app: the Lambda entry and the local server each wrap it in a few lines. */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  const maxBodyBytes = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;

  app.use(async function requestScope(c, next) {
    const scope: RequestScope = { requestId: `req_${randomBytes(12).toString('hex')}`, startedAtMs: Date.now(), responseHeaders: {} };
    c.set('scope', scope);
    await next();
    c.res.headers.set('x-request-id', scope.requestId);
    for (const [name, value] of Object.entries(scope.responseHeaders)) {
      if (!c.res.headers.has(name)) c.res.headers.set(name, value);
    }
    // Answers that ended before admission (a 400, a 403, /v1/models) tell the limits as last seen.
    const key = c.get('key');
    if (key && !c.res.headers.has('x-ratelimit-limit-requests') && !c.res.headers.has('x-ratelimit-limit-tokens')) {
      for (const [name, value] of Object.entries(deps.admission.headersFor?.(key) ?? {})) c.res.headers.set(name, value);
    }
  });

  if (deps.corsOrigins?.length) {
    app.use(
      cors({
        origin: deps.corsOrigins,
        allowMethods: ['GET', 'POST', 'OPTIONS'],
        allowHeaders: ['authorization', 'content-type', 'x-stainless-*', 'openai-organization', 'openai-project'],
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

  app.post(
    '/v1/chat/completions',
    authenticate,
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: () => {
        // The rest of the body is never read: close the connection after the answer, else the
        // client's next request on it failed with 'other side closed' (local server).
        const error = requestTooLarge(maxBodyBytes);
        error.headers.connection = 'close';
        throw error;
      },
    }),
    async (c) => {
      const body = await readJsonBody(c);
      return chatCompletion(deps, c.var.scope, c.var.key, body);
    },
  );

  app.get('/v1/models', authenticate, (c) => {
    const data = deps.catalog
      .list()
      .filter((m) => allows(deps, c.var.key, m.id))
      .map((m) => modelObject(m.id, m.created, m.ownedBy));
    return c.json({ object: 'list', data });
  });

  app.get('/v1/models/:model{.+}', authenticate, (c) => {
    const id = c.req.param('model') ?? '';
    const entry = deps.catalog.get(id);
    if (!entry || !allows(deps, c.var.key, id)) throw modelNotFound(id);
    return c.json(modelObject(entry.id, entry.created, entry.ownedBy));
  });

  if (deps.credits) {
    const credits = deps.credits;
    app.get('/v1/credits', authenticate, async (c) => c.json(await credits(c.var.key)));
  }

  // OpenAI Responses API: POST (JSON or SSE), and the stored responses of the key's account.
  if (deps.responses) {
    const responsesDeps = { ...deps, responses: deps.responses };
    app.post('/v1/responses', authenticate, jsonBodyLimit(maxBodyBytes), async (c) =>
      createResponse(responsesDeps, c.var.scope, c.var.key, await readJsonBody(c)),
    );
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

  // Known paths answer a wrong method with 405, not 404.
  for (const path of ['/v1/chat/completions', '/v1/models', '/v1/models/:model{.+}', '/v1/credits']) {
    app.all(path, (c) => renderError(deps, c, methodNotAllowed(c.req.method, c.req.path)));
  }

  return app;
}

/** The body limit of JSON endpoints; the rest of an oversized body is never read, so the connection closes after the 413. */
function jsonBodyLimit(maxBodyBytes: number) {
  return bodyLimit({
    maxSize: maxBodyBytes,
    onError: () => {
      const error = requestTooLarge(maxBodyBytes);
      error.headers.connection = 'close';
      throw error;
    },
  });
}

function allows(deps: AppDeps, key: KeyRecord, modelId: string): boolean {
  return deps.admission.allowsModel?.(key, modelId) ?? (!key.models || key.models.includes(modelId));
}

function modelObject(id: string, created: number, ownedBy: string): Model {
  return { id, object: 'model', created, owned_by: ownedBy };
}

async function readJsonBody(c: Context<Env>): Promise<unknown> {
  const type = c.req.header('content-type');
  if (type && !/^application\/json\s*(;|$)/i.test(type)) {
    throw new GatewayError(415, 'invalid_request_error', 'unsupported_content_type', `Unsupported content type '${type.slice(0, 100)}': send application/json.`);
  }
  const text = await c.req.text();
  if (!text.trim()) throw invalidRequest('The request body is empty: send a JSON object.', null, 'invalid_json');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw invalidRequest(
      'We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.',
      null,
      'invalid_json',
    );
  }
  if (nestedDeeperThan(body, MAX_JSON_DEPTH)) {
    throw invalidRequest(`The JSON body is nested deeper than ${MAX_JSON_DEPTH} levels.`, null, 'invalid_json');
  }
  return body;
}

/**
 * JSON.parse takes any depth, but JSON.stringify (token estimate, upstream body) recurses and
 * overflowed the stack at about 4,000 levels: a 500 for bad input. No real schema comes close.
 */
const MAX_JSON_DEPTH = 128;

function nestedDeeperThan(root: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length) {
    const [value, depth] = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** The one place failures become responses: OpenAI's error body, with the request's headers. */
function renderError(deps: AppDeps, c: Context<Env>, err: unknown): Response {
  const error = toGatewayError(err);
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
