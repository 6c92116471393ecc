import { Hono, type Context, type Next } from 'hono';
import type { Authenticator } from '../auth';
import type { CompletionDeps, RequestScope } from '../chat/pipeline';
import type { ModelEntry } from '../catalog';
import { methodNotAllowed, modelNotFound, type GatewayError } from '../contract/errors';
import type { KeyRecord } from '../store/keys';
import { countMessageTokens, createMessage } from './create';
import { anthropicErrorResponse } from './errors';

/**
 * `GET /v1/models` as Anthropic serves it (model discovery in Claude Code, `client.models.list()`):
 * the fields of the SDK's `ModelInfo` the gateway knows (it has no capabilities or token limits to state).
 */
type ModelInfo = Pick<import('@anthropic-ai/sdk/resources/models').ModelInfo, 'type' | 'id' | 'display_name' | 'created_at'>;

interface ModelInfoPage {
  data: ModelInfo[];
  has_more: boolean;
  first_id: string | null;
  last_id: string | null;
}

export interface MessagesAppDeps extends CompletionDeps {
  auth: Authenticator;
  /** Writes one line for a failure the client saw as a 5xx; never keys, prompts or completions. */
  logError(requestId: string, err: unknown): void;
  /** The app's JSON body reader (413 past the limit, 415, empty body, bad JSON, nesting), so every endpoint reads bodies alike. */
  readJsonBody(c: Context): Promise<unknown>;
  /** The app's reading of any failure as a GatewayError (a store that is down is a 503: fail closed). */
  toGatewayError(err: unknown): GatewayError;
  /** Runs an admitted request with the app's per-request record (metrics and the access log). */
  observed<T>(c: Context, run: (deps: CompletionDeps) => Promise<T>): Promise<T>;
  /** Tells the app's per-request record the error the client was answered with. */
  failed(c: Context, error: GatewayError): void;
}

type Env = { Variables: { scope: RequestScope; key: KeyRecord } };

/** Anthropic's own header for the request id, which its SDKs expose as `_request_id`. */
const REQUEST_ID_HEADER = 'request-id';

/**
 * Anthropic's Messages API for Claude Code and the Anthropic SDKs, mounted on the gateway's app:
 * `POST /v1/messages`, `POST /v1/messages/count_tokens`, Anthropic's shape of `GET /v1/models`
 * (for requests that carry `anthropic-version` or `x-api-key`; others fall through to OpenAI's),
 * and `HEAD /`, Claude Code's connection pre-warm. Errors here are Anthropic's
 * `{"type": "error", "error": {"type", "message"}}`.
 *
 * @example
 * app.route('/', messagesApp({ ...deps, readJsonBody, toGatewayError, observed, failed }));
 */
export function messagesApp(deps: MessagesAppDeps): Hono<Env> {
  const app = new Hono<Env>();

  app.onError((err, c) => {
    const error = deps.toGatewayError(err);
    deps.failed(c, error);
    const requestId = c.var.scope?.requestId ?? null;
    if (error.status >= 500) deps.logError(requestId ?? 'unknown', err);
    return anthropicErrorResponse(error, requestId);
  });

  // Claude Code's pre-warm: no key, and its answer is ignored; anything but HEAD goes on as before.
  app.get('/', async function preconnect(c, next) {
    if (c.req.method === 'HEAD') return c.body(null, 200);
    await next();
  });

  const authenticate = async (c: Context<Env>, next: Next) => {
    c.var.scope.responseHeaders[REQUEST_ID_HEADER] = c.var.scope.requestId;
    c.set('key', await deps.auth.authenticateAnthropic(c.req.header('x-api-key'), c.req.header('authorization')));
    await next();
  };
  const clientHeaders = (c: Context<Env>) => ({
    anthropicVersion: c.req.header('anthropic-version'),
    anthropicBeta: c.req.header('anthropic-beta'),
    betaQuery: c.req.query('beta') === 'true',
  });

  app.post('/v1/messages', authenticate, async (c) => {
    const body = await deps.readJsonBody(c);
    return deps.observed(c, (d) => createMessage(d, c.var.scope, c.var.key, body, clientHeaders(c)));
  });

  app.post('/v1/messages/count_tokens', authenticate, async (c) =>
    c.json(countMessageTokens(deps, c.var.key, await deps.readJsonBody(c))),
  );

  for (const path of ['/v1/messages', '/v1/messages/count_tokens']) {
    app.all(path, (c) => {
      throw methodNotAllowed(c.req.method, c.req.path);
    });
  }

  const fromAnthropicClient = (c: Context<Env>) => c.req.header('anthropic-version') !== undefined || c.req.header('x-api-key') !== undefined;

  app.get('/v1/models', async function anthropicModelList(c, next) {
    if (!fromAnthropicClient(c)) return next();
    await authenticate(c, async () => undefined);
    return c.json(modelPage(usableModels(deps, c.var.key), c.req.query()) satisfies ModelInfoPage);
  });

  app.get('/v1/models/:model{.+}', async function anthropicModel(c, next) {
    if (!fromAnthropicClient(c)) return next();
    await authenticate(c, async () => undefined);
    const id = c.req.param('model') ?? '';
    const model = usableModels(deps, c.var.key).find((m) => m.id === id);
    if (!model) throw modelNotFound(id);
    return c.json(modelInfo(model));
  });

  return app;
}

function usableModels(deps: Pick<CompletionDeps, 'catalog' | 'admission'>, key: KeyRecord): ModelEntry[] {
  return deps.catalog.list().filter((m) => deps.admission.allowsModel?.(key, m.id) ?? (!key.models || key.models.includes(m.id)));
}

function modelInfo(model: ModelEntry): ModelInfo {
  return { type: 'model', id: model.id, display_name: model.id, created_at: new Date(model.created * 1000).toISOString().replace('.000Z', 'Z') };
}

/** Anthropic's paging: `limit` (1-1000, default 20), `after_id`, `before_id`. */
const DEFAULT_PAGE = 20;
const MAX_PAGE = 1000;

function modelPage(models: ModelEntry[], query: Record<string, string>): ModelInfoPage {
  let list = models;
  if (query.after_id) list = list.slice(list.findIndex((m) => m.id === query.after_id) + 1);
  if (query.before_id) {
    const end = list.findIndex((m) => m.id === query.before_id);
    if (end >= 0) list = list.slice(0, end);
  }
  const asked = Number.parseInt(query.limit ?? '', 10);
  const limit = Number.isFinite(asked) ? Math.min(MAX_PAGE, Math.max(1, asked)) : DEFAULT_PAGE;
  const page = query.before_id ? list.slice(-limit) : list.slice(0, limit);
  const data = page.map(modelInfo);
  return { data, has_more: page.length < list.length, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
}
