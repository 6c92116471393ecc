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
  /** The provider's shutdown day of this route (UTC `YYYY-MM-DD`); from that day `successor`'s routes serve instead. */
  readonly shutdown_date?: string;
  /** Another model id of the catalog whose routes replace this one from `shutdown_date` on. */
  readonly successor?: string;
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
      // Caught here rather than by a function that fails to start after the deploy.
      if (route.shutdown_date !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(route.shutdown_date)) {
        throw new Error(`catalog: models["${id}"].routes[${i}].shutdown_date "${route.shutdown_date}" is not a date YYYY-MM-DD`);
      }
      if (route.successor !== undefined && (route.successor === id || !catalog.models[route.successor])) {
        throw new Error(`catalog: models["${id}"].routes[${i}].successor "${route.successor}" is not another model of the catalog`);
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

/**
 * System-defined (cross-Region) inference profile ids start with a geography or `global`:
 * `us.anthropic.claude-sonnet-4-5-20250929-v1:0`, `global.anthropic.claude-…`.
 */
const INFERENCE_PROFILE_PREFIX = /^(us|us-gov|eu|apac|ca|jp|au|in|global)\./;

/** The Bedrock resources a catalog's routes invoke, and how the function's role must be granted them. */
export interface BedrockGrants {
  /** Granted as they are: foundation models in their route's region, inference profiles, application inference profiles, other model ARNs. */
  readonly direct: string[];
  /**
   * Foundation models (and the system profiles an application profile may wrap) that are reached
   * only through one of `profiles`: granted on condition `bedrock:InferenceProfileArn` ∈ `profiles`,
   * in every region, since a profile routes to any destination Region of its geography.
   */
  readonly throughProfiles: { readonly resources: string[]; readonly profiles: string[] };
  /** Models granted in every region through a profile (cdk-nag acknowledges each wildcard). */
  readonly crossRegionModels: string[];
  /** True when an application inference profile hides its model: any model is granted through it. */
  readonly anyModelThroughApplicationProfiles: boolean;
}

/**
 * IAM resources for the Bedrock routes of a catalog, as the Bedrock User Guide states them:
 * - a foundation model id: that model in the route's region;
 * - a system-defined inference profile (`us.…`, `eu.…`, `global.…`, or its ARN): the profile in the
 *   route's region, plus its model in every destination Region (and, for `global.`, the
 *   Region-less model ARN), only through the profile;
 * - an application inference profile ARN: the profile, plus whatever model or system profile it
 *   wraps (not knowable from the ARN), only through the profile;
 * - any other ARN (provisioned or custom model): that ARN.
 */
export function bedrockGrants(scope: IConstruct, catalog: ItapiCatalog): BedrockGrants {
  const stack = Stack.of(scope);
  const arn = (region: string, account: string, resource: string, resourceName: string) =>
    Arn.format({ service: 'bedrock', region, account, resource, resourceName, arnFormat: ArnFormat.SLASH_RESOURCE_NAME }, stack);
  const direct = new Set<string>();
  const through = new Set<string>();
  const profiles = new Set<string>();
  const crossRegionModels = new Set<string>();
  let anyModelThroughApplicationProfiles = false;

  const systemProfile = (profileArn: string, profileId: string) => {
    const geography = INFERENCE_PROFILE_PREFIX.exec(profileId);
    if (!geography) throw new Error(`catalog: "${profileId}" is not a system-defined inference profile id`);
    const model = profileId.slice(geography[0].length);
    direct.add(profileArn);
    profiles.add(profileArn);
    crossRegionModels.add(model);
    through.add(arn('*', '', 'foundation-model', model));
    // A global profile also authorizes the model under a Region-less ARN.
    if (geography[1] === 'global') through.add(arn('', '', 'foundation-model', model));
  };

  for (const model of Object.values(catalog.models)) {
    for (const route of model.routes) {
      if (route.provider !== 'bedrock') continue;
      const region = route.region ?? stack.region;
      if (route.model.startsWith('arn:')) {
        const parsed = Arn.split(route.model, ArnFormat.SLASH_RESOURCE_NAME);
        if (parsed.service !== 'bedrock' || !parsed.resourceName) throw new Error(`catalog: "${route.model}" is not an Amazon Bedrock model ARN`);
        if (parsed.resource === 'inference-profile') {
          systemProfile(route.model, parsed.resourceName);
        } else if (parsed.resource === 'application-inference-profile') {
          direct.add(route.model);
          profiles.add(route.model);
          anyModelThroughApplicationProfiles = true;
        } else {
          direct.add(route.model);
        }
      } else if (INFERENCE_PROFILE_PREFIX.test(route.model)) {
        systemProfile(arn(region, stack.account, 'inference-profile', route.model), route.model);
      } else {
        direct.add(arn(region, '', 'foundation-model', route.model));
      }
    }
  }
  if (anyModelThroughApplicationProfiles) {
    through.add(arn('*', '', 'foundation-model', '*'));
    through.add(arn('', '', 'foundation-model', '*'));
    through.add(arn('*', stack.account, 'inference-profile', '*'));
  }
  return {
    direct: [...direct],
    throughProfiles: { resources: [...through], profiles: [...profiles] },
    crossRegionModels: [...crossRegionModels],
    anyModelThroughApplicationProfiles,
  };
}
