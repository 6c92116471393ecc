import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { displayPrefix, generateApiKey, hashApiKey } from '../../lambda/auth/api-key';
import { parseCatalog, type Catalog, type CatalogFile } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { startLocal, type LocalGateway, type LocalOptions } from '../../lambda/entry/local-server';
import type { Logger } from '../../lambda/observability/log';
import type { KeyRecord } from '../../lambda/store/keys';
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

export interface TestAccount {
  accountId: string;
  key: string;
  record: KeyRecord;
}

/** Creates an account with credits and one key straight in the stores. */
export async function createAccount(
  gw: LocalGateway,
  options: { tier?: string; creditsMicroUsd?: number; rpm?: number; tpm?: number; models?: string[]; expiresAtMs?: number } = {},
): Promise<TestAccount> {
  const { stores } = gw.gateway;
  const accountId = `acct_${randomBytes(6).toString('hex')}`;
  const tier = options.tier ?? 'pro';
  await stores.accounts.create({
    id: accountId,
    name: accountId,
    tier,
    balanceMicroUsd: 0,
    status: 'active',
    createdAtMs: Date.now(),
    rpm: options.rpm,
    tpm: options.tpm,
  });
  if (options.creditsMicroUsd !== 0) await stores.accounts.topUp(accountId, options.creditsMicroUsd ?? 10_000_000, 'initial');
  const key = await addKey(gw, accountId, { tier, rpm: options.rpm, tpm: options.tpm, models: options.models, expiresAtMs: options.expiresAtMs });
  return { accountId, ...key };
}

export async function addKey(
  gw: LocalGateway,
  accountId: string,
  options: { tier?: string; rpm?: number; tpm?: number; models?: string[]; expiresAtMs?: number } = {},
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
    models: options.models,
    expiresAtMs: options.expiresAtMs,
    accountTier: options.tier ?? 'pro',
    accountRpm: options.rpm,
    accountTpm: options.tpm,
  };
  await gw.gateway.stores.keys.create(record);
  return { key, record };
}

/** Reads an SSE body into its `data:` payloads. */
export async function readSse(response: Response): Promise<string[]> {
  const text = await response.text();
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length));
}
