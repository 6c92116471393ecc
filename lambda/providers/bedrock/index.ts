import type { BedrockRuntimeClient, BedrockRuntimeClientConfig, ConverseResponse, ConverseStreamOutput } from '@aws-sdk/client-bedrock-runtime';
import { upstreamError } from '../../contract/errors';
import type { RouteConfig } from '../../catalog';
import type { AnswerProvider, ProviderCall } from '../types';
import { openDecodedStream, type StreamDecoder } from '../open-stream';
import { UpstreamDeadline } from '../upstream-deadline';
import { bedrockEmbeddings } from './embeddings';
import { bedrockError, targetOf } from './errors';
import { converseRequest, type BedrockRequestPlan } from './request';
import { bedrockSdk } from './sdk';
import { answerOfConverse } from './response';
import { summarizesThinking } from '../../money/thinking';
import { ConverseEventDecoder } from './stream';

export interface BedrockClientSettings {
  region: string;
  /** The route's `base_url`: an endpoint override (a VPC endpoint, or a stand-in in tests). */
  endpoint?: string;
}

export interface BedrockProviderOptions {
  /**
   * Builds the client for a region and endpoint; called once per pair, the client is reused.
   * @default a client with the default credential chain (the function's IAM role) and no SDK retries
   */
  createClient?: (settings: BedrockClientSettings) => BedrockRuntimeClient | Promise<BedrockRuntimeClient>;
}


/** The SDK's own retries would delay the fall-through to the next route; the pipeline decides instead. */
const DEFAULT_CLIENT_CONFIG: Partial<BedrockRuntimeClientConfig> = { maxAttempts: 1 };

export async function defaultBedrockClient(settings: BedrockClientSettings): Promise<BedrockRuntimeClient> {
  const { BedrockRuntimeClient } = await bedrockSdk();
  return new BedrockRuntimeClient({ ...DEFAULT_CLIENT_CONFIG, region: settings.region, ...(settings.endpoint ? { endpoint: settings.endpoint } : {}) });
}

/**
 * Amazon Bedrock's Converse and ConverseStream in the canonical model (issue 18): a `Call` in,
 * `AnswerEvent`s out, Claude's reasoning blocks kept (text and signature, redacted bytes) and
 * usage with every class Bedrock reports. Errors map to GatewayErrors (throttling and 5xx fall through); the route's `region`, else `AWS_REGION`; no secret needed.
 *
 * @example
 * const provider = bedrockAnswerProvider();
 * const events = await provider.answerStream({ request: call, route: { provider: 'bedrock', model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', region: 'us-east-1' }, ... });
 */
export function bedrockAnswerProvider(options: BedrockProviderOptions = {}): AnswerProvider {
  const clientFor = bedrockClients(options.createClient ?? defaultBedrockClient);

  return {
    async answer(call) {
      const plan = converseRequest(call.request, call.route.model);
      const { response, id } = await converse(plan, call, await clientFor(call.route));
      return answerOfConverse(response, { id, model: call.route.model, jsonToolName: plan.jsonToolName });
    },

    async answerStream(call) {
      const plan = converseRequest(call.request, call.route.model);
      return converseStream(plan, call, await clientFor(call.route), (id) => new ConverseEventDecoder(id, call.route.model, plan.jsonToolName));
    },

    thinkingBilling(call) {
      // Claude on Bedrock bills summarized thinking in full, like Anthropic: the meter's upward rule needs the budget sent.
      const plan = converseRequest(call.request, call.route.model);
      const thinking = (plan.input.additionalModelRequestFields as { thinking?: { type?: string; budget_tokens?: number } } | undefined)?.thinking;
      if (thinking?.type !== 'enabled' && thinking?.type !== 'adaptive') return undefined;
      return {
        ...(thinking.budget_tokens !== undefined && { budgetTokens: thinking.budget_tokens }),
        outputLimit: plan.input.inferenceConfig?.maxTokens ?? call.request.settings.maxOutputTokens,
        summarized: summarizesThinking(call.route.model),
      };
    },

    async embed(call) {
      return bedrockEmbeddings(call, await clientFor(call.route));
    },
  };
}

/** One client per region and endpoint, made on first use. */
function bedrockClients(createClient: NonNullable<BedrockProviderOptions['createClient']>): (route: RouteConfig) => Promise<BedrockRuntimeClient> {
  const clients = new Map<string, Promise<BedrockRuntimeClient>>();
  return (route) => {
    const region = route.region ?? process.env.AWS_REGION;
    if (!region) throw upstreamError(`The Bedrock route for '${route.model}' names no region and AWS_REGION is not set.`, { fallback: true });
    const key = `${region} ${route.base_url ?? ''}`;
    let client = clients.get(key);
    if (!client) {
      client = Promise.resolve(createClient({ region, ...(route.base_url ? { endpoint: route.base_url } : {}) }));
      clients.set(key, client);
    }
    return client;
  };
}

/** What one upstream call needs besides its Converse input, in either request model. */
type ConverseCall = Pick<ProviderCall<unknown>, 'route' | 'signal' | 'timeouts' | 'requestId'>;

/** One Converse call under the total deadline (Converse answers only once the whole answer exists). */
async function converse(plan: BedrockRequestPlan, call: ConverseCall, client: BedrockRuntimeClient): Promise<{ response: ConverseResponse; id: string }> {
  const { ConverseCommand } = await bedrockSdk();
  const deadline = UpstreamDeadline.whole(call, 'Amazon Bedrock');
  try {
    const response = await client.send(new ConverseCommand(plan.input), { abortSignal: deadline.signal });
    return { response, id: completionId(response.$metadata.requestId, call) };
  } catch (err) {
    throw deadline.failure(bedrockError(err, targetOf(call.route)), true);
  } finally {
    deadline.dispose();
  }
}

/**
 * Opens a ConverseStream and reads up to messageStart before answering (a throttling event as the
 * first one can still fall back); the rest is relayed under the idle deadline.
 */
async function converseStream<T>(
  plan: BedrockRequestPlan,
  call: ConverseCall,
  client: BedrockRuntimeClient,
  decoderFor: (id: string) => StreamDecoder<ConverseStreamOutput, T>,
): Promise<AsyncIterable<T>> {
  const { ConverseStreamCommand } = await bedrockSdk();
  const deadline = new UpstreamDeadline(call.signal, 'Amazon Bedrock');
  return openDecodedStream({
    deadline,
    async open() {
      deadline.arm('first_byte', call.timeouts.firstByteMs);
      const response = await client.send(new ConverseStreamCommand(plan.input), { abortSignal: deadline.signal });
      deadline.disarm('first_byte');
      if (!response.stream) throw upstreamError('Amazon Bedrock sent no stream.', { fallback: true });
      return { events: response.stream[Symbol.asyncIterator](), decoder: decoderFor(completionId(response.$metadata.requestId, call)) };
    },
    read: (events) => nextWithin(events, deadline, call.timeouts.idleMs),
    toError: (err) => bedrockError(err, targetOf(call.route)),
  });
}

function completionId(requestId: string | undefined, call: Pick<ProviderCall<unknown>, 'requestId'>): string {
  return `chatcmpl-${requestId ?? call.requestId}`;
}

async function nextWithin<T>(events: AsyncIterator<T>, deadline: UpstreamDeadline, idleMs: number): Promise<IteratorResult<T>> {
  deadline.arm('idle', idleMs);
  try {
    return await events.next();
  } finally {
    deadline.disarm('idle');
  }
}
