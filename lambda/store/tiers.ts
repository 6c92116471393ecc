import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { type Dynamo } from './dynamo';

export interface Tier {
  id: string;
  /** Requests per minute; 0 means no limit (enterprise accounts carry their own). */
  rpm: number;
  /** Tokens per minute; 0 means no limit. */
  tpm: number;
  /** Models the tier may use; absent means every model. */
  models?: string[];
  description?: string;
}

/** Seeded at deploy and in local mode; operators change them with `PUT /admin/tiers/{id}`. */
export const DEFAULT_TIERS: Tier[] = [
  { id: 'free', rpm: 10, tpm: 20_000, description: 'Free: 10 requests and 20,000 tokens a minute' },
  { id: 'starter', rpm: 60, tpm: 100_000, description: 'Starter: 60 requests and 100,000 tokens a minute' },
  { id: 'pro', rpm: 300, tpm: 500_000, description: 'Pro: 300 requests and 500,000 tokens a minute' },
  { id: 'enterprise', rpm: 0, tpm: 0, description: 'Enterprise: limits set per account' },
];

type Item = Record<string, AttributeValue>;

export function tierToItem(t: Tier): Item {
  const item: Item = { tier_id: { S: t.id }, rpm: { N: String(t.rpm) }, tpm: { N: String(t.tpm) } };
  if (t.models) item.models = { L: t.models.map((m) => ({ S: m })) };
  if (t.description) item.description = { S: t.description };
  return item;
}

export function tierFromItem(item: Item): Tier {
  const t: Tier = { id: item.tier_id.S!, rpm: Number(item.rpm?.N ?? 0), tpm: Number(item.tpm?.N ?? 0) };
  if (item.models?.L) t.models = item.models.L.map((v) => v.S!);
  if (item.description?.S) t.description = item.description.S;
  return t;
}

export class TiersStore {
  constructor(
    private readonly client: Dynamo,
    private readonly tableName: string,
  ) {}

  async list(): Promise<Tier[]> {
    const tiers: Tier[] = [];
    let start: Item | undefined;
    do {
      const out = await this.client.call('Scan', { TableName: this.tableName, ExclusiveStartKey: start });
      tiers.push(...(out.Items ?? []).map(tierFromItem));
      start = out.LastEvaluatedKey;
    } while (start);
    return tiers.sort((a, b) => a.id.localeCompare(b.id));
  }

  async get(id: string): Promise<Tier | undefined> {
    const out = await this.client.call('GetItem', { TableName: this.tableName, Key: { tier_id: { S: id } } });
    return out.Item ? tierFromItem(out.Item) : undefined;
  }

  async put(tier: Tier): Promise<void> {
    await this.client.call('PutItem', { TableName: this.tableName, Item: tierToItem(tier) });
  }

  /** Writes each tier unless it exists already, so an operator's later changes survive. */
  async seed(tiers: Tier[] = DEFAULT_TIERS): Promise<void> {
    for (const tier of tiers) {
      try {
        await this.client.call('PutItem', { TableName: this.tableName, Item: tierToItem(tier), ConditionExpression: 'attribute_not_exists(tier_id)' },
        );
      } catch (err) {
        if ((err as { name?: string }).name !== 'ConditionalCheckFailedException') throw err;
      }
    }
  }
}
