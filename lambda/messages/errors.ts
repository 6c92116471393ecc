import { errorResponse, type GatewayError } from '../contract/errors';
import type { ErrorResponse, ErrorType } from '@anthropic-ai/sdk/resources/shared';

/** Anthropic's error types: the SDK's, and `request_too_large` (413), which Anthropic answers but the SDK's type does not list. */
export type AnthropicErrorType = ErrorType | 'request_too_large';

/** Anthropic's error body (the SDK's `ErrorResponse`), with the 413's type. */
export type AnthropicErrorBody = Omit<ErrorResponse, 'error'> & { error: { type: AnthropicErrorType; message: string } };

/**
 * The gateway's error in Anthropic's words, by HTTP status as Anthropic documents them
 * (docs.claude.com/en/api/errors). The status itself is kept: an overloaded upstream or an
 * unavailable store stays 503 (`overloaded_error`), which Anthropic's SDKs retry like its 529.
 */
export function anthropicErrorType(error: GatewayError): AnthropicErrorType {
  switch (error.status) {
    case 401:
      return 'authentication_error';
    case 402:
      return 'billing_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 503:
    case 529:
      return 'overloaded_error';
    case 504:
      return 'timeout_error';
  }
  return error.status < 500 ? 'invalid_request_error' : 'api_error';
}

export function anthropicErrorBody(error: GatewayError, requestId: string | null): AnthropicErrorBody {
  return { type: 'error', error: { type: anthropicErrorType(error), message: error.message }, request_id: requestId };
}

/** The HTTP answer for a GatewayError on the Messages routes: Anthropic's body, the error's own headers. */
export function anthropicErrorResponse(error: GatewayError, requestId: string | null): Response {
  return errorResponse(error, anthropicErrorBody(error, requestId));
}
