import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCatalog, type Catalog, type CatalogFile } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { startLocal, type LocalGateway, type LocalOptions } from '../../lambda/entry/local-server';
import type { Logger } from '../../lambda/observability/log';
import type { KeyRecord } from '../../lambda/store/keys';
import { fundedAccount, mintKey, type FundedAccount } from './accounts';
import { testDynamoEndpoint } from './dynamo';

/** Log lines captured in memory, so tests can read them and nothing is printed. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const push = (level: string) => (event: string, fields: Record<string, unknown> = {}) => lines.push(JSON.stringify({ level, event, ...fields }));
  return { lines, info: push('info'), error: push('error') };
}

/** The default catalog with every model served by the mock provider. */
export function mockCatalog(): Catalog {
  return parseCatalog(DEFAULT_CATALOG, 'test').withMockRoutes();
}

export function catalogOf(file: CatalogFile): Catalog {
  return parseCatalog(file, 'test');
}

export type TestGateway = LocalGateway & { logs: string[] };

/** A local gateway on a free port, with its own tables in the run's DynamoDB Local. */
export async function startTestGateway(options: Partial<LocalOptions> = {}): Promise<TestGateway> {
  const suffix = randomBytes(6).toString('hex');
  const log = memoryLogger();
  const local = await startLocal({
    port: 0,
    env: { ITAPI_ADMIN_TOKEN: `test-admin-${suffix}` },
    dynamoEndpoint: testDynamoEndpoint(),
    tables: { keys: `e2e-keys-${suffix}`, tiers: `e2e-tiers-${suffix}`, accounts: `e2e-accounts-${suffix}`, usage: `e2e-usage-${suffix}`, holds: `e2e-holds-${suffix}`, sessions: `e2e-sessions-${suffix}`, responses: `e2e-responses-${suffix}`, rollups: `e2e-rollups-${suffix}` },
    dataDir: mkdtempSync(join(tmpdir(), 'itapi-test-')),
    catalog: mockCatalog(),
    log,
    ...options,
  });
  return Object.assign(local, { logs: log.lines });
}

export type TestAccount = FundedAccount;

/** Creates an account with credits and one key in the gateway's stores (`fundedAccount` for stores without a gateway). */
export async function createAccount(
  gw: LocalGateway,
  options: { tier?: string; creditsMicroUsd?: number; rpm?: number; tpm?: number; models?: string[]; expiresAtMs?: number } = {},
): Promise<TestAccount> {
  const { models, expiresAtMs, ...account } = options;
  return fundedAccount(gw.gateway.stores, { ...account, key: { keyId: `key_${randomBytes(6).toString('hex')}`, models, expiresAtMs } });
}

/** Another key of an account, with the account's tier and limits as the key record carries them. */
export async function addKey(
  gw: LocalGateway,
  accountId: string,
  options: { tier?: string; rpm?: number; tpm?: number; models?: string[]; expiresAtMs?: number } = {},
): Promise<{ key: string; record: KeyRecord }> {
  const { tier, rpm, tpm, ...fields } = options;
  return mintKey(gw.gateway.stores, accountId, { fields: { accountTier: tier ?? 'pro', accountRpm: rpm, accountTpm: tpm, ...fields } });
}

/** Reads an SSE body into its `data:` payloads. */
export async function readSse(response: Response): Promise<string[]> {
  const text = await response.text();
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length));
}
