import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Authenticator } from '../auth';
import { displayPrefix, generateApiKey, hashApiKey } from '../auth/api-key';
import type { Catalog } from '../catalog';
import { GatewayError, invalidRequest } from '../contract/errors';
import type { AccountsStore } from '../store/accounts';
import type { KeyRecord, KeysStore } from '../store/keys';

/**
 * Creating and revoking API keys: one code path for the admin API (`POST /admin/keys`,
 * `DELETE /admin/keys/{id}`) and the account holder's console.
 */

const capSchema = z.number().int().min(1).max(1_000_000_000);

/** The fields of a new key, as both APIs take them. */
export const keyFieldsSchema = {
  name: z.string().max(200).optional(),
  models: z.array(z.string().min(1)).min(1).max(1000).optional(),
  expires_at: z.union([z.string().min(1), z.number().int().positive()]).nullable().optional(),
  rpm: capSchema.optional(),
  tpm: capSchema.optional(),
};

const keyFields = z.object(keyFieldsSchema);
export type KeyFields = z.infer<typeof keyFields>;

export interface KeyDeps {
  accounts: Pick<AccountsStore, 'get'>;
  keys: KeysStore;
  catalog: Catalog;
}

export const keyNotFound = (id: string) => new GatewayError(404, 'invalid_request_error', 'not_found', `No key with id '${id}'.`);

/**
 * Checks the fields (models in the catalog, expiry in the future), then stores a new key for the
 * account. Returns the record and the plaintext key, which the caller shows once and never again.
 * `accountParam` names the field a 404 for a missing account points at.
 */
export async function createApiKey(
  deps: KeyDeps,
  accountId: string,
  fields: KeyFields,
  nowMs: number,
  accountParam: string | null = 'account_id',
): Promise<{ record: KeyRecord; key: string }> {
  for (const [i, model] of (fields.models ?? []).entries()) {
    if (!deps.catalog.get(model)) throw invalidRequest(`Unknown model '${model}'.`, `models[${i}]`, 'model_not_found');
  }
  let expiresAtMs: number | undefined;
  if (fields.expires_at !== undefined && fields.expires_at !== null) {
    expiresAtMs = expiryMs(fields.expires_at);
    if (expiresAtMs <= nowMs) throw invalidRequest('`expires_at` must be in the future.', 'expires_at');
  }
  const account = await deps.accounts.get(accountId);
  if (!account) throw new GatewayError(404, 'invalid_request_error', 'not_found', `No account with id '${accountId}'.`, { param: accountParam });
  const key = generateApiKey();
  const record: KeyRecord = {
    keyHash: hashApiKey(key),
    keyId: `key_${randomBytes(12).toString('hex')}`,
    accountId: account.id,
    name: fields.name ?? '',
    prefix: displayPrefix(key),
    status: 'active',
    createdAtMs: nowMs,
    expiresAtMs,
    models: fields.models,
    rpm: fields.rpm,
    tpm: fields.tpm,
    // Admission reads the account's limits from the key, so a cached key needs no account read.
    accountTier: account.tier,
    accountRpm: account.rpm,
    accountTpm: account.tpm,
  };
  await deps.keys.create(record);
  return { record, key };
}

/**
 * Revokes a key and drops it from this instance's auth cache (others within its lifetime).
 * With `ownerAccountId`, a key of another account is treated as unknown: undefined, never revoked.
 */
export async function revokeApiKey(
  deps: { keys: KeysStore; auth: Pick<Authenticator, 'forget'> },
  keyId: string,
  ownerAccountId?: string,
): Promise<KeyRecord | undefined> {
  if (ownerAccountId !== undefined) {
    const found = await deps.keys.getById(keyId);
    if (!found || found.accountId !== ownerAccountId) return undefined;
  }
  const revoked = await deps.keys.revoke(keyId);
  if (revoked) deps.auth.forget(revoked.keyHash);
  return revoked;
}

/** `expires_at`: unix seconds (number or digits), or an ISO 8601 date-time. */
export function expiryMs(value: string | number): number {
  if (typeof value === 'number' || /^\d+$/.test(value)) {
    const s = Number(value);
    if (!Number.isSafeInteger(s) || s > 1e11) throw invalidRequest('`expires_at` in unix seconds is out of range.', 'expires_at');
    return s * 1000;
  }
  const ms = isoMs(value);
  if (ms === undefined) throw invalidRequest('`expires_at` must be an ISO 8601 date-time or unix seconds.', 'expires_at');
  return ms;
}

/** An ISO 8601 date or date-time (`2025-01-31`, `2025-01-31T12:00:00Z`), else undefined. */
export function isoMs(value: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/i.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}
