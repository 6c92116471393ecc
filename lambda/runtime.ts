import type { Dynamo } from './store/dynamo';
import { Hono } from 'hono';
import { createHash, timingSafeEqual } from 'node:crypto';
import { GatewayError } from './contract/errors';
import { CreditAdmission } from './money/admission';
import { moneyRuntime } from './money';
import type { Settlements, SettlementQueue } from './money/settlement';
import type { HoldSweeper } from './money/sweeper';
import { TierCache } from './money/tier-cache';
import { warmTokenizer } from './money/tokens';
import { createApp } from './app';
import { Authenticator } from './auth';
import type { Catalog } from './catalog';
import { BackgroundTasks } from './chat/background';
import { describeError, jsonLogger, type Logger } from './observability/log';
import type { MetricsSink } from './observability/metrics';
import type { SpeculationCancelled } from './chat/overlap';
import type { RequestObservation, UpstreamAttempt } from './observability/records';
import { defaultProviders, type ProviderRegistry } from './providers';
import { DEFAULT_TIMEOUTS, type UpstreamTimeouts } from './providers/types';
import type { ProviderKeys } from './secrets/provider-keys';
import { createStores, type Stores } from './store';
import type { TableNames } from './store/tables';
import type { AdminDeps } from './admin/app';
import { accountCredits } from './admin/credits';
import { BalanceAlerts, InProcessAlertOutbox, type AlertOutbox } from './alerts/balance-alerts';

export interface GatewayOptions {
  dynamo: Dynamo;
  tables: TableNames;
  catalog: Catalog;
  providerKeys: ProviderKeys;
  /** Serve the admin API under `/admin` behind this bearer token (local mode). */
  adminToken?: string;
  /** Builds the admin app; passed in so that the chat function's bundle leaves it out (AWS serves it from its own function). */
  createAdminApp?: (deps: AdminDeps) => Hono<any>;
  providers?: ProviderRegistry;
  timeouts?: Partial<UpstreamTimeouts>;
  log?: Logger;
  metrics?: MetricsSink;
  /** Browser origins allowed by CORS. @default none */
  corsOrigins?: string[];
  /**
   * Loads the console module on the first `/console` request (the Lambda bundle ships it as a
   * file of its own). @default - no console
   */
  loadConsole?: () => Promise<ConsoleModule>;
  /** Where the console reads its settings (`ITAPI_TOP_UP_MIN_USD`, …). @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Auth cache lifetime. @default 5000 */
  authTtlMs?: number;
  /** Roll usage up in-process after each settlement (local mode); in AWS the usage table's stream does. @default false */
  rollupsInline?: boolean;
  /** See `moneyRuntime`'s `groupCommit`; with `rollupsInline` it groups admissions too (`CreditAdmission`'s `groupCommit`). */
  groupCommit?: boolean;
  /** The longest a request may run (ITAPI_MAX_REQUEST_S). @default 900000 */
  maxRequestMs?: number;
  /** How long past its deadline a hold is left before the sweeper settles it as abandoned. @default 60000 */
  sweepGraceMs?: number;
  /** How often a stream records its delivered output on its hold item. @default 5000 */
  checkpointMs?: number;
  /** Events a stream reads ahead of a client that does not keep up before the request is ended. @default 16384 */
  maxBufferedEvents?: number;
  /** Where settlements that keep failing go. @default none (the sweeper settles their holds as abandoned) */
  settlementQueue?: SettlementQueue;
  /** How long stored responses (`POST /v1/responses` with `store`) are kept. @default 30 (ITAPI_RESPONSES_TTL_DAYS) */
  responsesTtlDays?: number;
  /** Low-balance alerts. @default webhooks to public https addresses only, delivered in-process with retries */
  alerts?: AlertOptions;
  /**
   * Start loading the o200k tokenizer now, off the request path (a long-lived server). The Lambda
   * entry passes false and loads it after its first answer has left (lambda/entry/lambda.ts).
   * @default true
   */
  warmTokenizerAtStart?: boolean;
  now?: () => number;
}

export interface AlertOptions {
  /** Local mode: webhooks to any address (a receiver on 127.0.0.1). In AWS false (no SSRF). @default false */
  allowPrivateWebhooks?: boolean;
  /** Where fired alerts go. @default delivered in this process, retried with backoff */
  outbox?: AlertOutbox;
  /** Pauses between in-process delivery attempts. @default DEFAULT_ALERT_RETRY_DELAYS_MS */
  retryDelaysMs?: readonly number[];
}

/** The longest a request may run unless told otherwise: a Lambda's 15 minutes. */
export const DEFAULT_MAX_REQUEST_MS = 900_000;

export { createStores, type Stores };

/** What a console module exports (lambda/console): a type only, so the module itself stays out of this bundle. */
export type ConsoleModule = Pick<typeof import('./console'), 'createConsoleApp' | 'consoleSettings'>;

export interface Gateway {
  app: Hono<any>;
  background: BackgroundTasks;
  stores: Stores;
  auth: Authenticator;
  tierCache: TierCache;
  log: Logger;
  /** Applies settlements (retries, then the durable queue). */
  settlements: Settlements;
  /** Applies replayed settlements (the local queue): short retries, no queue. */
  replays: Settlements;
  /** Settles holds left past their deadline (run it on a schedule: a timer locally, EventBridge in AWS). */
  sweeper: HoldSweeper;
  /** Low-balance alerts: the check after each settlement, and where fired alerts go. */
  alerts: BalanceAlerts;
  alertOutbox: AlertOutbox;
}

/** Builds the whole gateway once per process; every entry point (Lambda, local server, tests) uses it. */
export function createGateway(options: GatewayOptions): Gateway {
  const log = options.log ?? jsonLogger();
  const stores = createStores(options.dynamo, options.tables, { responsesTtlDays: options.responsesTtlDays });
  const now = options.now ?? Date.now;
  const tierCache = new TierCache(stores.tiers, 60_000, now);
  const auth = new Authenticator(stores.keys, { positiveTtlMs: options.authTtlMs, now });
  const background = new BackgroundTasks((err) => log.error('background_task_failed', describeError(err)));
  const metrics = options.metrics;
  const allowPrivateWebhooks = options.alerts?.allowPrivateWebhooks ?? false;
  const alertOutbox =
    options.alerts?.outbox ??
    new InProcessAlertOutbox({
      log,
      allowPrivate: allowPrivateWebhooks,
      retryDelaysMs: options.alerts?.retryDelaysMs,
      onUndelivered: (channel) => metrics?.alertDeliveryFailed?.(channel),
      now,
    });
  const alerts = new BalanceAlerts({ accounts: stores.accounts, outbox: alertOutbox, log, now });
  const { settlements, replays, sweeper } = moneyRuntime({
    afterCharge: (accountId) => alerts.afterCharge(accountId),
    stores,
    tables: options.tables,
    log,
    metrics,
    queue: options.settlementQueue,
    sweepGraceMs: options.sweepGraceMs,
    rollupsInline: options.rollupsInline,
    groupCommit: options.groupCommit,
    now,
  });
  const admission = new CreditAdmission({
    store: stores.accounts,
    // Local mode only, as the settlements' group commit: one process sees all of an account's requests.
    groupCommit: options.rollupsInline === true && options.groupCommit === true,
    holds: stores.holds,
    tiers: tierCache,
    settlements,
    keysTable: options.tables.keys,
    maxRequestMs: options.maxRequestMs ?? DEFAULT_MAX_REQUEST_MS,
    now,
    schedule: (task) => background.run(task),
  });
  if (options.warmTokenizerAtStart !== false) void warmTokenizer();

  const observeRequest = (o: RequestObservation) => {
    log.info('request', {
      request_id: o.requestId,
      method: o.method,
      path: o.path,
      status: o.status,
      error_type: o.errorType,
      error_code: o.errorCode,
      key_id: o.keyId,
      account_id: o.accountId,
      admitted: o.admitted,
      model: o.model,
      route: o.route,
      stream: o.stream,
      latency_ms: o.latencyMs,
      ttft_ms: o.timeToFirstTokenMs,
      prompt_tokens: o.usage?.prompt_tokens,
      completion_tokens: o.usage?.completion_tokens,
      outcome: o.outcome,
    });
    metrics?.request(o);
  };
  const observeAttempt = (a: UpstreamAttempt) => {
    if (a.failed) log.info('upstream_failed', { request_id: a.requestId, route: a.route, status: a.status, error_code: a.errorCode, message: a.message, latency_ms: a.latencyMs });
    // Written on the next turn: an answered attempt is seen between the upstream's first event and
    // the client's, and its metric is a line to stdout (issue 22). The Lambda entry drains the
    // background before the invocation ends.
    if (metrics) background.run(async () => metrics.upstreamAttempt(a));
  };
  const observeSpeculationCancelled = (s: SpeculationCancelled) => {
    log.info('speculation_cancelled', { request_id: s.requestId, account_id: s.accountId, model: s.model, route: s.route, reason: s.reason, answered: s.answered });
    metrics?.speculativeCallCancelled?.(s.reason);
  };

  const admin =
    options.adminToken && options.createAdminApp
      ? protectAdmin(options.createAdminApp({ ...stores, tierCache, auth, catalog: options.catalog, now }), options.adminToken)
      : undefined;
  const app = createApp({
    catalog: options.catalog,
    providers: options.providers ?? defaultProviders(),
    providerKeys: options.providerKeys,
    admission,
    background,
    checkpointMs: options.checkpointMs,
    maxBufferedEvents: options.maxBufferedEvents,
    timeouts: { ...DEFAULT_TIMEOUTS, ...options.timeouts },
    observeRequest,
    observeAttempt,
    observeSpeculationCancelled,
    auth,
    credits: (key) => accountCredits({ ...stores, tierCache }, key),
    admin,
    console: options.loadConsole && (() => loadConsoleApp(options.loadConsole!)),
    corsOrigins: options.corsOrigins,
    logError: (requestId, err) => log.error('request_failed', { request_id: requestId, ...describeError(err) }),
    responses: stores.responses,
  });
  return { app, background, stores, auth, tierCache, log, settlements, replays, sweeper, alerts, alertOutbox };

  async function loadConsoleApp(loadModule: () => Promise<ConsoleModule>) {
    const loaded = (await loadModule()) as Partial<ConsoleModule> & { default?: ConsoleModule };
    // A CommonJS file loaded with import() may put its exports under `default`.
    const mod = (loaded.createConsoleApp ? loaded : loaded.default) as ConsoleModule;
    return mod.createConsoleApp({
      ...stores,
      tierCache,
      auth,
      catalog: options.catalog,
      secrets: options.providerKeys,
      log,
      metrics,
      alerts,
      alertPolicy: { allowPrivate: allowPrivateWebhooks },
      now,
      settings: mod.consoleSettings(options.env ?? process.env),
    });
  }
}

/** Locally the admin API sits beside the public one, behind `Authorization: Bearer $ITAPI_ADMIN_TOKEN`. */
function protectAdmin(admin: Hono<any>, token: string): Hono<any> {
  const expected = createHash('sha256').update(token).digest();
  const guarded = new Hono();
  guarded.use(async function adminToken(c, next) {
    const match = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '');
    const given = createHash('sha256').update(match?.[1] ?? '').digest();
    if (!match || !timingSafeEqual(given, expected)) {
      throw new GatewayError(401, 'authentication_error', 'invalid_admin_token', 'The admin API needs Authorization: Bearer $ITAPI_ADMIN_TOKEN.');
    }
    await next();
  });
  guarded.route('/', admin);
  return guarded;
}
