import type { BedrockRuntimeClient, BedrockRuntimeClientConfig, ConverseStreamOutput } from '@aws-sdk/client-bedrock-runtime';
import { upstreamError } from '../../contract/errors';
import type { ChatCompletionChunk } from '../../contract/openai';
import type { RouteConfig } from '../../catalog';
import type { Provider, ProviderCall } from '../types';
import { UpstreamDeadline } from '../upstream-deadline';
import { bedrockEmbeddings } from './embeddings';
import { bedrockError, targetOf } from './errors';
import { bedrockRequest } from './request';
import { bedrockSdk } from './sdk';
import { bedrockResponseToCompletion } from './response';
import { summarizesThinking } from '../../money/thinking';
import { BedrockStreamMapper } from './stream';

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
 * Amazon Bedrock's Converse and ConverseStream behind the OpenAI contract. The region is the
 * route's `region`, else `AWS_REGION`; no secret is needed.
 *
 * @example
 * const provider = bedrockProvider();
 * await provider.stream({ request, route: { provider: 'bedrock', model: 'anthropic.claude-3-5-sonnet-20241022-v2:0', region: 'us-east-1' }, ... });
 */
export function bedrockProvider(options: BedrockProviderOptions = {}): Provider {
  const createClient = options.createClient ?? defaultBedrockClient;
  const clients = new Map<string, Promise<BedrockRuntimeClient>>();
  const clientFor = (route: RouteConfig): Promise<BedrockRuntimeClient> => {
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

  return {
    async complete(call) {
      const plan = bedrockRequest(call.request, call.route.model, call.maxOutputTokens);
      const [client, { ConverseCommand }] = await Promise.all([clientFor(call.route), bedrockSdk()]);
      const deadline = new UpstreamDeadline(call.signal, 'Amazon Bedrock');
      // Converse answers only once the whole completion exists: the total limit is the one that applies.
      deadline.arm('total', call.timeouts.totalMs);
      try {
        const response = await client.send(new ConverseCommand(plan.input), { abortSignal: deadline.signal });
        return bedrockResponseToCompletion(response, {
          id: completionId(response.$metadata.requestId, call),
          model: call.route.model,
          jsonToolName: plan.jsonToolName,
        });
      } catch (err) {
        throw deadline.failure(bedrockError(err, targetOf(call.route)), true);
      } finally {
        deadline.dispose();
      }
    },

    async stream(call) {
      const plan = bedrockRequest(call.request, call.route.model, call.maxOutputTokens);
      const [client, { ConverseStreamCommand }] = await Promise.all([clientFor(call.route), bedrockSdk()]);
      const deadline = new UpstreamDeadline(call.signal, 'Amazon Bedrock');
      let events: AsyncIterator<ConverseStreamOutput>;
      let mapper: BedrockStreamMapper;
      let first: ChatCompletionChunk[] = [];
      try {
        deadline.arm('first_byte', call.timeouts.firstByteMs);
        const response = await client.send(new ConverseStreamCommand(plan.input), { abortSignal: deadline.signal });
        deadline.disarm('first_byte');
        if (!response.stream) throw upstreamError('Amazon Bedrock sent no stream.', { fallback: true });
        const thinking = (plan.input.additionalModelRequestFields as { thinking?: { budget_tokens: number } } | undefined)?.thinking;
        mapper = new BedrockStreamMapper(
          completionId(response.$metadata.requestId, call),
          call.route.model,
          plan.jsonToolName,
          thinking && { budgetTokens: thinking.budget_tokens, outputLimit: plan.input.inferenceConfig!.maxTokens!, summarized: summarizesThinking(call.route.model) },
        );
        events = response.stream[Symbol.asyncIterator]();
        // Read up to messageStart before answering: a throttling event as the first one can still fall back.
        while (first.length === 0) {
          const next = await nextWithin(events, deadline, call.timeouts.idleMs);
          if (next.done) {
            mapper.end();
            break;
          }
          first = mapper.push(next.value);
        }
      } catch (err) {
        deadline.dispose(true);
        throw deadline.failure(bedrockError(err, targetOf(call.route)), true);
      }
      return relay(first, events, mapper, deadline, call.timeouts.idleMs);
    },

    async embed(call) {
      return bedrockEmbeddings(call, await clientFor(call.route));
    },
  };
}

function completionId(requestId: string | undefined, call: ProviderCall): string {
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

async function* relay(
  first: ChatCompletionChunk[],
  events: AsyncIterator<ConverseStreamOutput>,
  mapper: BedrockStreamMapper,
  deadline: UpstreamDeadline,
  idleMs: number,
): AsyncGenerator<ChatCompletionChunk> {
  try {
    yield* first;
    while (!mapper.finished) {
      let next: IteratorResult<ConverseStreamOutput>;
      try {
        next = await nextWithin(events, deadline, idleMs);
        // An aborted SDK stream may just end: the deadline says whether it was a timeout.
        if (next.done) mapper.end();
      } catch (err) {
        throw deadline.failure(bedrockError(err), false);
      }
      if (next.done) return;
      yield* mapper.push(next.value);
    }
  } finally {
    deadline.dispose(true);
    await events.return?.().catch(() => undefined);
  }
}
