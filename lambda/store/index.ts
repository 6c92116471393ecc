import { type Dynamo } from './dynamo';
import { AccountsStore } from './accounts';
import { HoldsStore } from './holds';
import { KeysStore } from './keys';
import { SessionsStore } from './sessions';
import { ResponsesStore } from './responses';
import { RollupsStore } from './rollups';
import type { TableNames } from './tables';
import { TiersStore } from './tiers';
import { UsageStore } from './usage';

/** One module per table, over one client. */
export interface Stores {
  keys: KeysStore;
  tiers: TiersStore;
  accounts: AccountsStore;
  usage: UsageStore;
  holds: HoldsStore;
  sessions: SessionsStore;
  responses: ResponsesStore;
  rollups: RollupsStore;
}

export interface StoreOptions {
  /** How long stored responses are kept. @default 30 */
  responsesTtlDays?: number;
}

export function createStores(dynamo: Dynamo, tables: TableNames, options: StoreOptions = {}): Stores {
  return {
    keys: new KeysStore(dynamo, tables.keys),
    tiers: new TiersStore(dynamo, tables.tiers),
    accounts: new AccountsStore(dynamo, tables.accounts, tables.usage, tables.holds),
    usage: new UsageStore(dynamo, tables.usage),
    holds: new HoldsStore(dynamo, tables.holds),
    sessions: new SessionsStore(dynamo, tables.sessions),
    responses: new ResponsesStore(dynamo, tables.responses, options.responsesTtlDays),
    rollups: new RollupsStore(dynamo, tables.rollups, tables.usage),
  };
}
