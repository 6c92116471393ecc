import { Arn, ArnFormat, Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/** Catalog file format of ARCHITECTURE §8, repeated by value (lib/ never imports runtime code). */
export type ItapiProviderName = 'openai-compatible' | 'anthropic' | 'bedrock' | 'mock';

export interface ItapiCatalogRoute {
  readonly provider: ItapiProviderName;
  /** Upstream base URL for `openai-compatible` and `anthropic`; default: the provider's public API. */
  readonly base_url?: string;
  /** Entry of the provider-keys secret. */
  readonly secret?: string;
  /** The upstream's own model id (for Bedrock: a model id or a cross-region inference profile id). */
  readonly model: string;
  /** AWS region, for `bedrock`; default: the stack's region. */
  readonly region?: string;
  /** Where an `openai-compatible` upstream takes the output limit. @default max_completion_tokens for api.openai.com, else max_tokens */
  readonly output_limit_field?: 'max_tokens' | 'max_completion_tokens';
}

export interface ItapiCatalogModel {
  /** `embedding` models serve only `POST /v1/embeddings` and are priced per input token. @default chat */
  readonly kind?: 'chat' | 'embedding';
  readonly owned_by: string;
  readonly created?: number;
  /** `output_per_mtok` is required for chat models; embedding models have no output price. */
  readonly pricing: { readonly input_per_mtok: number; readonly output_per_mtok?: number; readonly cached_input_per_mtok?: number };
  readonly context_window: number;
  /** Required for chat models; not used by embedding models. */
  readonly max_output_tokens?: number;
  /** Embedding models: the length of their vectors; a request asking for more `dimensions` gets a 400. */
  readonly dimensions?: number;
  /** How the model counts an image: `"anthropic"` or OpenAI's tiles `{base, tile}`. @default by model family */
  readonly image_tokens?: 'anthropic' | { readonly base: number; readonly tile: number };
  readonly routes: ItapiCatalogRoute[];
}

export interface ItapiCatalog {
  readonly models: Record<string, ItapiCatalogModel>;
}

const PROVIDERS: readonly string[] = ['openai-compatible', 'anthropic', 'bedrock', 'mock'];

/** The providers of the runtime's built-in catalog (used for alarms when no catalog is given). */
export const BUILT_IN_CATALOG_PROVIDERS: readonly ItapiProviderName[] = ['openai-compatible', 'anthropic'];

/** Checks the parts of a catalog the stack relies on; the runtime validates the rest at start. */
export function validateCatalog(catalog: ItapiCatalog): void {
  if (!catalog || typeof catalog !== 'object' || !catalog.models || typeof catalog.models !== 'object') {
    throw new Error('catalog: expected an object {"models": {...}} (ARCHITECTURE §8)');
  }
  const ids = Object.keys(catalog.models);
  if (ids.length === 0) throw new Error('catalog: "models" is empty');
  for (const id of ids) {
    const model = catalog.models[id];
    if (!Array.isArray(model?.routes) || model.routes.length === 0) {
      throw new Error(`catalog: model "${id}" needs at least one route`);
    }
    model.routes.forEach((route, i) => {
      if (!PROVIDERS.includes(route.provider)) {
        throw new Error(`catalog: models["${id}"].routes[${i}].provider "${route.provider}" is not one of ${PROVIDERS.join(', ')}`);
      }
      if (typeof route.model !== 'string' || route.model.length === 0) {
        throw new Error(`catalog: models["${id}"].routes[${i}].model must be a non-empty string`);
      }
    });
  }
}

/** Distinct upstream providers a catalog routes to, `mock` left out. */
export function catalogProviders(catalog: ItapiCatalog): ItapiProviderName[] {
  const found = new Set<ItapiProviderName>();
  for (const model of Object.values(catalog.models)) {
    for (const route of model.routes) if (route.provider !== 'mock') found.add(route.provider);
  }
  return [...found].sort();
}

/** Cross-region inference profile ids start with a geography: `us.anthropic.claude-…`. */
const INFERENCE_PROFILE_PREFIX = /^(us|eu|apac|us-gov|ca|jp|au|global)\./;

/**
 * IAM resource ARNs for the Bedrock routes of a catalog: the foundation model in the route's
 * region, or for an inference profile the profile itself plus its model in any region the
 * profile may route to (`crossRegionModels` lists those models).
 */
export function bedrockResourceArns(scope: IConstruct, catalog: ItapiCatalog): { arns: string[]; crossRegionModels: string[] } {
  const stack = Stack.of(scope);
  const arns = new Set<string>();
  const crossRegionModels = new Set<string>();
  for (const model of Object.values(catalog.models)) {
    for (const route of model.routes) {
      if (route.provider !== 'bedrock') continue;
      const region = route.region ?? stack.region;
      const profile = INFERENCE_PROFILE_PREFIX.exec(route.model);
      if (profile) {
        arns.add(
          Arn.format(
            { service: 'bedrock', region, resource: 'inference-profile', resourceName: route.model, arnFormat: ArnFormat.SLASH_RESOURCE_NAME },
            stack,
          ),
        );
        const foundationModel = route.model.slice(profile[0].length);
        crossRegionModels.add(foundationModel);
        arns.add(
          Arn.format(
            { service: 'bedrock', region: '*', account: '', resource: 'foundation-model', resourceName: foundationModel, arnFormat: ArnFormat.SLASH_RESOURCE_NAME },
            stack,
          ),
        );
      } else {
        arns.add(
          Arn.format(
            { service: 'bedrock', region, account: '', resource: 'foundation-model', resourceName: route.model, arnFormat: ArnFormat.SLASH_RESOURCE_NAME },
            stack,
          ),
        );
      }
    }
  }
  return { arns: [...arns], crossRegionModels: [...crossRegionModels] };
}
