import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Hono } from 'hono';
import { createHash, timingSafeEqual } from 'node:crypto';
import { GatewayError } from './contract/errors';
import { CreditAdmission } from './admission';
import type { Ledger } from './settlement';
import { TierCache } from './admission/tier-cache';
import { warmTokenizer } from './admission/tokens';
import { createApp } from './app';
import { Authenticator } from './auth';
import type { Catalog } from './catalog';
import { BackgroundTasks } from './chat/background';
import { describeError, jsonLogger, type Logger } from './observability/log';
import type { MetricsSink } from './observability/metrics';
import type { RequestObservation, UpstreamAttempt } from './observability/records';
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
  now?: () => number;
}

export { createStores, type Stores };

export interface Gateway {
  app: Hono<any>;
  background: BackgroundTasks;
  stores: Stores;
  auth: Authenticator;
  tierCache: TierCache;
  log: Logger;
}

/** Builds the whole gateway once per process; every entry point (Lambda, local server, tests) uses it. */
export function createGateway(options: GatewayOptions): Gateway {
  const log = options.log ?? jsonLogger();
  const stores = createStores(options.dynamo, options.tables);
  const now = options.now ?? Date.now;
  const tierCache = new TierCache(stores.tiers, 60_000, now);
  const auth = new Authenticator(stores.keys, { positiveTtlMs: options.authTtlMs, now });
  const background = new BackgroundTasks((err) => log.error('background_task_failed', describeError(err)));
  const metrics = options.metrics;
  // Settlements go to the accounts store; the cost metric is emitted once one has landed.
  const ledger: Ledger = metrics
    ? {
        async settle(write) {
          const landed = await stores.accounts.settle(write);
          if (landed) metrics.cost(write.ledger.model ?? 'unknown', write.ledger.route, -write.ledger.amountMicroUsd);
          return landed;
        },
      }
    : stores.accounts;
  const admission = new CreditAdmission(stores.accounts, tierCache, ledger, now, options.tables.keys, (task) => background.run(task));
  void warmTokenizer();

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
      client_aborted: o.clientAborted,
    });
    metrics?.request(o);
  };
  const observeAttempt = (a: UpstreamAttempt) => {
    if (a.failed) log.info('upstream_failed', { request_id: a.requestId, route: a.route, status: a.status, error_code: a.errorCode, message: a.message, latency_ms: a.latencyMs });
    metrics?.upstreamAttempt(a);
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
    observeRequest,
    observeAttempt,
    auth,
    credits: (key) => accountCredits({ ...stores, tierCache }, key),
    admin,
    corsOrigins: options.corsOrigins,
    logError: (requestId, err) => log.error('request_failed', { request_id: requestId, ...describeError(err) }),
  });
  return { app, background, stores, auth, tierCache, log };
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
