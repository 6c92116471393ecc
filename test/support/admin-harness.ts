import { type Dynamo } from '../../lambda/store/dynamo';
import { Hono } from 'hono';
import { createAdminApp } from '../../lambda/admin/app';
import { RollupsStore } from '../../lambda/store/rollups';
import { TierCache } from '../../lambda/money/tier-cache';
import { Authenticator } from '../../lambda/auth';
import { loadCatalog } from '../../lambda/catalog';
import { GatewayError, errorResponse, routeNotFound } from '../../lambda/contract/errors';
import { AccountsStore } from '../../lambda/store/accounts';
import { KeysStore } from '../../lambda/store/keys';
import { SessionsStore } from '../../lambda/store/sessions';
import type { TableNames } from '../../lambda/store/tables';
import { TiersStore } from '../../lambda/store/tiers';
import { UsageStore } from '../../lambda/store/usage';
import { createTestTables, deleteTestTables } from './dynamo';

export interface AdminHarness {
  app: Hono;
  client: Dynamo;
  tables: TableNames;
  stores: { keys: KeysStore; tiers: TiersStore; accounts: AccountsStore; usage: UsageStore; sessions: SessionsStore; rollups: RollupsStore };
  tierCache: TierCache;
  auth: Authenticator;
  /** The clock the admin app sees; tests move it. */
  clock: { now: number };
  close(): Promise<void>;
}

/** The admin app over fresh tables with the default tiers seeded, and an Authenticator over the same keys. */
export async function createAdminHarness(): Promise<AdminHarness> {
  const { client, tables } = await createTestTables();
  const stores = {
    keys: new KeysStore(client, tables.keys),
    tiers: new TiersStore(client, tables.tiers),
    accounts: new AccountsStore(client, tables.accounts, tables.usage, tables.holds),
    usage: new UsageStore(client, tables.usage),
    sessions: new SessionsStore(client, tables.sessions),
    rollups: new RollupsStore(client, tables.rollups, tables.usage),
  };
  await stores.tiers.seed();
  const clock = { now: Date.now() };
  const now = () => clock.now;
  const tierCache = new TierCache(stores.tiers, 60_000, now);
  const auth = new Authenticator(stores.keys, { now });
  const app = createAdminApp({ ...stores, tierCache, auth, catalog: loadCatalog({}), now });
  return { app, client, tables, stores, tierCache, auth, clock, close: () => deleteTestTables(client, tables) };
}

/** A Hono app with the admin app under `/admin` behind a bearer token, as lambda/runtime.ts mounts it locally. */
export function mountWithToken(admin: Hono, token: string): Hono {
  const root = new Hono();
  root.use('/admin/*', async (c, next) => {
    if (c.req.header('authorization') !== `Bearer ${token}`) {
      throw new GatewayError(401, 'authentication_error', 'invalid_admin_token', 'The admin API needs Authorization: Bearer $ITAPI_ADMIN_TOKEN.');
    }
    await next();
  });
  root.route('/admin', admin);
  root.onError((err) => (err instanceof GatewayError ? errorResponse(err) : new Response('internal', { status: 500 })));
  root.notFound((c) => errorResponse(routeNotFound(c.req.method, c.req.path)));
  return root;
}
