import { GatewayError, invalidRequest, serverOverloaded, upstreamError, upstreamTimeout } from '../../contract/errors';

/**
 * Anthropic's error types on the gateway's table. Everything but a bad request may be retried on
 * the next route (`fallback`); the pipeline decides whether a byte has already gone out.
 */
export function anthropicError(errorType: string | undefined, message: string | undefined, status?: number): GatewayError {
  const detail = message ? `Anthropic: ${message}` : 'Anthropic failed.';
  switch (errorType) {
    case 'invalid_request_error':
      return invalidRequest(message ?? 'Anthropic rejected the request.', null);
    case 'request_too_large':
      return invalidRequest(message ?? 'The request is too large for Anthropic.', 'messages', 'request_too_large');
    case 'overloaded_error':
    case 'rate_limit_error':
      return serverOverloaded(`The upstream is overloaded; try again shortly. (${detail})`, { fallback: true });
    case 'authentication_error':
    case 'permission_error':
      // Our own upstream key is wrong: not the client's fault, and another route may work.
      return upstreamError('The gateway could not authenticate with Anthropic.', { fallback: true });
    case 'timeout_error':
      return upstreamTimeout(`Anthropic timed out. (${detail})`, { fallback: true });
    case 'not_found_error':
    case 'api_error':
      return upstreamError(detail, { fallback: true });
  }
  if (status === 400 || status === 413 || status === 422) return invalidRequest(message ?? `Anthropic rejected the request (${status}).`, null);
  if (status === 429 || status === 529) return serverOverloaded(`The upstream is overloaded; try again shortly. (${detail})`, { fallback: true });
  if (status === 408 || status === 504) return upstreamTimeout(detail, { fallback: true });
  return upstreamError(status ? `Anthropic answered ${status}. ${message ?? ''}`.trim() : detail, { fallback: true });
}
