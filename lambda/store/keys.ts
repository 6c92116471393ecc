import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { type Dynamo } from './dynamo';
import type { WindowCounts } from '../money/sliding-window';
import { countsFromItem } from './accounts';
import { KEYS_BY_ACCOUNT_INDEX, KEYS_BY_ID_INDEX } from './tables';

export type KeyStatus = 'active' | 'revoked';

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

  async create(record: KeyRecord): Promise<void> {
    await this.client.call('PutItem', { TableName: this.tableName, Item: toItem(record), ConditionExpression: 'attribute_not_exists(key_hash)' },
    );
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

  /** Marks the key revoked; returns the updated record, or undefined when no such key exists. */
  async revoke(keyId: string): Promise<KeyRecord | undefined> {
    const found = await this.getById(keyId);
    if (!found) return undefined;
    const out = await this.client.call('UpdateItem', {
        TableName: this.tableName,
        Key: { key_hash: { S: found.keyHash } },
        UpdateExpression: 'SET #s = :revoked, revoked_at_ms = :now',
        ConditionExpression: 'attribute_exists(key_hash)',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':revoked': { S: 'revoked' }, ':now': { N: String(Date.now()) } },
        ReturnValues: 'ALL_NEW',
      },
    );
    return out.Attributes ? fromItem(out.Attributes) : undefined;
  }
}
