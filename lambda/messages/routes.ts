import type { Context } from 'hono';
import type { CompletionDeps } from '../chat/pipeline';
import type { ModelEntry } from '../catalog';
import { modelNotFound } from '../contract/errors';
import type { KeyRecord } from '../store/keys';

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

/**
 * What the gateway's one app needs to serve Anthropic's Messages API to Claude Code and the
 * Anthropic SDKs beside the OpenAI routes: which requests speak Anthropic's wire (their errors take
 * Anthropic's `{"type": "error", "error": {"type", "message"}}` shape, their key may come as
 * `x-api-key`), the client's Anthropic headers, and Anthropic's shape of the model list. The
 * routes themselves are registered in `app.ts` with the others.
 */

/** Anthropic's own header for the request id, which its SDKs expose as `_request_id`. */
export const REQUEST_ID_HEADER = 'request-id';

/** `/v1/messages` and every path below it. */
export const isMessagesPath = (path: string): boolean => path === '/v1/messages' || path.startsWith('/v1/messages/');

const isModelsPath = (path: string): boolean => path === '/v1/models' || path.startsWith('/v1/models/');

/** A request from an Anthropic client: it names `anthropic-version` or sends its key as `x-api-key`. */
export const fromAnthropicClient = (c: Context): boolean => c.req.header('anthropic-version') !== undefined || c.req.header('x-api-key') !== undefined;

/**
 * The request speaks Anthropic's wire: the Messages routes, and model discovery asked by an
 * Anthropic client (others get OpenAI's list on the same path).
 */
export const speaksAnthropic = (c: Context): boolean => isMessagesPath(c.req.path) || (isModelsPath(c.req.path) && fromAnthropicClient(c));

/** The Anthropic headers a Messages request passes on: its API version, betas, and `?beta=true`. */
export const anthropicClientHeaders = (c: Context) => ({
  anthropicVersion: c.req.header('anthropic-version'),
  anthropicBeta: c.req.header('anthropic-beta'),
  betaQuery: c.req.query('beta') === 'true',
});

type ModelDeps = Pick<CompletionDeps, 'catalog' | 'admission'>;

/** `GET /v1/models` for Anthropic clients: the key's models, paged as Anthropic pages them. */
export function anthropicModelList(deps: ModelDeps, key: KeyRecord, query: Record<string, string>): ModelInfoPage {
  return modelPage(usableModels(deps, key), query);
}

/** `GET /v1/models/{id}` for Anthropic clients; 404 for a model the key may not use. */
export function anthropicModel(deps: ModelDeps, key: KeyRecord, id: string): ModelInfo {
  const model = usableModels(deps, key).find((m) => m.id === id);
  if (!model) throw modelNotFound(id);
  return modelInfo(model);
}

/** Whether the key may use the model: the admission's word (tier and key), else the key's own list. */
export function keyMayUse(deps: Pick<CompletionDeps, 'admission'>, key: KeyRecord, modelId: string): boolean {
  return deps.admission.allowsModel?.(key, modelId) ?? (!key.models || key.models.includes(modelId));
}

/** The catalog's models this key may use, in catalog order. */
export function usableModels(deps: ModelDeps, key: KeyRecord): ModelEntry[] {
  return deps.catalog.list().filter((m) => keyMayUse(deps, key, m.id));
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
