import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { serverOverloaded } from '../contract/errors';

/** Upstream API keys by the name a catalog route gives in `secret`. */
export interface ProviderKeys {
  get(name: string): Promise<string | undefined>;
}

/** The environment variable that holds a route's `secret` locally: `openai` → `ITAPI_SECRET_OPENAI`. */
export function providerKeyVariable(name: string): string {
  return `ITAPI_SECRET_${name.toUpperCase().replace(/-/g, '_')}`;
}

/** Local mode: `ITAPI_SECRET_<NAME>` from the environment. */
export function envProviderKeys(env: NodeJS.ProcessEnv = process.env): ProviderKeys {
  return {
    async get(name) {
      return env[providerKeyVariable(name)] || undefined;
    },
  };
}

/** True when the environment holds at least one provider key (Stripe's entries are not provider keys). */
export function hasEnvProviderKeys(env: NodeJS.ProcessEnv = process.env): boolean {
  return Object.keys(env).some((k) => k.startsWith('ITAPI_SECRET_') && !k.startsWith('ITAPI_SECRET_STRIPE_') && env[k]);
}

const SECRET_TTL_MS = 5 * 60_000;

/** AWS: one Secrets Manager secret holding a JSON object `{name: key}`, cached for five minutes. */
export function secretsManagerProviderKeys(secretId: string, client?: SecretsManagerClient): ProviderKeys {
  let cached: { values: Record<string, string>; expiresMs: number } | undefined;
  let inflight: Promise<Record<string, string>> | undefined;

  async function load(): Promise<Record<string, string>> {
    // Loaded on the first read, not at start: a cold start that serves the console or a 401 never needs it.
    const { SecretsManagerClient, GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
    client ??= new SecretsManagerClient({});
    const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
    const parsed: unknown = JSON.parse(out.SecretString ?? '{}');
    if (parsed === null || typeof parsed !== 'object') throw new Error('provider-keys secret is not a JSON object');
    return parsed as Record<string, string>;
  }

  return {
    async get(name) {
      if (!cached || cached.expiresMs < Date.now()) {
        inflight ??= load().finally(() => (inflight = undefined));
        try {
          cached = { values: await inflight, expiresMs: Date.now() + SECRET_TTL_MS };
        } catch (err) {
          throw serverOverloaded('The provider-keys secret could not be read.', { cause: err });
        }
      }
      const value = cached.values[name];
      return typeof value === 'string' && value ? value : undefined;
    },
  };
}
