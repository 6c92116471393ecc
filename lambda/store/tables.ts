import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { type Dynamo } from './dynamo';

/** Table names; in AWS they come from the stack's environment, locally these defaults. */
export interface TableNames {
  keys: string;
  tiers: string;
  accounts: string;
  usage: string;
  /** Holds in flight, one item per admitted request until it is settled. */
  holds: string;
  /** Console sign-in links and sessions. */
  sessions: string;
  /** Stored Responses API responses (`store: true`), split into parts, with a TTL. */
  responses: string;
  /** Usage roll-ups per account, day, key and model (rollups.ts), kept up as requests settle. */
  rollups: string;
}

export function tableNamesFromEnv(env: NodeJS.ProcessEnv = process.env): TableNames {
  return {
    keys: env.ITAPI_KEYS_TABLE ?? 'itapi-keys',
    tiers: env.ITAPI_TIERS_TABLE ?? 'itapi-tiers',
    accounts: env.ITAPI_ACCOUNTS_TABLE ?? 'itapi-accounts',
    usage: env.ITAPI_USAGE_TABLE ?? 'itapi-usage',
    holds: env.ITAPI_HOLDS_TABLE ?? 'itapi-holds',
    sessions: env.ITAPI_SESSIONS_TABLE ?? 'itapi-sessions',
    responses: env.ITAPI_RESPONSES_TABLE ?? 'itapi-responses',
    rollups: env.ITAPI_ROLLUPS_TABLE ?? 'itapi-rollups',
  };
}

/** The environment that names these tables, as `tableNamesFromEnv` reads it (tests, spawned processes). */
export function tableEnv(t: TableNames): Record<string, string> {
  return {
    ITAPI_KEYS_TABLE: t.keys,
    ITAPI_TIERS_TABLE: t.tiers,
    ITAPI_ACCOUNTS_TABLE: t.accounts,
    ITAPI_USAGE_TABLE: t.usage,
    ITAPI_HOLDS_TABLE: t.holds,
    ITAPI_SESSIONS_TABLE: t.sessions,
    ITAPI_RESPONSES_TABLE: t.responses,
    ITAPI_ROLLUPS_TABLE: t.rollups,
  };
}

/** GSI names, shared with the CDK table definitions (lib/tables.ts repeats them by value). */
export const KEYS_BY_ACCOUNT_INDEX = 'by-account';
export const KEYS_BY_ID_INDEX = 'by-key-id';
export const SESSIONS_BY_ACCOUNT_INDEX = 'by-account';

/**
 * Key schemas (ARCHITECTURE §4), used to create the tables locally:
 * keys `key_hash`; GSIs by `account_id` + `key_id` and by `key_id`; tiers `tier_id`;
 * accounts `account_id`; usage `account_id` + `sk` (`<time ms, 13 digits>#<request id>`), TTL `expires_at`;
 * holds `request_id`, TTL `expires_at` (a day past the hold's deadline: the sweeper settles it long before);
 * sessions `id` (`link#<sha256>` or `session#<sha256>`), GSI by `account_id`, TTL `expires_at`;
 * responses `response_id` + `part` (number), TTL `expires_at`;
 * rollups `account_id` + `sk` (`YYYY-MM-DD#<key id>#<model>`), TTL `expires_at`.
 */
export function tableDefinitions(names: TableNames): CreateTableCommandInput[] {
  const onDemand = { BillingMode: 'PAY_PER_REQUEST' as const };
  return [
    {
      TableName: names.keys,
      ...onDemand,
      AttributeDefinitions: [
        { AttributeName: 'key_hash', AttributeType: 'S' },
        { AttributeName: 'account_id', AttributeType: 'S' },
        { AttributeName: 'key_id', AttributeType: 'S' },
      ],
      KeySchema: [{ AttributeName: 'key_hash', KeyType: 'HASH' }],
      GlobalSecondaryIndexes: [
        {
          IndexName: KEYS_BY_ACCOUNT_INDEX,
          KeySchema: [
            { AttributeName: 'account_id', KeyType: 'HASH' },
            { AttributeName: 'key_id', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
        {
          IndexName: KEYS_BY_ID_INDEX,
          KeySchema: [{ AttributeName: 'key_id', KeyType: 'HASH' }],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    },
    {
      TableName: names.tiers,
      ...onDemand,
      AttributeDefinitions: [{ AttributeName: 'tier_id', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'tier_id', KeyType: 'HASH' }],
    },
    {
      TableName: names.accounts,
      ...onDemand,
      AttributeDefinitions: [{ AttributeName: 'account_id', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'account_id', KeyType: 'HASH' }],
    },
    {
      TableName: names.usage,
      ...onDemand,
      AttributeDefinitions: [
        { AttributeName: 'account_id', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'account_id', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    },
    {
      TableName: names.holds,
      ...onDemand,
      AttributeDefinitions: [{ AttributeName: 'request_id', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'request_id', KeyType: 'HASH' }],
    },
    {
      TableName: names.sessions,
      ...onDemand,
      AttributeDefinitions: [
        { AttributeName: 'id', AttributeType: 'S' },
        { AttributeName: 'account_id', AttributeType: 'S' },
      ],
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      GlobalSecondaryIndexes: [
        {
          IndexName: SESSIONS_BY_ACCOUNT_INDEX,
          KeySchema: [
            { AttributeName: 'account_id', KeyType: 'HASH' },
            { AttributeName: 'id', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ],
    },
    {
      TableName: names.responses,
      ...onDemand,
      AttributeDefinitions: [
        { AttributeName: 'response_id', AttributeType: 'S' },
        { AttributeName: 'part', AttributeType: 'N' },
      ],
      KeySchema: [
        { AttributeName: 'response_id', KeyType: 'HASH' },
        { AttributeName: 'part', KeyType: 'RANGE' },
      ],
    },
    {
      TableName: names.rollups,
      ...onDemand,
      AttributeDefinitions: [
        { AttributeName: 'account_id', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'account_id', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    },
  ];
}

/** Creates the tables that do not exist yet (local mode) and waits until each is ACTIVE. */
export async function ensureTables(dynamo: Dynamo, tables: TableNames): Promise<void> {
  // All at once: one after another, the seven tables were a good part of `npm start`'s time.
  await Promise.all(
    tableDefinitions(tables).map(async (definition) => {
      try {
        await dynamo.call('CreateTable', definition);
      } catch (err) {
        if ((err as { name?: string }).name !== 'ResourceInUseException') throw err;
      }
      for (;;) {
        const out = await dynamo.call('DescribeTable', { TableName: definition.TableName });
        if (out.Table?.TableStatus === 'ACTIVE') break;
        await new Promise((r) => setTimeout(r, 50));
      }
    }),
  );
}
