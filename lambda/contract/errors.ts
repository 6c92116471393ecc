/** OpenAI's error `type` values, as the gateway uses them (ARCHITECTURE §1). */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'insufficient_quota'
  | 'permission_error'
  | 'rate_limit_exceeded'
  | 'api_error'
  | 'server_overloaded';

export interface ErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string | null };
}

export interface GatewayErrorOptions {
  param?: string | null;
  /** Extra response headers, e.g. Retry-After on a 429. */
  headers?: Record<string, string>;
  /** True when another route may be tried: the upstream failed before its first byte. */
  fallback?: boolean;
  cause?: unknown;
}

/** Every failure the gateway answers is one of these, rendered in one place. */
export class GatewayError extends Error {
  readonly param: string | null;
  readonly headers: Record<string, string>;
  readonly fallback: boolean;

  constructor(
    readonly status: number,
    readonly type: ErrorType,
    readonly code: string,
    message: string,
    options: GatewayErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.param = options.param ?? null;
    this.headers = options.headers ?? {};
    this.fallback = options.fallback ?? false;
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, param: string | null = null, code = 'invalid_value') =>
  new GatewayError(400, 'invalid_request_error', code, message, { param });

export const invalidApiKey = (message = 'Incorrect API key provided.') =>
  new GatewayError(401, 'authentication_error', 'invalid_api_key', message);

export const insufficientQuota = (message: string) =>
  new GatewayError(402, 'insufficient_quota', 'insufficient_quota', message);

/** A client's own string quoted in an error message, cut so that a 5 MB model id is not echoed back whole. */
const quoted = (value: string, max = 256) => (value.length > max ? `${value.slice(0, max)}…` : value);

export const modelNotAllowed = (model: string) =>
  new GatewayError(403, 'permission_error', 'model_not_allowed', `This API key may not use the model '${quoted(model)}'.`, {
    param: 'model',
  });

export const modelNotFound = (model: string) =>
  new GatewayError(404, 'invalid_request_error', 'model_not_found', `The model '${quoted(model)}' does not exist.`, {
    param: 'model',
  });

/**
 * A model of the wrong kind for the endpoint (an embedding model on chat, a chat model on
 * embeddings): the client's mistake, so 400, never a 5xx from an upstream that cannot serve it.
 */
export const wrongModelKind = (model: string, kind: 'chat' | 'embedding') =>
  new GatewayError(
    400,
    'invalid_request_error',
    'model_not_supported',
    kind === 'embedding'
      ? `The model '${quoted(model)}' is an embedding model: it serves only POST /v1/embeddings.`
      : `The model '${quoted(model)}' is a chat model: it does not serve POST /v1/embeddings.`,
    { param: 'model' },
  );

export const routeNotFound = (method: string, path: string) =>
  new GatewayError(404, 'invalid_request_error', 'not_found', `Unknown request URL: ${method} ${quoted(path, 1024)}.`);

/** A known path asked with a method it does not serve; `allowed` becomes the `Allow` header. */
export const methodNotAllowed = (method: string, path: string, allowed?: readonly string[]) =>
  new GatewayError(405, 'invalid_request_error', 'method_not_allowed', `Method ${quoted(method, 32)} is not allowed on ${quoted(path, 1024)}.`, {
    headers: allowed ? { allow: allowed.join(', ') } : undefined,
  });

/** A body over the limit (in bytes, when the refusing layer knows it). */
export const requestTooLarge = (limitBytes?: number, options: GatewayErrorOptions = {}) =>
  new GatewayError(
    413,
    'invalid_request_error',
    'request_too_large',
    limitBytes === undefined ? 'The request body is too large.' : `Request body exceeds ${limitBytes} bytes.`,
    options,
  );

export const rateLimited = (message: string, retryAfterMs: number) =>
  new GatewayError(429, 'rate_limit_exceeded', 'rate_limit_exceeded', message, {
    headers: { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))), 'retry-after-ms': String(Math.max(0, Math.ceil(retryAfterMs))) },
  });

export const internalError = (cause?: unknown) =>
  new GatewayError(500, 'api_error', 'internal_error', 'The gateway had an internal error.', { cause });

export const upstreamError = (message: string, options: GatewayErrorOptions = {}) =>
  new GatewayError(502, 'api_error', 'upstream_error', message, options);

export const upstreamTimeout = (message: string, options: GatewayErrorOptions = {}) =>
  new GatewayError(504, 'api_error', 'upstream_timeout', message, options);

export const serverOverloaded = (message: string, options: GatewayErrorOptions = {}) =>
  new GatewayError(503, 'server_overloaded', 'server_overloaded', message, options);

/** The HTTP answer for a GatewayError: OpenAI's error body (or another wire's `body` for it) and the error's own headers. */
export function errorResponse(error: GatewayError, body: unknown = error.toBody()): Response {
  return new Response(JSON.stringify(body), {
    status: error.status,
    headers: { 'content-type': 'application/json', ...error.headers },
  });
}
