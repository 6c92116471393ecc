import { type Dynamo, isDynamoError } from './dynamo';

/** A tier as the deploy seeds it. rpm/tpm 0 means "per-account custom limits" (enterprise). */
export interface TierSeed {
  id: string;
  rpm: number;
  tpm: number;
  /** Model ids this tier may use; absent means all models. */
  models?: string[];
  description?: string;
}

export interface TierSeedResult {
  created: string[];
  kept: string[];
}

/**
 * Writes each tier only if no item with its id exists (`attribute_not_exists(tier_id)`), so a
 * tier an operator changed after the first deploy is never overwritten by a later deploy.
 */
export async function seedTiers(client: Dynamo, tableName: string, tiers: TierSeed[]): Promise<TierSeedResult> {
  const result: TierSeedResult = { created: [], kept: [] };
  for (const tier of tiers) {
    try {
      await client.call('PutItem', {
          TableName: tableName,
          Item: {
            tier_id: { S: tier.id },
            rpm: { N: String(tier.rpm) },
            tpm: { N: String(tier.tpm) },
            description: { S: tier.description ?? '' },
            ...(tier.models ? { models: { L: tier.models.map((m) => ({ S: m })) } } : {}),
          },
          ConditionExpression: 'attribute_not_exists(tier_id)',
        },
      );
      result.created.push(tier.id);
    } catch (err) {
      if (!(isDynamoError(err, 'ConditionalCheckFailedException'))) throw err;
      result.kept.push(tier.id);
    }
  }
  return result;
}

/** Parses and checks the tiers a custom resource passes as JSON text. */
export function parseTierSeeds(json: string): TierSeed[] {
  const parsed: unknown = JSON.parse(json);
  if (!Array.isArray(parsed)) throw new Error('tiers: expected a JSON array');
  return parsed.map((raw: unknown, i) => {
    const t = raw as Partial<TierSeed>;
    const ok =
      typeof t?.id === 'string' &&
      t.id.length > 0 &&
      Number.isInteger(t.rpm) &&
      (t.rpm as number) >= 0 &&
      Number.isInteger(t.tpm) &&
      (t.tpm as number) >= 0 &&
      (t.models === undefined || (Array.isArray(t.models) && t.models.every((m) => typeof m === 'string'))) &&
      (t.description === undefined || typeof t.description === 'string');
    if (!ok) throw new Error(`tiers[${i}]: expected {id, rpm, tpm, models?, description?}`);
    return { id: t.id!, rpm: t.rpm!, tpm: t.tpm!, models: t.models, description: t.description };
  });
}
