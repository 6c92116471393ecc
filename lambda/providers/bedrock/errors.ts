import { GatewayError, invalidRequest, serverOverloaded, upstreamError, upstreamTimeout } from '../../contract/errors';

/** Which model of which Region the failed call was for, to name it in what the client reads. */
export interface BedrockTarget {
  model: string;
  region?: string;
}

/**
 * Bedrock's answers when the account has not completed a third-party model's first use: the
 * AWS Marketplace subscription made on first invocation failed (AccessDeniedException), or
 * Anthropic's use case form is missing (ResourceNotFoundException). See docs/DEPLOY.md.
 */
const FIRST_USE_PENDING = /aws-marketplace|marketplace subscription|model access is denied|don't have access to the model|use case (details|form)|use-case form/i;

/** A model that needs an inference profile was called by its foundation model id. */
const NEEDS_INFERENCE_PROFILE = /on-demand throughput isn.t supported|inference profile/i;

/** A model the provider marked legacy or retired. */
const MODEL_RETIRED = /marked by provider as legacy|end of its life|reached the end/i;

/** An SDK exception (or an exception event inside ConverseStream) on the gateway's table. */
/** The model and Region an error names (model access, a wrong Region). */
export function targetOf(route: { model: string; region?: string }): BedrockTarget {
  return { model: route.model, region: route.region ?? process.env.AWS_REGION };
}

export function bedrockError(err: unknown, target?: BedrockTarget): GatewayError {
  if (err instanceof GatewayError) return err;
  const name = err instanceof Error ? err.name : undefined;
  const message = err instanceof Error && err.message ? err.message.slice(0, 1000) : undefined;
  const detail = message ? `Amazon Bedrock: ${message}` : 'Amazon Bedrock failed.';
  const model = target ? `'${target.model}'${target.region ? ` in ${target.region}` : ''}` : 'this model';
  // Operator-side setup, not the client's doing: a 502 that names the fix, and the next route may work.
  const setup = (what: string) => upstreamError(`${what} (${detail})`, { fallback: true, cause: err });
  if (message && FIRST_USE_PENDING.test(message) && (name === 'AccessDeniedException' || name === 'ResourceNotFoundException' || name === 'ValidationException')) {
    return setup(
      `Amazon Bedrock has not enabled ${model} for the gateway's AWS account yet: its operator must complete the model's first use ` +
        `(the AWS Marketplace subscription and, for Anthropic models, the use case form; see docs/DEPLOY.md, "Amazon Bedrock models"), then retry after about 15 minutes.`,
    );
  }
  if (message && MODEL_RETIRED.test(message)) {
    return setup(`Amazon Bedrock no longer serves ${model} to this account: the gateway's operator must route this model to a current one in the catalog.`);
  }
  switch (name) {
    case 'ValidationException':
      if (message && NEEDS_INFERENCE_PROFILE.test(message)) {
        return setup(`Amazon Bedrock serves ${model} only through an inference profile: the gateway's operator must route it to a profile id such as 'us.${target?.model ?? '<model id>'}' in the catalog.`);
      }
      return invalidRequest(message ?? 'Amazon Bedrock rejected the request.', null);
    case 'ThrottlingException':
    case 'ServiceUnavailableException':
    case 'ModelNotReadyException':
    case 'ServiceQuotaExceededException':
      return serverOverloaded(`The upstream is overloaded; try again shortly. (${detail})`, { fallback: true, cause: err });
    case 'AccessDeniedException':
      return setup(`The gateway's IAM role may not invoke ${model} on Amazon Bedrock: the catalog route and the deployed stack's grant disagree (deploy the stack again after changing the catalog).`);
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
    case 'ExpiredTokenException':
      // The function's own credentials are wrong: not the client's fault, and another route may work.
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
