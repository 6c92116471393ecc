import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CatalogFile } from '../../lambda/catalog';
import { defaultProviders } from '../../lambda/providers';
import { jsonReply, route as bedrockRoute, testBedrockProvider } from '../providers/bedrock/stand-in';
import { StandIn } from '../providers/stand-in';
import { catalogOf, startTestGateway, type TestGateway } from './gateway';
import { startUpstream } from './upstream';

/**
 * A gateway with one model per kind of route, each on a loopback stand-in: `oa` (OpenAI-compatible,
 * answered by `serve`), `cl` (Anthropic, the same stand-in) and `cl-bedrock` (Bedrock, a stand-in
 * that answers "never" unless a test routes it otherwise), plus any `more` models.
 */
export const MAX_OUTPUT = 1000;

type Models = CatalogFile['models'];

export function threeRouteCatalog(oa: { model: string; pricing?: Models[string]['pricing'] }, more: Models = {}): CatalogFile {
  return {
    models: {
      oa: {
        owned_by: 'test',
        pricing: oa.pricing ?? { input_per_mtok: 2, output_per_mtok: 8 },
        context_window: 100_000,
        max_output_tokens: MAX_OUTPUT,
        routes: [{ provider: 'openai-compatible', base_url: 'http://placeholder/v1', model: oa.model }],
      },
      cl: {
        owned_by: 'anthropic',
        pricing: { input_per_mtok: 3, output_per_mtok: 15 },
        context_window: 200_000,
        max_output_tokens: MAX_OUTPUT,
        routes: [{ provider: 'anthropic', base_url: 'http://placeholder', model: 'claude-up' }],
      },
      'cl-bedrock': {
        owned_by: 'anthropic',
        pricing: { input_per_mtok: 3, output_per_mtok: 15 },
        context_window: 200_000,
        max_output_tokens: MAX_OUTPUT,
        routes: [{ provider: 'bedrock', base_url: 'http://placeholder', region: 'us-east-1', model: 'anthropic.claude-sonnet-4-6' }],
      },
      ...more,
    },
  };
}

export interface ThreeRoutes {
  gw: TestGateway;
  upstream: Awaited<ReturnType<typeof startUpstream>>;
  bedrock: StandIn;
  /** Sets the Bedrock stand-in back to its default answer (call before each test). */
  resetBedrock(): void;
  stop(): Promise<void>;
}

export async function startThreeRoutes(catalog: CatalogFile, serve: (req: IncomingMessage, body: any, res: ServerResponse) => void): Promise<ThreeRoutes> {
  const upstream = await startUpstream(async (req, body, res) => serve(req, body, res));
  const bedrock = new StandIn('h2c');
  const bedrockUrl = await bedrock.start();
  for (const model of Object.values(catalog.models)) {
    for (const r of model.routes) {
      if (r.provider === 'openai-compatible') r.base_url = upstream.url;
      if (r.provider === 'anthropic') r.base_url = upstream.url.replace(/\/v1$/, '');
      if (r.provider === 'bedrock') r.base_url = bedrockUrl;
    }
  }
  const gw = await startTestGateway({ catalog: catalogOf(catalog), providers: { ...defaultProviders(), bedrock: testBedrockProvider() } });
  const resetBedrock = () =>
    bedrockRoute(bedrock, { converse: jsonReply({ output: { message: { role: 'assistant', content: [{ text: 'never' }] } }, stopReason: 'end_turn', usage: { inputTokens: 1, outputTokens: 1, totalTokens: 2 } }) });
  resetBedrock();
  return {
    gw,
    upstream,
    bedrock,
    resetBedrock,
    stop: async () => {
      await gw.stop();
      await upstream.close();
      await bedrock.stop();
    },
  };
}

/** One token's log probability as OpenAI's Chat answers `logprobs: true, top_logprobs: n`. */
export function openaiLogprob(token: string, value: number, top: Array<[string, number]>) {
  const bytes = (t: string) => [...Buffer.from(t, 'utf8')];
  return { token, logprob: value, bytes: bytes(token), top_logprobs: top.map(([t, v]) => ({ token: t, logprob: v, bytes: bytes(t) })) };
}
