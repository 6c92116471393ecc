import { GatewayError, invalidRequest, serverOverloaded, upstreamError, upstreamTimeout } from '../../contract/errors';

/** An SDK exception (or an exception event inside ConverseStream) on the gateway's table. */
export function bedrockError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const name = err instanceof Error ? err.name : undefined;
  const message = err instanceof Error && err.message ? err.message.slice(0, 1000) : undefined;
  const detail = message ? `Amazon Bedrock: ${message}` : 'Amazon Bedrock failed.';
  switch (name) {
    case 'ValidationException':
      return invalidRequest(message ?? 'Amazon Bedrock rejected the request.', null);
    case 'ThrottlingException':
    case 'ServiceUnavailableException':
    case 'ModelNotReadyException':
    case 'ServiceQuotaExceededException':
      return serverOverloaded(`The upstream is overloaded; try again shortly. (${detail})`, { fallback: true, cause: err });
    case 'AccessDeniedException':
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
    case 'ExpiredTokenException':
      // The function's own role or model access is wrong: not the client's fault, and another route may work.
      return upstreamError('The gateway is not allowed to call this model on Amazon Bedrock.', { fallback: true, cause: err });
    case 'ModelTimeoutException':
      return upstreamTimeout(detail, { fallback: true, cause: err });
    default: {
      const status = httpStatusOf(err);
      if (status === 429) return serverOverloaded(`The upstream is overloaded; try again shortly. (${detail})`, { fallback: true, cause: err });
      // InternalServerException, ModelErrorException, ModelStreamErrorException, ResourceNotFoundException, network errors.
      return upstreamError(detail, { fallback: true, cause: err });
    }
  }
}

function httpStatusOf(err: unknown): number | undefined {
  if (err === null || typeof err !== 'object' || !('$metadata' in err)) return undefined;
  const metadata = (err as { $metadata?: { httpStatusCode?: number } }).$metadata;
  return metadata?.httpStatusCode;
}
