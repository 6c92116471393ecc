import { randomBytes } from 'node:crypto';
import { type Dynamo } from '../../lambda/store/dynamo';
import { createDynamoClient } from '../../lambda/store/client';
import { tableDefinitions, type TableNames } from '../../lambda/store/tables';

/** The DynamoDB Local endpoint started by test/support/global-setup.ts. */
export function testDynamoEndpoint(): string {
  const endpoint = process.env.ITAPI_TEST_DYNAMODB_ENDPOINT;
  if (!endpoint) throw new Error('ITAPI_TEST_DYNAMODB_ENDPOINT is not set (jest globalSetup did not run?)');
  return endpoint;
}

/**
 * Creates the four itapi tables with random names in the shared DynamoDB Local and waits until
 * they are ACTIVE. Each call gets its own tables, so test files never see each other's data.
 */
export async function createTestTables(): Promise<{ client: Dynamo; tables: TableNames }> {
  const client = createDynamoClient(testDynamoEndpoint());
  const suffix = randomBytes(6).toString('hex');
  const tables: TableNames = {
    keys: `test-keys-${suffix}`,
    tiers: `test-tiers-${suffix}`,
    accounts: `test-accounts-${suffix}`,
    usage: `test-usage-${suffix}`,
    holds: `test-holds-${suffix}`,
    sessions: `test-sessions-${suffix}`,
    responses: `test-responses-${suffix}`, rollups: `test-rollups-${suffix}`,
  };
  await Promise.all(tableDefinitions(tables).map((def) => client.call('CreateTable', def)));
  await Promise.all(Object.values(tables).map((name) => waitActive(client, name)));
  return { client, tables };
}

/** Deletes tables made by createTestTables (best effort) and closes the client. */
export async function deleteTestTables(client: Dynamo, tables: TableNames): Promise<void> {
  await Promise.all(
    Object.values(tables).map((name) => client.call('DeleteTable', { TableName: name }).catch(() => undefined)),
  );
  client.destroy();
}

async function waitActive(client: Dynamo, name: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const out = await client.call('DescribeTable', { TableName: name });
    const indexesReady = (out.Table?.GlobalSecondaryIndexes ?? []).every((i: { IndexStatus?: string }) => i.IndexStatus === 'ACTIVE');
    if (out.Table?.TableStatus === 'ACTIVE' && indexesReady) return;
    if (Date.now() > deadline) throw new Error(`table ${name} did not become ACTIVE`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
