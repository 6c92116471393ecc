import { Hono, type Context } from 'hono';
import { randomBytes } from 'node:crypto';
import { zodOnFirstUse } from '../contract/zod';
import type { TierCache } from '../money/tier-cache';
import type { Authenticator } from '../auth';
import type { Catalog } from '../catalog';
import { errorResponse, GatewayError, invalidRequest, routeNotFound } from '../contract/errors';
import { refuseOtherMethods, toGatewayError, type KnownRoutes } from '../contract/http';
import type { Logger } from '../observability/log';
import type { AccountsStore } from '../store/accounts';
import { createSignInLink } from '../auth/sign-in';
import { ItemExistsError } from '../store/errors';
import type { KeyRecord, KeysStore } from '../store/keys';
import type { SessionsStore } from '../store/sessions';
import type { Tier, TiersStore } from '../store/tiers';
import type { LedgerEntry, UsageStore } from '../store/usage';
import { readKeyUsage, type RollupsStore } from '../store/rollups';
import { createApiKey, isoMs, keyChangeSchema, keyFieldsSchema, keyNotFound, revokeApiKey, updateApiKey } from './keys';
import { parse, readJson, usdParam } from './request-body';
import { accountView, keyView, keyViewWithUsage, ledgerView, tierView, usageTotals } from './views';

// The one zod the chat bundle's schemas use too (lambda/contract/zod.ts): one copy in each bundle.
const { z } = zodOnFirstUse();

export interface AdminDeps {
  keys: KeysStore;
  tiers: TiersStore;
  accounts: AccountsStore;
  usage: UsageStore;
  rollups: RollupsStore;
  sessions: SessionsStore;
  tierCache: TierCache;
  auth: Authenticator;
  catalog: Catalog;
  now?: () => number;
  /**
   * The console's public address (`https://…/console/`), for sign-in links.
   * @default - the console beside this admin API: `<origin of the request>/console/` (local mode)
   */
  consoleUrl?: string;
  /** Where 5xx failures are written (ids and codes only). */
  log?: Logger;
}

/** The default window of `GET /accounts/{id}/usage`. */
export const DEFAULT_USAGE_WINDOW_MS = 30 * 24 * 3600 * 1000;

const ID = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;
const idSchema = z.string().regex(ID, 'must be 1-128 letters, digits or _ . : @ - (starting with a letter or digit)');
const nameSchema = z.string().max(200);
const limitSchema = z.number().int().min(0).max(1_000_000_000);
const amountSchema = z.union([z.number(), z.string()]);
const modelsSchema = z.array(z.string().min(1)).min(1).max(1000);

const createAccountBody = z.strictObject({
  id: idSchema.optional(),
  name: nameSchema.optional(),
  tier: z.string().min(1),
  credits_usd: amountSchema.optional(),
  rpm: limitSchema.optional(),
  tpm: limitSchema.optional(),
});

const updateAccountBody = z.strictObject({
  name: nameSchema.optional(),
  tier: z.string().min(1).optional(),
  /** null: back to the tier's limit. */
  rpm: limitSchema.nullable().optional(),
  tpm: limitSchema.nullable().optional(),
  status: z.enum(['active', 'disabled']).optional(),
});

const creditsBody = z.strictObject({
  amount_usd: amountSchema,
  reference: z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces'),
});

const createKeyBody = z.strictObject({ account_id: z.string().min(1), ...keyFieldsSchema });

const putTierBody = z.strictObject({
  rpm: limitSchema,
  tpm: limitSchema,
  /** Omitted: unchanged; null: every model. */
  models: modelsSchema.nullable().optional(),
  /** Omitted: unchanged. */
  description: z.string().max(500).nullable().optional(),
});

/** Every path of the admin API (relative to `/admin`) and its methods: the one list its 405s come from. */
export const ADMIN_ROUTES = {
  '/accounts': ['POST'],
  '/accounts/:id': ['GET', 'PATCH'],
  '/accounts/:id/credits': ['POST'],
  '/accounts/:id/keys': ['GET'],
  '/accounts/:id/usage': ['GET'],
  '/accounts/:id/console-links': ['POST'],
  '/accounts/:id/console-sessions': ['DELETE'],
  '/keys': ['POST'],
  '/keys/:id': ['GET', 'PATCH', 'DELETE'],
  '/tiers': ['GET'],
  '/tiers/:id': ['GET', 'PUT'],
} as const satisfies KnownRoutes;

/**
 * The admin API (ARCHITECTURE §8), with routes relative to its mount point (`/admin`). Who may call
 * it is decided outside: IAM on API Gateway in AWS, a bearer token locally.
 */
export function createAdminApp(deps: AdminDeps): Hono {
  const now = deps.now ?? Date.now;
  const app = new Hono();

  app.onError((err, c) => renderError(deps, c, err));
  app.notFound((c) => renderError(deps, c, routeNotFound(c.req.method, c.req.path)));

  const requireAccount = async (id: string) => {
    const account = await deps.accounts.get(id);
    if (!account) throw notFound(`No account with id '${id}'.`);
    return account;
  };
  const accountJson = async (id: string) => {
    const account = await requireAccount(id);
    return accountView(account, await deps.tiers.get(account.tier), now());
  };

  app.post('/accounts', async (c) => {
    const body = parse(createAccountBody, await readJson(c));
    const tier = await deps.tiers.get(body.tier);
    if (!tier) throw invalidRequest(`Unknown tier '${body.tier}'. See GET /admin/tiers.`, 'tier', 'tier_not_found');
    const credits = body.credits_usd === undefined ? 0 : amount(body.credits_usd, 'credits_usd', true);
    const id = body.id ?? `acct_${randomBytes(12).toString('hex')}`;
    const createdAtMs = now();
    try {
      await deps.accounts.create({
        id,
        name: body.name ?? id,
        tier: tier.id,
        balanceMicroUsd: 0,
        rpm: body.rpm,
        tpm: body.tpm,
        status: 'active',
        createdAtMs,
      });
    } catch (err) {
      if (err instanceof ItemExistsError) {
        throw new GatewayError(409, 'invalid_request_error', 'account_exists', `An account with id '${id}' already exists.`, { param: 'id' });
      }
      throw err;
    }
    // Initial credits go through the ledger like any top-up, so the ledger sums to the balance.
    if (credits > 0) await deps.accounts.topUp(id, credits, 'initial', createdAtMs);
    return c.json(await accountJson(id), 201);
  });

  app.get('/accounts/:id', async (c) => c.json(await accountJson(c.req.param('id'))));

  // An extension of §8: change an account's tier, custom limits, status or name.
  app.patch('/accounts/:id', async (c) => {
    const id = c.req.param('id');
    const body = parse(updateAccountBody, await readJson(c));
    if (body.tier !== undefined && !(await deps.tiers.get(body.tier))) {
      throw invalidRequest(`Unknown tier '${body.tier}'. See GET /admin/tiers.`, 'tier', 'tier_not_found');
    }
    const updated = await deps.accounts.update(id, body);
    if (!updated) throw notFound(`No account with id '${id}'.`);
    // Keys carry a copy of the account's limits (so a cached key needs no account read): keep it in step.
    for (const key of await deps.keys.listByAccount(id)) {
      await deps.keys.setAccountLimits(key.keyHash, { tier: updated.tier, rpm: updated.rpm, tpm: updated.tpm });
      deps.auth.forget(key.keyHash);
    }
    return c.json(await accountJson(id));
  });

  app.post('/accounts/:id/credits', async (c) => {
    const id = c.req.param('id');
    const body = parse(creditsBody, await readJson(c));
    const micro = amount(body.amount_usd, 'amount_usd', false);
    // What the account owes (refunds and disputes beyond its balance) is paid first; the rest goes to the balance.
    const out = await deps.accounts.credit(id, micro, body.reference, now());
    if (out.result === 'no-account') throw notFound(`No account with id '${id}'.`);
    c.header('x-itapi-top-up', out.result);
    const view = await accountJson(id);
    const added = out.result === 'added' ? out : { owedPaidMicroUsd: 0, balanceAddedMicroUsd: 0 };
    return c.json({
      ...view,
      top_up: {
        reference: body.reference,
        amount_micro_usd: micro,
        result: out.result,
        /** What this call applied (0 for a duplicate): the part that paid what was owed, and the part added to the balance. */
        owed_paid_micro_usd: added.owedPaidMicroUsd,
        balance_added_micro_usd: added.balanceAddedMicroUsd,
      },
    });
  });

  app.get('/accounts/:id/keys', async (c) => {
    const id = c.req.param('id');
    await requireAccount(id);
    const [keys, usage] = await Promise.all([deps.keys.listByAccount(id), readKeyUsage(deps.rollups, id, now())]);
    keys.sort((a, b) => a.createdAtMs - b.createdAtMs || a.keyId.localeCompare(b.keyId));
    return c.json({ object: 'list', data: keys.map((k) => keyView(k, usage.get(k.keyId))) });
  });

  app.get('/accounts/:id/usage', async (c) => {
    const id = c.req.param('id');
    const toMs = c.req.query('to') !== undefined ? timeParam(c.req.query('to')!, 'to') : now();
    const fromMs = c.req.query('from') !== undefined ? timeParam(c.req.query('from')!, 'from') : toMs - DEFAULT_USAGE_WINDOW_MS;
    if (fromMs > toMs) throw invalidRequest('`from` must not be after `to`.', 'from');
    await requireAccount(id);
    const [requests, allTopUps, allReversals, allOwedPayments] = await Promise.all([
      deps.usage.requests(id, fromMs, toMs),
      deps.usage.topUps(id),
      deps.usage.reversals(id),
      deps.usage.owedPayments(id),
    ]);
    const inRange = (t: { atMs: number }) => t.atMs >= fromMs && t.atMs <= toMs;
    const topUps = allTopUps.filter(inRange);
    const reversals = allReversals.filter(inRange);
    const owedPayments = allOwedPayments.filter(inRange);
    // A top-up's owed payment (same time) follows it.
    const order = (e: LedgerEntry) => (e.kind === 'owed_payment' ? 1 : 0);
    const items = [...requests, ...topUps, ...reversals, ...owedPayments].sort((a, b) => a.atMs - b.atMs || order(a) - order(b)).map(ledgerView);
    return c.json({
      object: 'usage',
      account_id: id,
      from: new Date(fromMs).toISOString(),
      to: new Date(toMs).toISOString(),
      items,
      totals: usageTotals(requests, topUps, reversals, owedPayments),
    });
  });

  app.post('/keys', async (c) => {
    const { account_id: accountId, ...fields } = parse(createKeyBody, await readJson(c));
    const { record, key } = await createApiKey(deps, accountId, fields, now());
    // The only place the plaintext key ever leaves the admin API.
    return c.json({ ...keyView(record), key }, 201);
  });

  // An extension of §8: rename, disable or enable, set or remove (null) the monthly spend cap.
  app.patch('/keys/:id', async (c) => {
    const id = c.req.param('id');
    const change = parse(keyChangeSchema, await readJson(c));
    const updated = await updateApiKey(deps, id, change);
    if (!updated) throw keyNotFound(id);
    return c.json(await keyViewWithUsage(deps.rollups, updated, now()));
  });

  app.get('/keys/:id', async (c) => {
    const id = c.req.param('id');
    const key = await deps.keys.getById(id);
    if (!key) throw keyNotFound(id);
    return c.json(await keyViewWithUsage(deps.rollups, key, now()));
  });

  app.delete('/keys/:id', async (c) => {
    const id = c.req.param('id');
    const revoked = await revokeApiKey(deps, id);
    if (!revoked) throw keyNotFound(id);
    return c.json(keyView(revoked));
  });

  // A one-time console sign-in link for the account's holder (ARCHITECTURE §8).
  app.post('/accounts/:id/console-links', async (c) => {
    const id = c.req.param('id');
    await requireAccount(id);
    const consoleUrl = deps.consoleUrl ?? new URL('/console/', c.req.url).href;
    const link = await createSignInLink(deps.sessions, id, consoleUrl, now());
    return c.json({ object: 'console_link', account_id: id, url: link.url, expires_at: Math.floor(link.expiresAtMs / 1000) }, 201);
  });

  // Ends every console session of the account and voids its unused links.
  app.delete('/accounts/:id/console-sessions', async (c) => {
    const id = c.req.param('id');
    await requireAccount(id);
    const revoked = await deps.sessions.revokeAccount(id);
    return c.json({ object: 'console_sessions', account_id: id, revoked });
  });

  app.get('/tiers', async (c) => c.json({ object: 'list', data: (await deps.tiers.list()).map(tierView) }));

  app.get('/tiers/:id', async (c) => {
    const tier = await deps.tiers.get(c.req.param('id'));
    if (!tier) throw notFound(`No tier with id '${c.req.param('id')}'.`);
    return c.json(tierView(tier));
  });

  app.put('/tiers/:id', async (c) => {
    const id = c.req.param('id');
    if (!ID.test(id)) throw invalidRequest(`Invalid tier id '${id.slice(0, 100)}'.`, 'id');
    const body = parse(putTierBody, await readJson(c));
    for (const [i, model] of (body.models ?? []).entries()) {
      if (!deps.catalog.get(model)) throw invalidRequest(`Unknown model '${model}'.`, `models[${i}]`, 'model_not_found');
    }
    const existing = await deps.tiers.get(id);
    const tier: Tier = { id, rpm: body.rpm, tpm: body.tpm };
    const models = body.models === undefined ? existing?.models : (body.models ?? undefined);
    const description = body.description === undefined ? existing?.description : (body.description ?? undefined);
    if (models) tier.models = models;
    if (description) tier.description = description;
    await deps.tiers.put(tier);
    deps.tierCache.set(tier);
    return c.json(tierView(tier));
  });

  // Known paths answer a wrong method with 405, not 404; last, so a served method never runs it.
  refuseOtherMethods(app, ADMIN_ROUTES);

  return app;
}

const notFound = (message: string, param: string | null = null) =>
  new GatewayError(404, 'invalid_request_error', 'not_found', message, { param });

function amount(value: number | string, param: string, zeroAllowed: boolean): number {
  const micro = usdParam(value, param);
  if (micro < 0 || (micro === 0 && !zeroAllowed)) {
    throw invalidRequest(`Invalid value for '${param}': the amount must be ${zeroAllowed ? 'zero or more' : 'more than zero'}.`, param);
  }
  return micro;
}

/** Usage bounds: milliseconds since the epoch (digits) or an ISO 8601 date/date-time. */
function timeParam(value: string, param: string): number {
  if (/^\d+$/.test(value)) return Number(value);
  const ms = isoMs(value);
  if (ms === undefined) throw invalidRequest(`\`${param}\` must be an ISO 8601 date-time or milliseconds since the epoch.`, param);
  return ms;
}

function renderError(deps: AdminDeps, c: Context, err: unknown): Response {
  const error = toGatewayError(err);
  if (error.status >= 500) {
    const e = err instanceof Error ? { error: err.name, message: err.message.slice(0, 300) } : { error: String(err).slice(0, 200) };
    deps.log?.error('admin_request_failed', { method: c.req.method, path: c.req.path, status: error.status, ...e });
  }
  return errorResponse(error);
}
