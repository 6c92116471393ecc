import type { Env, Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { GatewayError, internalError, methodNotAllowed, requestTooLarge, serverOverloaded, type ErrorType } from './errors';

/**
 * What the gateway's web apps (the API, the admin API, the console) share about HTTP: one reading
 * of any failure as a GatewayError, and 405s derived from one list of known paths per app.
 */

/** The methods a route may serve. `GET` also serves `HEAD` (Hono answers HEAD with the GET route). */
export type RouteMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** An app's known paths (Hono patterns, relative to where the app is mounted) and the methods each serves. */
export type KnownRoutes = Readonly<Record<string, readonly RouteMethod[]>>;

/** The methods a path answers, as its `Allow` header names them. */
export function allowedMethods(methods: readonly RouteMethod[]): string[] {
  return methods.flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
}

/**
 * Registers, for every known path, a 405 (with `Allow`) for any method the path does not serve.
 * An allowed method passes on, so the order of registration does not matter; an allowed method with
 * no handler (a feature left out) ends in the app's 404.
 *
 * @example
 * refuseOtherMethods(app, { '/v1/models': ['GET'], '/v1/responses/:id': ['GET', 'DELETE'] });
 */
export function refuseOtherMethods<E extends Env>(app: Hono<E>, routes: KnownRoutes): void {
  for (const [path, methods] of Object.entries(routes)) {
    const allowed = allowedMethods(methods);
    app.all(path, async function methodAllowed(c, next) {
      if (!allowed.includes(c.req.method)) throw methodNotAllowed(c.req.method, c.req.path, allowed);
      await next();
    });
  }
}

/**
 * Any failure as the GatewayError the client is answered with: a GatewayError as it is; Hono's
 * HTTPException (a body over `bodyLimit`, the validator's malformed JSON) by its status; an AWS
 * dependency that failed, throttled or could not be reached as a 503 (fail closed, never unmetered);
 * anything else as a 500. A bare `SyntaxError` stays a 500: request bodies are parsed where they are
 * read (into a 400 `invalid_json`), so one reaching here came from an upstream's or the store's text.
 */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof HTTPException) return fromHttpException(err);
  if (isDependencyFailure(err)) return serverOverloaded('A dependency of the gateway is unavailable; try again shortly.', { cause: err });
  return internalError(err);
}

function fromHttpException(err: HTTPException): GatewayError {
  const status = err.status;
  if (status === 413) return requestTooLarge(undefined, { cause: err });
  if (status >= 500) return internalError(err);
  const type: ErrorType =
    status === 401 ? 'authentication_error' : status === 403 ? 'permission_error' : status === 429 ? 'rate_limit_exceeded' : 'invalid_request_error';
  const code = status === 404 ? 'not_found' : status === 429 ? 'rate_limit_exceeded' : 'invalid_value';
  return new GatewayError(status, type, code, err.message || 'The request could not be served.', { cause: err });
}

/** A store or other AWS dependency (an SDK error carries `$metadata`) or a connection that failed. */
function isDependencyFailure(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { $metadata?: unknown; name?: string; code?: string; cause?: { code?: string } };
  if (e.$metadata !== undefined) return true;
  const code = e.code ?? e.cause?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || e.name === 'TimeoutError';
}
