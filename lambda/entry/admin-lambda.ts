import { Hono } from 'hono';
import { handle } from 'hono/aws-lambda';
import { createAdminApp, type AdminDeps } from '../admin/app';
import { TierCache } from '../money/tier-cache';
import { Authenticator } from '../auth';
import { loadCatalog } from '../catalog';
import { errorResponse, routeNotFound } from '../contract/errors';
import { toGatewayError } from '../contract/http';
import { describeError, jsonLogger, type Logger } from '../observability/log';
import { createDynamoClient } from '../store/client';
import { createStores } from '../store';
import { tableNamesFromEnv } from '../store/tables';

/**
 * The admin function behind API Gateway REST (`/admin/{proxy+}`, payload v1). API Gateway has
 * already checked the caller's IAM signature; this only routes, validates and writes one audit line
 * per call (method, path, status, caller ARN — ids only, never a key).
 */
export function createAdminLambdaApp(deps: AdminDeps & { log: Logger }): Hono {
  const root = new Hono();
  root.use(async function audit(c, next) {
    const started = Date.now();
    await next();
    const identity = (c.env as { requestContext?: { identity?: { userArn?: string | null } } } | undefined)?.requestContext?.identity;
    deps.log.info('admin_request', {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      caller: identity?.userArn ?? undefined,
      latency_ms: Date.now() - started,
    });
  });
  root.route('/admin', createAdminApp(deps));
  root.notFound((c) => errorResponse(routeNotFound(c.req.method, c.req.path)));
  root.onError((err) => {
    deps.log.error('admin_request_failed', describeError(err));
    return errorResponse(toGatewayError(err));
  });
  return root;
}

/** Built on the first event and kept for the container's life. */
let cached: ReturnType<typeof handle> | undefined;

function build(env: NodeJS.ProcessEnv = process.env): ReturnType<typeof handle> {
  const log = jsonLogger();
  const dynamo = createDynamoClient();
  const tables = tableNamesFromEnv(env);
  const stores = createStores(dynamo, tables);
  const app = createAdminLambdaApp({
    ...stores,
    tierCache: new TierCache(stores.tiers),
    auth: new Authenticator(stores.keys),
    catalog: loadCatalog(env),
    // The console's public address (the chat function's URL), for sign-in links.
    consoleUrl: env.ITAPI_CONSOLE_URL || undefined,
    log,
  });
  return handle(app);
}

export const handler: ReturnType<typeof handle> = (event, context) => {
  cached ??= build();
  return cached(event, context);
};
