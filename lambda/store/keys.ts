import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { type Dynamo, isDynamoError } from './dynamo';
import type { WindowCounts } from '../limits/sliding-window';
import { countsFromItem } from './accounts';
import { KEYS_BY_ACCOUNT_INDEX, KEYS_BY_ID_INDEX } from './tables';

/** `disabled` refuses the key (401) until it is enabled again; `revoked` is for good. */
export type KeyStatus = 'active' | 'disabled' | 'revoked';

/** Keys an account may hold at once (active and disabled; revoked ones free their place). */
export const MAX_KEYS_PER_ACCOUNT = 50;

/** The calendar month (UTC) of a time, as a number: 202612 for December 2026. A spend cap counts per such month. */
export function monthOf(ms: number): number {
  const d = new Date(ms);
  return d.getUTCFullYear() * 100 + d.getUTCMonth() + 1;
}

/** What a spend-capped key's item says of its month: the cap, and spend plus holds taken in `month`. */
export interface KeySpend {
  capMicroUsd?: number;
  month: number;
  usedMicroUsd: number;
}

export function keySpendFromItem(item: Record<string, AttributeValue>): KeySpend {
  return {
    capMicroUsd: item.cap_musd?.N !== undefined ? Number(item.cap_musd.N) : undefined,
    month: Number(item.cap_month?.N ?? 0),
    usedMicroUsd: Number(item.cap_used?.N ?? 0),
  };
}

/** Thrown when an account already holds MAX_KEYS_PER_ACCOUNT keys. */
export class TooManyKeysError extends Error {
  constructor(readonly max: number) {
    super(`An account may hold at most ${max} keys (revoked ones do not count): revoke one first.`);
  }
}

export interface KeyRecord {
  keyHash: string;
  keyId: string;
  accountId: string;
  name: string;
  /** Display form, e.g. `it_Ab3…xYz9`; never enough to use the key. */
  prefix: string;
  status: KeyStatus;
  createdAtMs: number;
  expiresAtMs?: number;
  /** Models this key may use; absent means whatever the account's tier allows. */
  models?: string[];
  /** The key's own caps, lower than the account's. */
  rpm?: number;
  tpm?: number;
  /** The account's tier and custom limits as of the key's creation, so a cached key needs no account read. */
  accountTier?: string;
  accountRpm?: number;
  accountTpm?: number;
  /** The key's own monthly spend cap (UTC calendar month); absent means none. */
  spendCapMicroUsd?: number;
  /** Spend plus holds of the month `spendMonth`, as the key item last said (only keys with a cap keep it). */
  spendMonth?: number;
  spendUsedMicroUsd?: number;
  revokedAtMs?: number;
}

type Item = Record<string, AttributeValue>;

function toItem(k: KeyRecord): Item {
  const item: Item = {
    key_hash: { S: k.keyHash },
    key_id: { S: k.keyId },
    account_id: { S: k.accountId },
    name: { S: k.name },
    prefix: { S: k.prefix },
    status: { S: k.status },
    created_at_ms: { N: String(k.createdAtMs) },
  };
  if (k.expiresAtMs !== undefined) item.expires_at_ms = { N: String(k.expiresAtMs) };
  if (k.models) item.models = { L: k.models.map((m) => ({ S: m })) };
  if (k.rpm !== undefined) item.rpm = { N: String(k.rpm) };
  if (k.tpm !== undefined) item.tpm = { N: String(k.tpm) };
  if (k.accountTier) item.account_tier = { S: k.accountTier };
  if (k.accountRpm !== undefined) item.account_rpm = { N: String(k.accountRpm) };
  if (k.accountTpm !== undefined) item.account_tpm = { N: String(k.accountTpm) };
  if (k.spendCapMicroUsd !== undefined) item.cap_musd = { N: String(k.spendCapMicroUsd) };
  return item;
}

function fromItem(item: Item): KeyRecord {
  const rec: KeyRecord = {
    keyHash: item.key_hash.S!,
    keyId: item.key_id.S!,
    accountId: item.account_id.S!,
    name: item.name?.S ?? '',
    prefix: item.prefix?.S ?? '',
    status: (item.status?.S as KeyStatus) ?? 'active',
    createdAtMs: Number(item.created_at_ms?.N ?? 0),
  };
  if (item.expires_at_ms?.N) rec.expiresAtMs = Number(item.expires_at_ms.N);
  if (item.models?.L) rec.models = item.models.L.map((v) => v.S!);
  if (item.rpm?.N) rec.rpm = Number(item.rpm.N);
  if (item.tpm?.N) rec.tpm = Number(item.tpm.N);
  if (item.account_tier?.S) rec.accountTier = item.account_tier.S;
  if (item.account_rpm?.N) rec.accountRpm = Number(item.account_rpm.N);
  if (item.account_tpm?.N) rec.accountTpm = Number(item.account_tpm.N);
  if (item.cap_musd?.N !== undefined) {
    const spend = keySpendFromItem(item);
    rec.spendCapMicroUsd = spend.capMicroUsd;
    rec.spendMonth = spend.month;
    rec.spendUsedMicroUsd = spend.usedMicroUsd;
  }
  if (item.revoked_at_ms?.N) rec.revokedAtMs = Number(item.revoked_at_ms.N);
  return rec;
}

/** The keys table: one item per key, addressed by the key's SHA-256. */
export class KeysStore {
  constructor(
    private readonly client: Dynamo,
    private readonly tableName: string,
  ) {}

  async getByHash(keyHash: string): Promise<KeyRecord | undefined> {
    const out = await this.client.call('GetItem', { TableName: this.tableName, Key: { key_hash: { S: keyHash } } });
    return out.Item ? fromItem(out.Item) : undefined;
  }

  /** A capped key's own minute counters, read consistently (undefined for an unknown key). */
  async getCounts(keyHash: string): Promise<WindowCounts | undefined> {
    const out = await this.client.call('GetItem', { TableName: this.tableName, Key: { key_hash: { S: keyHash } }, ConsistentRead: true },
    );
    return out.Item ? countsFromItem(out.Item) : undefined;
  }

  /**
   * Stores a new key; with `accountsTable`, in one transaction with the account's key count
   * (`nkeys`, at most `maxKeys`), so that concurrent creations can never pass the limit.
   */
  async create(record: KeyRecord, count?: { accountsTable: string; maxKeys?: number }): Promise<void> {
    const put: TransactWriteItem = { Put: { TableName: this.tableName, Item: toItem(record), ConditionExpression: 'attribute_not_exists(key_hash)' } };
    if (!count) {
      await this.client.call('PutItem', put.Put!);
      return;
    }
    const max = count.maxKeys ?? MAX_KEYS_PER_ACCOUNT;
    try {
      await this.client.call('TransactWriteItems', {
        TransactItems: [
          {
            Update: {
              TableName: count.accountsTable,
              Key: { account_id: { S: record.accountId } },
              UpdateExpression: 'SET nkeys = if_not_exists(nkeys, :zero) + :one',
              ConditionExpression: 'attribute_exists(account_id) AND (attribute_not_exists(nkeys) OR nkeys < :max)',
              ExpressionAttributeValues: { ':zero': { N: '0' }, ':one': { N: '1' }, ':max': { N: String(max) } },
            },
          },
          put,
        ],
      });
    } catch (err) {
      if (isDynamoError(err, 'TransactionCanceledException') && err.CancellationReasons?.[0]?.Code === 'ConditionalCheckFailed') throw new TooManyKeysError(max);
      throw err;
    }
  }

  /**
   * Renames a key, disables or enables it, sets or removes (null) its monthly spend cap. A revoked
   * key changes no more: undefined, as for a key that does not exist.
   */
  async update(keyId: string, change: { name?: string; status?: 'active' | 'disabled'; spendCapMicroUsd?: number | null }): Promise<KeyRecord | undefined> {
    const found = await this.getById(keyId);
    if (!found || found.status === 'revoked') return undefined;
    const sets: string[] = [];
    const removes: string[] = [];
    const values: Item = { ':revoked': { S: 'revoked' } };
    const names: Record<string, string> = { '#s': 'status' };
    if (change.name !== undefined) {
      sets.push('#n = :name');
      names['#n'] = 'name';
      values[':name'] = { S: change.name };
    }
    if (change.status !== undefined) {
      sets.push('#s = :status');
      values[':status'] = { S: change.status };
    }
    if (change.spendCapMicroUsd === null) removes.push('cap_musd');
    else if (change.spendCapMicroUsd !== undefined) {
      sets.push('cap_musd = :cap');
      values[':cap'] = { N: String(change.spendCapMicroUsd) };
    }
    if (!sets.length && !removes.length) return found;
    try {
      const out = await this.client.call('UpdateItem', {
        TableName: this.tableName,
        Key: { key_hash: { S: found.keyHash } },
        UpdateExpression: [sets.length ? `SET ${sets.join(', ')}` : '', removes.length ? `REMOVE ${removes.join(', ')}` : ''].join(' ').trim(),
        ConditionExpression: 'attribute_exists(key_hash) AND #s <> :revoked',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_NEW',
      });
      return out.Attributes ? fromItem(out.Attributes) : undefined;
    } catch (err) {
      if (isDynamoError(err, 'ConditionalCheckFailedException')) return undefined;
      throw err;
    }
  }

  async getById(keyId: string): Promise<KeyRecord | undefined> {
    const out = await this.client.call('Query', {
        TableName: this.tableName,
        IndexName: KEYS_BY_ID_INDEX,
        KeyConditionExpression: 'key_id = :id',
        ExpressionAttributeValues: { ':id': { S: keyId } },
      },
    );
    return out.Items?.[0] ? fromItem(out.Items[0]) : undefined;
  }

  async listByAccount(accountId: string): Promise<KeyRecord[]> {
    const records: KeyRecord[] = [];
    let start: Item | undefined;
    do {
      const out = await this.client.call('Query', {
          TableName: this.tableName,
          IndexName: KEYS_BY_ACCOUNT_INDEX,
          KeyConditionExpression: 'account_id = :a',
          ExpressionAttributeValues: { ':a': { S: accountId } },
          ExclusiveStartKey: start,
        },
      );
      records.push(...(out.Items ?? []).map(fromItem));
      start = out.LastEvaluatedKey;
    } while (start);
    return records;
  }

  /** Keeps a key's copy of its account's tier and custom limits in step with the account. */
  async setAccountLimits(keyHash: string, limits: { tier: string; rpm?: number; tpm?: number }): Promise<void> {
    const sets = ['account_tier = :tier'];
    const removes: string[] = [];
    const values: Record<string, AttributeValue> = { ':tier': { S: limits.tier } };
    for (const field of ['rpm', 'tpm'] as const) {
      const value = limits[field];
      if (value === undefined) removes.push(`account_${field}`);
      else {
        sets.push(`account_${field} = :${field}`);
        values[`:${field}`] = { N: String(value) };
      }
    }
    await this.client.call('UpdateItem', {
        TableName: this.tableName,
        Key: { key_hash: { S: keyHash } },
        UpdateExpression: `SET ${sets.join(', ')}${removes.length ? ` REMOVE ${removes.join(', ')}` : ''}`,
        ConditionExpression: 'attribute_exists(key_hash)',
        ExpressionAttributeValues: values,
      },
    );
  }

  /**
   * Marks the key revoked; returns the updated record (a key revoked before comes back as it is),
   * or undefined when no such key exists. With `accountsTable`, the account's key count goes
   * down in the same transaction, once.
   */
  async revoke(keyId: string, accountsTable?: string): Promise<KeyRecord | undefined> {
    const found = await this.getById(keyId);
    if (!found) return undefined;
    if (found.status === 'revoked') return found;
    const nowMs = Date.now();
    const update = {
      TableName: this.tableName,
      Key: { key_hash: { S: found.keyHash } },
      UpdateExpression: 'SET #s = :revoked, revoked_at_ms = :now',
      ConditionExpression: 'attribute_exists(key_hash) AND #s <> :revoked',
      ExpressionAttributeNames: { '#s': 'status' },
      ExpressionAttributeValues: { ':revoked': { S: 'revoked' }, ':now': { N: String(nowMs) } },
    };
    try {
      if (!accountsTable) await this.client.call('UpdateItem', update);
      else {
        await this.client.call('TransactWriteItems', {
          TransactItems: [
            { Update: update },
            {
              Update: {
                TableName: accountsTable,
                Key: { account_id: { S: found.accountId } },
                UpdateExpression: 'SET nkeys = nkeys - :one',
                ConditionExpression: 'nkeys > :zero',
                ExpressionAttributeValues: { ':one': { N: '1' }, ':zero': { N: '0' } },
              },
            },
          ],
        });
      }
    } catch (err) {
      const reasons = isDynamoError(err, 'TransactionCanceledException') ? (err.CancellationReasons ?? []) : [];
      if (isDynamoError(err, 'ConditionalCheckFailedException') || reasons[0]?.Code === 'ConditionalCheckFailed') return this.getById(keyId);
      // An account whose keys predate the count (no `nkeys`): the key is revoked alone.
      if (reasons[1]?.Code === 'ConditionalCheckFailed') return this.revoke(keyId);
      throw err;
    }
    return { ...found, status: 'revoked', revokedAtMs: nowMs };
  }
}
