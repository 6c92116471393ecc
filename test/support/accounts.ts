import { randomBytes } from 'node:crypto';
import { displayPrefix, generateApiKey, hashApiKey } from '../../lambda/auth/api-key';
import type { Stores } from '../../lambda/runtime';
import type { KeyRecord } from '../../lambda/store/keys';

/** An account, its credits and its key, as the tests make them: straight in the stores. */
export interface FundedAccount {
  accountId: string;
  /** The key's plaintext (`it_…`), for a client's `Authorization` header. */
  key: string;
  record: KeyRecord;
}

export interface FundedAccountOptions {
  /** @default `acct_` and 12 random hex digits */
  accountId?: string;
  /** @default 'pro' */
  tier?: string;
  /** Topped up as the top-up `initial`; 0 tops up nothing. @default 10_000_000 ($10) */
  creditsMicroUsd?: number;
  /** The account's own limits (absent: the tier's), copied onto its key as the admin API does. */
  rpm?: number;
  tpm?: number;
  /** @default Date.now() */
  createdAtMs?: number;
  /** Fields of the key record beyond the defaults: own caps (`rpm`, `tpm`), `models`, `spendCapMicroUsd`, `expiresAtMs`, … */
  key?: Partial<KeyRecord>;
  /**
   * How the key is stored: `true` in the keys table, `{ accountsTable }` also counted on the account
   * item (as the admin API does, needed for per-key counters), `false` not at all (admission reads
   * the record the test holds). @default true
   */
  storeKey?: boolean | { accountsTable: string; maxKeys?: number };
}

type AccountStores = Pick<Stores, 'accounts' | 'keys'>;

/** Creates an account, tops it up and mints its first key. */
export async function fundedAccount(stores: AccountStores, options: FundedAccountOptions = {}): Promise<FundedAccount> {
  const accountId = options.accountId ?? `acct_${randomBytes(6).toString('hex')}`;
  const tier = options.tier ?? 'pro';
  const createdAtMs = options.createdAtMs ?? Date.now();
  await stores.accounts.create({ id: accountId, name: accountId, tier, balanceMicroUsd: 0, status: 'active', createdAtMs, rpm: options.rpm, tpm: options.tpm });
  const credits = options.creditsMicroUsd ?? 10_000_000;
  if (credits !== 0) await stores.accounts.topUp(accountId, credits, 'initial');
  const key = await mintKey(stores, accountId, {
    storeKey: options.storeKey,
    fields: { keyId: `key_${accountId}`, createdAtMs, accountTier: tier, accountRpm: options.rpm, accountTpm: options.tpm, ...options.key },
  });
  return { accountId, ...key };
}

/** A further key of an account; `fields` overrides the defaults (the tier `pro`, a random id, the name `test`). */
export async function mintKey(
  stores: Pick<Stores, 'keys'>,
  accountId: string,
  options: { fields?: Partial<KeyRecord>; storeKey?: FundedAccountOptions['storeKey'] } = {},
): Promise<{ key: string; record: KeyRecord }> {
  const key = generateApiKey();
  const record: KeyRecord = {
    keyHash: hashApiKey(key),
    keyId: `key_${randomBytes(6).toString('hex')}`,
    accountId,
    name: 'test',
    prefix: displayPrefix(key),
    status: 'active',
    createdAtMs: Date.now(),
    accountTier: 'pro',
    ...options.fields,
  };
  const storeKey = options.storeKey ?? true;
  if (storeKey) await stores.keys.create(record, storeKey === true ? undefined : storeKey);
  return { key, record };
}
