import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { getCookie, setCookie } from 'hono/cookie';
import type { JSX } from 'hono/jsx/jsx-runtime';
import { zodOnFirstUse } from '../contract/zod';
import type { TierCache } from '../money/tier-cache';
import { createApiKey, keyChangeSchema, keyFieldsSchema, keyNotFound, revokeApiKey, updateApiKey } from '../admin/keys';
import { AmountError, usdToMicro } from '../admin/money';
import { parse, readJson, usdParam } from '../admin/request-body';
import { accountView, keyView, keyViewWithUsage, ledgerView } from '../admin/views';
import type { Authenticator } from '../auth';
import type { Catalog, ModelEntry } from '../catalog';
import { errorResponse, GatewayError, invalidRequest, requestTooLarge, routeNotFound, upstreamError } from '../contract/errors';
import { refuseOtherMethods, toGatewayError, type KnownRoutes } from '../contract/http';
import { describeError, type Logger } from '../observability/log';
import type { MetricsSink } from '../observability/metrics';
import type { BalanceAlerts } from '../alerts/balance-alerts';
import type { WebhookAddressPolicy } from '../alerts/webhook-address';
import { alertRoutes, alertView } from './alerts';
import type { ProviderKeys } from '../secrets/provider-keys';
import type { AccountsStore } from '../store/accounts';
import type { KeysStore } from '../store/keys';
import type { SessionsStore } from '../store/sessions';
import type { TiersStore } from '../store/tiers';
import type { UsageStore } from '../store/usage';
import { readKeyUsage, type RollupsStore } from '../store/rollups';
import { loadConsoleAssets } from './assets';
import { csrfTokenFor, csrfTokenMatches, redeemSignInLink, secretHash, SECRET_PATTERN, SESSION_TTL_MS, startSession } from '../auth/sign-in';
import { createCheckout, handleStripeWebhook, stripeApiAddress, stripeSettings } from './stripe';
import { dayRange, DEFAULT_PAGE_SIZE, ledgerFilter, ledgerPage, pageSize, summarizeRollups, usageCsv, type DayRange, type LedgerFilter } from './usage';
import { ModelsPage } from './views/models';
import { ConsolePage, MessagePage, SignInPage, SwitchAccountPage } from './views/pages';
import type { AccountJson, KeyJson, ModelChoiceJson, TopUpJson, TopUpOptionsJson } from './views/types';

// The one zod the chat bundle's schemas use too (lambda/contract/zod.ts): one copy in each bundle.
const { z } = zodOnFirstUse();

/**
 * The account holder's console under `/console/` (ARCHITECTURE §1): server-rendered pages, a small
 * browser script, and a JSON API under `/console/api/` scoped to the session's account. Loaded
 * only when a `/console` route is first hit, so the chat path never carries it.
 */

export interface ConsoleSettings {
  /** Bounds of a Stripe top-up, in whole cents. @default $5 and $1,000 */
  topUpMinMicroUsd: number;
  topUpMaxMicroUsd: number;
  /** Stripe API address for a stand-in (tests, stripe-mock). @default Stripe's own */
  stripeApiUrl?: string;
  /** The prebuilt browser script (Lambda: `/var/task/console-client.js`). @default built from source on first use */
  scriptFile?: string;
}

export interface ConsoleDeps {
  accounts: AccountsStore;
  keys: KeysStore;
  tiers: TiersStore;
  usage: UsageStore;
  rollups: RollupsStore;
  sessions: SessionsStore;
  tierCache: TierCache;
  auth: Authenticator;
  catalog: Catalog;
  /** The provider-keys secret; Stripe's keys are two of its entries. */
  secrets: ProviderKeys;
  log: Logger;
  /** Low-balance alerts: the check after a refund or dispute, and the webhook address policy. */
  alerts?: Pick<BalanceAlerts, 'forget' | 'afterCharge'> & Partial<Pick<BalanceAlerts, 'emailSaved'>>;
  alertPolicy?: WebhookAddressPolicy;
  /** Counters for CloudWatch (EMF in AWS). */
  metrics?: Pick<MetricsSink, 'stripeEventIgnored'>;
  settings?: Partial<ConsoleSettings>;
  now?: () => number;
}

/** Stripe's smallest charge in US dollars is $0.50. */
const STRIPE_MIN_MICRO_USD = 500_000;
const DEFAULT_TOP_UP_MIN_MICRO_USD = 5_000_000;
const DEFAULT_TOP_UP_MAX_MICRO_USD = 1_000_000_000;
const CENT_MICRO_USD = 10_000;
const API_BODY_BYTES = 64 * 1024;
const WEBHOOK_BODY_BYTES = 1024 * 1024;
const RECENT_TOP_UPS = 10;

/** `ITAPI_TOP_UP_MIN_USD`, `ITAPI_TOP_UP_MAX_USD`, `ITAPI_STRIPE_API_URL`, `ITAPI_CONSOLE_SCRIPT`, checked. */
export function consoleSettings(env: NodeJS.ProcessEnv): ConsoleSettings {
  const dollars = (name: string, fallback: number) => {
    const value = env[name];
    if (!value) return fallback;
    let micro: number;
    try {
      micro = usdToMicro(value);
    } catch (err) {
      throw new Error(`${name}: ${err instanceof AmountError ? err.message : String(err)}`);
    }
    if (micro % CENT_MICRO_USD !== 0) throw new Error(`${name}: must be whole cents`);
    return micro;
  };
  const settings: ConsoleSettings = {
    topUpMinMicroUsd: dollars('ITAPI_TOP_UP_MIN_USD', DEFAULT_TOP_UP_MIN_MICRO_USD),
    topUpMaxMicroUsd: dollars('ITAPI_TOP_UP_MAX_USD', DEFAULT_TOP_UP_MAX_MICRO_USD),
    stripeApiUrl: env.ITAPI_STRIPE_API_URL || undefined,
    scriptFile: env.ITAPI_CONSOLE_SCRIPT || undefined,
  };
  if (settings.topUpMinMicroUsd < STRIPE_MIN_MICRO_USD) throw new Error('ITAPI_TOP_UP_MIN_USD: Stripe charges at least 0.50 US dollars');
  if (settings.topUpMaxMicroUsd < settings.topUpMinMicroUsd) throw new Error('ITAPI_TOP_UP_MAX_USD: must not be below ITAPI_TOP_UP_MIN_USD');
  return settings;
}

/** Every path of the console and its methods: the one list its 405s come from. */
export const CONSOLE_ROUTES = {
  '/console': ['GET'],
  '/console/': ['GET'],
  '/console/models': ['GET'],
  '/console/sign-in': ['GET'],
  '/console/session': ['POST'],
  '/console/sign-out': ['POST'],
  '/console/assets/:file': ['GET'],
  '/console/stripe/webhook': ['POST'],
  '/console/api/account': ['GET'],
  '/console/api/models': ['GET'],
  '/console/api/keys': ['GET', 'POST'],
  '/console/api/keys/:id': ['GET', 'PATCH', 'DELETE'],
  '/console/api/usage': ['GET'],
  '/console/api/usage/requests': ['GET'],
  '/console/api/usage.csv': ['GET'],
  '/console/api/alerts': ['GET', 'PUT', 'DELETE'],
  '/console/api/alerts/secret': ['POST'],
  '/console/api/top-up': ['GET', 'POST'],
} as const satisfies KnownRoutes;

/** A body limit whose overflow is this console's 413, naming the limit. */
const limitBody = (maxSize: number) =>
  bodyLimit({
    maxSize,
    onError: () => {
      throw requestTooLarge(maxSize);
    },
  });

/** The session cookie: `__Host-` on https (Secure, Path=/, no Domain); plain on local http. */
const COOKIE = 'itapi_console';

const SECURITY_HEADERS: Record<string, string> = {
  // No inline script or style anywhere: every script and stylesheet is a file of ours.
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

interface Session {
  /** The secret from the cookie (its hash is the item's key). */
  id: string;
  accountId: string;
}

type ConsoleEnv = { Variables: { session: Session } };
type Ctx = Context<ConsoleEnv>;

const createKeyBody = z.strictObject(keyFieldsSchema);
const topUpBody = z.strictObject({
  amount_usd: z.union([z.number(), z.string()]),
  /** The console page the browser is on; Stripe sends the holder back there. */
  return_url: z.string().url().max(2000),
});

const sessionRequired = () =>
  new GatewayError(401, 'authentication_error', 'session_required', 'Sign in to the console first: open a sign-in link from your operator.');
const csrfRefused = () =>
  new GatewayError(403, 'permission_error', 'csrf_failed', 'This change must come from the console page itself (same origin, with its CSRF token).');

export function createConsoleApp(deps: ConsoleDeps): Hono {
  const now = deps.now ?? Date.now;
  const settings: ConsoleSettings = {
    topUpMinMicroUsd: DEFAULT_TOP_UP_MIN_MICRO_USD,
    topUpMaxMicroUsd: DEFAULT_TOP_UP_MAX_MICRO_USD,
    ...deps.settings,
  };
  const stripeApi = stripeApiAddress(settings.stripeApiUrl);
  const assets = () => loadConsoleAssets(settings.scriptFile);
  const app = new Hono<ConsoleEnv>();

  app.use(async function securityHeaders(c, next) {
    await next();
    withSecurityHeaders(c.res);
  });

  /** The one place the console's failures become answers: JSON for the API, a page for a browser. */
  const renderError = async (c: Ctx, err: unknown): Promise<Response> => {
    const error = toGatewayError(err);
    if (error.status >= 500) deps.log.error('console_request_failed', { method: c.req.method, path: c.req.path, status: error.status, ...describeError(err) });
    if (isApiPath(c.req.path)) return withSecurityHeaders(errorResponse(error));
    const title = error.status === 401 ? 'Not signed in' : error.status >= 500 ? 'Something went wrong' : 'That did not work';
    let versions = { script: '', styles: '', icon: '' };
    try {
      versions = await assetVersions();
    } catch {
      // The page still says what went wrong, unstyled.
    }
    const page = htmlPage(c, error.status, <MessagePage title={title} message={error.message} assets={versions} />);
    for (const [name, value] of Object.entries(error.headers)) page.headers.set(name, value);
    return withSecurityHeaders(page);
  };
  app.onError((err, c) => renderError(c, err));
  app.notFound((c) => renderError(c, routeNotFound(c.req.method, c.req.path)));

  const assetVersions = async () => {
    const a = await assets();
    return { script: a.script.version, styles: a.styles.version, icon: a.icon.version };
  };

  // ----- sessions ---------------------------------------------------------------------------

  const secure = (c: Ctx) => new URL(c.req.url).protocol === 'https:';
  const cookieOptions = (c: Ctx, maxAgeSeconds: number) =>
    secure(c)
      ? ({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/', maxAge: maxAgeSeconds, prefix: 'host' } as const)
      : ({ httpOnly: true, sameSite: 'Strict', path: '/', maxAge: maxAgeSeconds } as const);
  const cookieValue = (c: Ctx) => getCookie(c, COOKIE, secure(c) ? 'host' : undefined);

  async function readSession(c: Ctx): Promise<Session | undefined> {
    const id = cookieValue(c);
    if (!id || !SECRET_PATTERN.test(id)) return undefined;
    const grant = await deps.sessions.getSession(secretHash(id), now());
    return grant ? { id, accountId: grant.accountId } : undefined;
  }

  const requireSession = async (c: Ctx, next: () => Promise<void>) => {
    const session = await readSession(c);
    if (!session) throw sessionRequired();
    c.set('session', session);
    await next();
  };

  /** Every change: from our own origin (the browser says so) and carrying the session's CSRF token. */
  const requireSameOriginChange = async (c: Ctx, next: () => Promise<void>) => {
    if (!['GET', 'HEAD', 'OPTIONS'].includes(c.req.method)) {
      if (!fromSameOrigin(c)) throw csrfRefused();
      if (!csrfTokenMatches(c.var.session.id, c.req.header('x-csrf-token'))) throw csrfRefused();
    }
    await next();
  };

  // ----- pages ------------------------------------------------------------------------------

  app.get('/console', (c) => c.redirect('console/', 308));

  app.get('/console/', async (c) => {
    const session = await readSession(c);
    const account = session && (await accountJson(session.accountId));
    if (!session || !account) {
      if (cookieValue(c)) setCookie(c, COOKIE, '', cookieOptions(c, 0));
      return htmlPage(
        c,
        401,
        <MessagePage
          title="Not signed in"
          message="Your session has ended or you are not signed in. Ask your operator for a sign-in link (they run: itapi console-link ACCOUNT)."
          assets={await assetVersions()}
        />,
      );
    }
    const range = dayRange(undefined, undefined, now());
    const [keys, models, usage, ledger, topUp, versions] = await Promise.all([
      keysJson(session.accountId),
      modelChoices(account),
      usageSummary(session.accountId, range),
      ledgerPage(readRequests(session.accountId, range), range, DEFAULT_PAGE_SIZE, undefined),
      topUpOptions(session.accountId),
      assetVersions(),
    ]);
    const topUpState = c.req.query('top_up');
    const notice =
      topUpState === 'paid'
        ? 'Thank you: the payment went through. The credits appear once Stripe confirms it, usually within seconds; reload to see them.'
        : topUpState === 'cancelled'
          ? 'The top-up was cancelled; nothing was charged.'
          : c.req.query('notice') === 'link-used'
            ? `That sign-in link was used already or has expired, so it changed nothing: you are still signed in to ${account.name}.`
            : undefined;
    return htmlPage(
      c,
      200,
      <ConsolePage
        account={account}
        keys={keys}
        models={models}
        usage={usage}
        ledger={ledger}
        topUp={topUp}
        csrfToken={csrfTokenFor(session.id)}
        nowMs={now()}
        notice={notice}
        assets={versions}
      />,
    );
  });

  app.get('/console/models', async (c) => {
    const session = await readSession(c);
    const account = session && (await accountJson(session.accountId));
    if (!session || !account) return c.redirect('./', 303);
    const [models, keys, versions] = await Promise.all([modelChoices(account), deps.keys.listByAccount(session.accountId), assetVersions()]);
    const usable = keys
      .filter((k) => k.status === 'active' && (k.expiresAtMs === undefined || k.expiresAtMs > now()))
      .sort((a, b) => a.createdAtMs - b.createdAtMs);
    const keysByModel: Record<string, string[]> = {};
    for (const m of models) keysByModel[m.id] = usable.filter((k) => !k.models || k.models.includes(m.id)).map((k) => k.name || k.prefix);
    return htmlPage(
      c,
      200,
      <ModelsPage account={account} models={models} keysByModel={keysByModel} usableKeys={usable.length} csrfToken={csrfTokenFor(session.id)} assets={versions} />,
    );
  });

  app.get('/console/sign-in', async (c) => htmlPage(c, 200, <SignInPage assets={await assetVersions()} />));

  // The same-site step of a sign-in: the link's page posts the token here, from our own origin,
  // so the SameSite=Strict cookie set now is sent on the redirect that follows.
  app.post('/console/session', limitBody(4096), async (c) => {
    if (!fromSameOrigin(c)) throw csrfRefused();
    const form = await c.req.parseBody();
    const token = typeof form.token === 'string' ? form.token : '';
    const current = await readSession(c);
    if (current && form.switch !== 'yes') {
      // Signed in already: a spent link leads back to the console, another account's link asks first.
      const link = SECRET_PATTERN.test(token) ? await deps.sessions.getLink(secretHash(token), now()) : undefined;
      if (!link) return c.redirect('./?notice=link-used', 303);
      if (link.accountId !== current.accountId) {
        const [from, to] = await Promise.all([deps.accounts.get(current.accountId), deps.accounts.get(link.accountId)]);
        return htmlPage(
          c,
          200,
          <SwitchAccountPage
            current={{ id: current.accountId, name: from?.name ?? current.accountId }}
            next={{ id: link.accountId, name: to?.name ?? link.accountId }}
            token={token}
            assets={await assetVersions()}
          />,
        );
      }
    }
    const grant = await redeemSignInLink(deps.sessions, token, now());
    if (!grant && current) return c.redirect('./?notice=link-used', 303);
    if (!grant) {
      throw new GatewayError(
        400,
        'invalid_request_error',
        'link_invalid',
        'This sign-in link has been used already, has expired or is not valid. Ask your operator for a new one.',
      );
    }
    const previous = cookieValue(c);
    if (previous && SECRET_PATTERN.test(previous)) await deps.sessions.deleteSession(secretHash(previous));
    const session = await startSession(deps.sessions, grant.accountId, grant.method, now());
    setCookie(c, COOKIE, session.sessionId, cookieOptions(c, Math.floor(SESSION_TTL_MS / 1000)));
    deps.log.info('console_sign_in', { account_id: grant.accountId, method: grant.method });
    return c.redirect('./', 303);
  });

  // Only the console's own page signs out: a post from anywhere else (no cookie, another origin, no
  // CSRF token) is refused and the reply leaves the cookie alone, so no other site can sign the holder out.
  app.post('/console/sign-out', limitBody(4096), async (c) => {
    const id = cookieValue(c);
    if (!id || !SECRET_PATTERN.test(id) || !fromSameOrigin(c)) throw csrfRefused();
    const form = await c.req.parseBody();
    if (!csrfTokenMatches(id, typeof form.csrf === 'string' ? form.csrf : undefined)) throw csrfRefused();
    await deps.sessions.deleteSession(secretHash(id));
    setCookie(c, COOKIE, '', cookieOptions(c, 0));
    return c.redirect('./', 303);
  });

  app.get('/console/assets/:file', async (c) => {
    const a = await assets();
    const asset = new Map([
      ['console.js', a.script],
      ['console.css', a.styles],
      ['icon.svg', a.icon],
    ]).get(c.req.param('file'));
    if (!asset) throw routeNotFound(c.req.method, c.req.path);
    // A versioned URL never changes content; an unversioned one is revalidated.
    const cache = c.req.query('v') === asset.version ? 'public, max-age=31536000, immutable' : 'no-cache';
    return c.body(asset.body, 200, { 'content-type': asset.contentType, 'cache-control': cache });
  });

  // ----- Stripe -----------------------------------------------------------------------------

  app.post(
    '/console/stripe/webhook',
    limitBody(WEBHOOK_BODY_BYTES),
    async (c) => {
      const stripe = await stripeSettings(deps.secrets);
      if (!stripe) throw routeNotFound(c.req.method, c.req.path);
      const outcome = await handleStripeWebhook(
        { accounts: deps.accounts, log: deps.log, onIgnoredPayment: (reason) => deps.metrics?.stripeEventIgnored?.(reason) },
        stripe,
        stripeApi,
        await c.req.text(),
        c.req.header('stripe-signature'),
        now(),
      );
      // A refund or dispute lowered the balance: the low-balance alert may fire.
      if (outcome.result === 'taken_back') await deps.alerts?.afterCharge(outcome.accountId);
      return c.json({ received: true, result: outcome.result });
    },
  );

  // ----- JSON API ---------------------------------------------------------------------------

  const api = new Hono<ConsoleEnv>();
  api.use(requireSession, requireSameOriginChange);
  api.use(limitBody(API_BODY_BYTES));

  api.get('/account', async (c) => c.json(await accountJsonOrFail(c.var.session.accountId)));

  api.get('/models', async (c) => c.json({ object: 'list', data: await modelChoices(await accountJsonOrFail(c.var.session.accountId)) }));

  api.get('/keys', async (c) => c.json({ object: 'list', data: await keysJson(c.var.session.accountId) }));

  api.get('/keys/:id', async (c) => {
    const key = await deps.keys.getById(c.req.param('id'));
    // Another account's key is answered exactly like a key that does not exist.
    if (!key || key.accountId !== c.var.session.accountId) throw keyNotFound(c.req.param('id'));
    return c.json(keyView(key));
  });

  api.post('/keys', async (c) => {
    await requireActive(c.var.session.accountId);
    const fields = parse(createKeyBody, await readJson(c));
    const { record, key } = await createApiKey(deps, c.var.session.accountId, fields, now(), null);
    deps.log.info('console_key_created', { account_id: record.accountId, key_id: record.keyId });
    // Shown this once; the gateway keeps only the hash.
    return c.json({ ...keyView(record), key }, 201);
  });

  // Rename, disable or enable, set or remove the monthly spend cap.
  api.patch('/keys/:id', async (c) => {
    const id = c.req.param('id');
    const change = parse(keyChangeSchema, await readJson(c));
    const updated = await updateApiKey(deps, id, change, c.var.session.accountId);
    if (!updated) throw keyNotFound(id);
    deps.log.info('console_key_updated', { account_id: updated.accountId, key_id: updated.keyId, fields: Object.keys(change) });
    return c.json(await keyViewWithUsage(deps.rollups, updated, now()));
  });

  api.delete('/keys/:id', async (c) => {
    const id = c.req.param('id');
    const revoked = await revokeApiKey(deps, id, c.var.session.accountId);
    if (!revoked) throw keyNotFound(id);
    deps.log.info('console_key_revoked', { account_id: revoked.accountId, key_id: revoked.keyId });
    return c.json(keyView(revoked));
  });

  api.get('/usage', async (c) => {
    const range = dayRange(c.req.query('from'), c.req.query('to'), now());
    const filter = ledgerFilter(c.req.query('key'), c.req.query('model'));
    return c.json(await usageSummary(c.var.session.accountId, range, filter));
  });

  api.get('/usage/requests', async (c) => {
    const range = dayRange(c.req.query('from'), c.req.query('to'), now());
    const limit = pageSize(c.req.query('limit'));
    const filter = ledgerFilter(c.req.query('key'), c.req.query('model'));
    return c.json(await ledgerPage(readRequests(c.var.session.accountId, range, filter), range, limit, c.req.query('cursor') || undefined));
  });

  api.get('/usage.csv', async (c) => {
    const range = dayRange(c.req.query('from'), c.req.query('to'), now());
    const accountId = c.var.session.accountId;
    const filter = ledgerFilter(c.req.query('key'), c.req.query('model'));
    const name = `itapi-usage-${accountId.replace(/[^A-Za-z0-9_.-]/g, '_')}-${range.from}-${range.to}.csv`;
    return new Response(usageCsv(readRequests(accountId, range, filter)), {
      headers: { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="${name}"` },
    });
  });

  alertRoutes(api, deps);

  api.get('/top-up', async (c) => c.json(await topUpOptions(c.var.session.accountId)));

  api.post('/top-up', async (c) => {
    await requireActive(c.var.session.accountId);
    const body = parse(topUpBody, await readJson(c));
    const stripe = await stripeSettings(deps.secrets);
    if (!stripe) {
      throw new GatewayError(409, 'invalid_request_error', 'top_up_unavailable', 'Card top-ups are not set up on this gateway: ask your operator for credits.');
    }
    const amountMicroUsd = topUpAmount(body.amount_usd, settings);
    const returnUrl = new URL(body.return_url);
    if (returnUrl.origin !== new URL(c.req.url).origin || !returnUrl.pathname.endsWith('/console/')) {
      throw invalidRequest('`return_url` must be this console’s own page.', 'return_url');
    }
    let checkout: { id: string; url: string };
    try {
      checkout = await createCheckout(stripe, stripeApi, { accountId: c.var.session.accountId, amountMicroUsd, returnUrl: returnUrl.href });
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      // Stripe's own message may quote the key's last characters: only its type and codes are logged.
      const e = err as { type?: string; code?: string; statusCode?: number };
      deps.log.error('stripe_checkout_failed', { account_id: c.var.session.accountId, type: e.type, code: e.code, status: e.statusCode });
      throw upstreamError('Stripe could not start a Checkout session; try again shortly.');
    }
    deps.log.info('console_checkout_created', { account_id: c.var.session.accountId, checkout_session: checkout.id, amount_micro_usd: amountMicroUsd });
    return c.json({ object: 'checkout_session', id: checkout.id, url: checkout.url, amount_micro_usd: amountMicroUsd });
  });

  app.route('/console/api', api);
  // After the API's session and CSRF checks, as a route of the API would be.
  refuseOtherMethods(app, CONSOLE_ROUTES);

  // ----- data -------------------------------------------------------------------------------

  async function accountJson(accountId: string): Promise<AccountJson | undefined> {
    const [account] = await Promise.all([deps.accounts.get(accountId), deps.tierCache.ready()]);
    if (!account) return undefined;
    const tier = deps.tierCache.get(account.tier) ?? (await deps.tiers.get(account.tier));
    return accountView(account, tier, now());
  }

  async function accountJsonOrFail(accountId: string): Promise<AccountJson> {
    const account = await accountJson(accountId);
    if (!account) throw sessionRequired();
    return account;
  }

  /** A disabled account may look at its console, but not take new keys or pay for credits it cannot use. */
  async function requireActive(accountId: string): Promise<void> {
    const account = await deps.accounts.get(accountId);
    if (!account) throw sessionRequired();
    if (account.status !== 'active') {
      throw new GatewayError(403, 'permission_error', 'account_disabled', 'This account is disabled: ask your operator to enable it before creating keys or topping up.');
    }
  }

  async function keysJson(accountId: string): Promise<KeyJson[]> {
    const [keys, usage] = await Promise.all([deps.keys.listByAccount(accountId), readKeyUsage(deps.rollups, accountId, now())]);
    return keys.sort((a, b) => b.createdAtMs - a.createdAtMs || a.keyId.localeCompare(b.keyId)).map((k) => keyView(k, usage.get(k.keyId)));
  }

  async function modelChoices(account: AccountJson): Promise<ModelChoiceJson[]> {
    const tier = deps.tierCache.get(account.tier) ?? (await deps.tiers.get(account.tier));
    const allowed = tier?.models ? new Set(tier.models) : undefined;
    return deps.catalog
      .list()
      .filter((m) => !allowed || allowed.has(m.id))
      .map(modelChoice)
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  function readRequests(accountId: string, range: DayRange, filter: LedgerFilter = {}) {
    return (options: { limit: number; after?: string; oldestFirst?: boolean }) => deps.usage.requestsPage(accountId, range.fromMs, range.toMs, { ...options, ...filter });
  }

  /** From the roll-ups: days × keys × models items, whatever the traffic (a filter picks among them). */
  async function usageSummary(accountId: string, range: DayRange, filter: LedgerFilter = {}) {
    return summarizeRollups(await deps.rollups.range(accountId, range.from, range.to), range, filter);
  }

  async function topUpOptions(accountId: string): Promise<TopUpOptionsJson> {
    const [stripe, topUps, owedPayments] = await Promise.all([stripeSettings(deps.secrets), deps.usage.topUps(accountId), deps.usage.owedPayments(accountId)]);
    const owedPaid = new Map(owedPayments.map((p) => [p.id, -p.amountMicroUsd]));
    const recent = topUps
      .sort((a, b) => b.atMs - a.atMs)
      .slice(0, RECENT_TOP_UPS)
      .map((t) => ({ ...(ledgerView(t) as TopUpJson), owed_paid_micro_usd: owedPaid.get(t.id) ?? 0 }));
    return {
      object: 'top_up_options',
      enabled: stripe !== undefined,
      currency: 'usd',
      min_usd: settings.topUpMinMicroUsd / 1_000_000,
      max_usd: settings.topUpMaxMicroUsd / 1_000_000,
      recent,
    };
  }

  return app as unknown as Hono;
}

/**
 * A catalog model as the console shows it: prices per million tokens as billed. A cache-write
 * price is the one billing uses (stated, or Anthropic's 1.25× / 2× of input on Claude models), and
 * null where cache writes are billed as plain input (no write price of their own).
 */
export function modelChoice(m: ModelEntry): ModelChoiceJson {
  const stated = (m.pricingPerMtok ?? {}) as Record<string, unknown>;
  const writePrice = (field: string, perToken: number) =>
    typeof stated[field] === 'number' || perToken !== m.price.inputPerToken ? perToken / 1000 : null;
  const embedding = m.kind === 'embedding';
  return {
    id: m.id,
    owned_by: m.ownedBy,
    kind: embedding ? 'embedding' : 'chat',
    context_window: m.contextWindow,
    max_output_tokens: embedding ? null : m.maxOutputTokens,
    pricing: {
      input_per_mtok: m.price.inputPerToken / 1000,
      output_per_mtok: embedding ? null : m.price.outputPerToken / 1000,
      cached_input_per_mtok: m.price.cachedInputPerToken / 1000,
      cache_write_per_mtok: embedding ? null : writePrice('cache_write_per_mtok', m.price.cacheWritePerToken),
      cache_write_1h_per_mtok: embedding ? null : writePrice('cache_write_1h_per_mtok', m.price.cacheWrite1hPerToken),
    },
  };
}

/** A top-up amount: whole cents within the operator's bounds. */
function topUpAmount(value: number | string, settings: ConsoleSettings): number {
  const micro = usdParam(value, 'amount_usd');
  if (micro % CENT_MICRO_USD !== 0) throw invalidRequest('`amount_usd` must be whole cents.', 'amount_usd');
  if (micro < settings.topUpMinMicroUsd || micro > settings.topUpMaxMicroUsd) {
    throw invalidRequest(
      `\`amount_usd\` must be between ${settings.topUpMinMicroUsd / 1_000_000} and ${settings.topUpMaxMicroUsd / 1_000_000} US dollars.`,
      'amount_usd',
    );
  }
  return micro;
}

/**
 * The browser's word that a request comes from a page of this origin: `Sec-Fetch-Site:
 * same-origin` where sent, and an `Origin` equal to ours wherever it names one (our pages'
 * `Referrer-Policy: no-referrer` makes a browser send `Origin: null` on their form posts).
 * Another port of the same host is another origin (its `Sec-Fetch-Site` says `same-site`). A
 * request with neither header, or with only `Origin: null`, is refused.
 */
function fromSameOrigin(c: Context): boolean {
  const site = c.req.header('sec-fetch-site');
  const origin = c.req.header('origin');
  const ours = origin === new URL(c.req.url).origin;
  if (site === undefined) return ours;
  return site === 'same-origin' && (origin === undefined || origin === 'null' || ours);
}

function withSecurityHeaders(res: Response): Response {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.headers.set(name, value);
  if (!res.headers.has('cache-control')) res.headers.set('cache-control', 'no-store');
  return res;
}

const isApiPath = (path: string) => path.startsWith('/console/api/') || path === '/console/stripe/webhook';

function htmlPage(c: Context, status: number, page: JSX.Element): Response {
  return c.html(`<!doctype html>${page}`, status as 200);
}
