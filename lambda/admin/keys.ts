import { randomBytes } from 'node:crypto';
import type { z as zodTypes } from 'zod';
import { zodOnFirstUse } from '../contract/zod';
import type { Authenticator } from '../auth';
import { displayPrefix, generateApiKey, hashApiKey } from '../auth/api-key';
import type { Catalog } from '../catalog';
import { GatewayError, invalidRequest } from '../contract/errors';
import type { AccountsStore } from '../store/accounts';
import { type KeyRecord, type KeysStore, MAX_KEYS_PER_ACCOUNT, TooManyKeysError } from '../store/keys';
import { usdParam } from './request-body';

// The one zod the chat bundle's schemas use too (lambda/contract/zod.ts): one copy in each bundle.
const { z } = zodOnFirstUse();

/**
 * Creating and revoking API keys: one code path for the admin API (`POST /admin/keys`,
 * `DELETE /admin/keys/{id}`) and the account holder's console.
 */

const capSchema = z.number().int().min(1).max(1_000_000_000);

/**
 * Characters a key name may not hold: control characters (line breaks included), line and
 * paragraph separators, and the bidirectional controls that can make a name read as another.
 */
const NOT_PRINTABLE = /[\p{Cc}\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

/** A key's name: one line of printable text, at most 200 characters. */
export const keyNameSchema = z
  .string()
  .max(200)
  .refine((name) => !NOT_PRINTABLE.test(name), 'must be one line of printable text (no control, line-break or bidirectional characters)');

/** A monthly spend cap in US dollars (a number or a decimal string); null removes it. */
const spendCapSchema = z.union([z.number(), z.string()]).nullable();

/** The fields of a new key, as both APIs take them. */
export const keyFieldsSchema = {
  name: keyNameSchema.optional(),
  monthly_spend_cap_usd: spendCapSchema.optional(),
  models: z.array(z.string().min(1)).min(1).max(1000).optional(),
  expires_at: z.union([z.string().min(1), z.number().int().positive()]).nullable().optional(),
  rpm: capSchema.optional(),
  tpm: capSchema.optional(),
};

const keyFields = z.object(keyFieldsSchema);
export type KeyFields = zodTypes.infer<typeof keyFields>;

/** What may change on a key (admin `PATCH /admin/keys/{id}`, console `PATCH /console/api/keys/{id}`). */
export const keyChangeSchema = z.strictObject({
  name: keyNameSchema.optional(),
  status: z.enum(['active', 'disabled']).optional(),
  monthly_spend_cap_usd: spendCapSchema.optional(),
});
export type KeyChange = zodTypes.infer<typeof keyChangeSchema>;

/** A spend cap in micro-USD: more than zero, at most $1,000,000 a month. */
export function spendCapMicroUsd(value: number | string, param = 'monthly_spend_cap_usd'): number {
  const micro = usdParam(value, param);
  if (micro <= 0 || micro > 1_000_000 * 1_000_000) throw invalidRequest(`Invalid value for '${param}': a monthly spend cap is more than $0 and at most $1,000,000.`, param);
  return micro;
}

export interface KeyDeps {
  accounts: Pick<AccountsStore, 'get' | 'tableName'>;
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
  const spendCap = fields.monthly_spend_cap_usd === undefined || fields.monthly_spend_cap_usd === null ? undefined : spendCapMicroUsd(fields.monthly_spend_cap_usd);
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
    spendCapMicroUsd: spendCap,
    // Admission reads the account's limits from the key, so a cached key needs no account read.
    accountTier: account.tier,
    accountRpm: account.rpm,
    accountTpm: account.tpm,
  };
  try {
    await deps.keys.create(record, { accountsTable: deps.accounts.tableName, maxKeys: MAX_KEYS_PER_ACCOUNT });
  } catch (err) {
    if (err instanceof TooManyKeysError) throw new GatewayError(409, 'invalid_request_error', 'too_many_keys', err.message);
    throw err;
  }
  return { record, key };
}

/**
 * Revokes a key and drops it from this instance's auth cache (others within its lifetime).
 * With `ownerAccountId`, a key of another account is treated as unknown: undefined, never revoked.
 */
export async function revokeApiKey(
  deps: { keys: KeysStore; auth: Pick<Authenticator, 'forget'>; accounts?: Pick<AccountsStore, 'tableName'> },
  keyId: string,
  ownerAccountId?: string,
): Promise<KeyRecord | undefined> {
  if (ownerAccountId !== undefined) {
    const found = await deps.keys.getById(keyId);
    if (!found || found.accountId !== ownerAccountId) return undefined;
  }
  const revoked = await deps.keys.revoke(keyId, deps.accounts?.tableName);
  if (revoked) deps.auth.forget(revoked.keyHash);
  return revoked;
}

/**
 * Renames a key, disables or enables it, sets or removes its monthly spend cap, and drops it from
 * this instance's auth cache (other instances read it again within 5 s). With `ownerAccountId`,
 * another account's key is unknown. Undefined for an unknown or revoked key.
 */
export async function updateApiKey(
  deps: { keys: KeysStore; auth: Pick<Authenticator, 'forget'> },
  keyId: string,
  change: KeyChange,
  ownerAccountId?: string,
): Promise<KeyRecord | undefined> {
  const cap = change.monthly_spend_cap_usd;
  const spendCap = cap === undefined ? undefined : cap === null ? null : spendCapMicroUsd(cap);
  if (ownerAccountId !== undefined) {
    const found = await deps.keys.getById(keyId);
    if (!found || found.accountId !== ownerAccountId) return undefined;
  }
  const updated = await deps.keys.update(keyId, { name: change.name, status: change.status, spendCapMicroUsd: spendCap });
  if (updated) deps.auth.forget(updated.keyHash);
  return updated;
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
