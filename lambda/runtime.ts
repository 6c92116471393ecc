import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
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
import type { RequestRecord } from './chat/completions';
import { describeError, jsonLogger, type Logger } from './observability/log';
import type { MetricsSink } from './observability/metrics';
import { defaultProviders, type ProviderRegistry } from './providers';
import { DEFAULT_TIMEOUTS, type UpstreamTimeouts } from './providers/types';
import type { ProviderKeys } from './secrets/provider-keys';
import { createStores, type Stores } from './store';
import type { TableNames } from './store/tables';
import type { AdminDeps } from './admin/app';
import { accountCredits } from './admin/credits';

export interface GatewayOptions {
  dynamo: DynamoDBClient;
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
  /** Auth cache lifetime. @default 60000 */
  authTtlMs?: number;
  /** The longest a request may run (ITAPI_MAX_REQUEST_S). @default 900000 */
  maxRequestMs?: number;
  /** How long past its deadline a hold is left before the sweeper settles it as abandoned. @default 60000 */
  sweepGraceMs?: number;
  /** Where settlements that keep failing go. @default none (the sweeper settles their holds as abandoned) */
  settlementQueue?: SettlementQueue;
  /** How long stored responses (`POST /v1/responses` with `store`) are kept. @default 30 (ITAPI_RESPONSES_TTL_DAYS) */
  responsesTtlDays?: number;
  now?: () => number;
}

/** The longest a request may run unless told otherwise: a Lambda's 15 minutes. */
export const DEFAULT_MAX_REQUEST_MS = 900_000;

export { createStores, type Stores };

export interface Gateway {
  app: Hono<any>;
  background: BackgroundTasks;
  stores: Stores;
  auth: Authenticator;
  tierCache: TierCache;
  log: Logger;
  /** Applies settlements (retries, then the durable queue). */
  settlements: Settlements;
  /** Settles holds left past their deadline (run it on a schedule: a timer locally, EventBridge in AWS). */
  sweeper: HoldSweeper;
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
  const { settlements, sweeper } = moneyRuntime({
    stores,
    tables: options.tables,
    log,
    metrics,
    queue: options.settlementQueue,
    sweepGraceMs: options.sweepGraceMs,
    now,
  });
  const admission = new CreditAdmission({
    store: stores.accounts,
    tiers: tierCache,
    settlements,
    keysTable: options.tables.keys,
    maxRequestMs: options.maxRequestMs ?? DEFAULT_MAX_REQUEST_MS,
    now,
    schedule: (task) => background.run(task),
  });
  void warmTokenizer();

  const observe = (record: RequestRecord) => {
    log.info('request', {
      request_id: record.requestId,
      key_id: record.keyId,
      account_id: record.accountId,
      model: record.model,
      route: record.route,
      status: record.status,
      error_code: record.errorCode,
      stream: record.stream,
      latency_ms: record.latencyMs,
      ttft_ms: record.timeToFirstTokenMs,
      prompt_tokens: record.usage?.prompt_tokens,
      completion_tokens: record.usage?.completion_tokens,
      outcome: record.status,
    });
    options.metrics?.record(record);
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
    timeouts: { ...DEFAULT_TIMEOUTS, ...options.timeouts },
    observe,
    auth,
    credits: (key) => accountCredits({ ...stores, tierCache }, key),
    admin,
    corsOrigins: options.corsOrigins,
    logError: (requestId, err) => log.error('request_failed', { request_id: requestId, ...describeError(err) }),
    responses: stores.responses,
  });
  return { app, background, stores, auth, tierCache, log, settlements, sweeper };
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
