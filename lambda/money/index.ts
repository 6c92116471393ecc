import type { Logger } from '../observability/log';
import { describeError } from '../observability/log';
import type { Stores } from '../store';
import type { LateSettleResult, SettleResult, SettleWrite } from '../store/accounts';
import type { TableNames } from '../store/tables';
import { Settlements, type SettlementQueue } from './settlement';
import { HoldSweeper } from './sweeper';

/** Metrics of the money path (EMF in AWS); every method is optional. */
export interface MoneyMetrics {
  cost(model: string, route: string | undefined, costMicroUsd: number): void;
  uncharged?(model: string, microUsd: number): void;
  abandoned?(model: string): void;
  /** A settlement that found its hold swept as abandoned, applied late: the difference charged (negative: refunded). */
  lateSettlement?(model: string, differenceMicroUsd: number): void;
}

export interface MoneyOptions {
  stores: Stores;
  tables: TableNames;
  log: Logger;
  metrics?: MoneyMetrics;
  queue?: SettlementQueue;
  /**
   * Roll usage up in the settlement's own transaction (local mode): the roll-up's additions ride
   * with the ledger item's put (`SettleWrite.rollupsTable`), so a request makes two
   * `TransactWriteItems`, admission and settlement; and the settlements of an account that land
   * while one of its settlement writes is in flight share the next transaction (group commit,
   * `SettlementGroups`). In AWS the usage table's stream rolls up, and each settlement is its own
   * transaction (concurrent Lambdas share nothing to group). @default false
   */
  rollupsInline?: boolean;
  /**
   * With `rollupsInline`: settlements of an account that land while one is in flight share one
   * transaction (group commit; the local server's admissions are grouped with it, `CreditAdmission`'s
   * `groupCommit`). The local server turns it on (`ITAPI_GROUP_COMMIT=0` turns it off). @default false
   */
  groupCommit?: boolean;
  /** How long past its deadline a hold is left before it is swept. @default 60000 */
  sweepGraceMs?: number;
  /** Called once after each settlement that landed, awaited, never throwing (low-balance alerts). */
  afterCharge?(accountId: string): Promise<void>;
  now?: () => number;
}

/**
 * The settlement writer and the sweeper over one set of stores, as the chat function, the local
 * server and the sweeper function each build them.
 */
export function moneyRuntime(o: MoneyOptions): { settlements: Settlements; replays: Settlements; sweeper: HoldSweeper } {
  const now = o.now ?? Date.now;
  const onSettled = (write: SettleWrite, result: Extract<SettleResult, { settled: true }>) => {
    o.metrics?.cost(write.ledger.model ?? 'unknown', write.ledger.route, result.chargedMicroUsd);
    if (result.unchargedMicroUsd > 0) {
      // A provider that went past the output limit it was sent: charged as far as the balance went.
      o.log.error('settlement_overrun', { request_id: write.ledger.id, account_id: write.hold.accountId, uncharged_micro_usd: result.unchargedMicroUsd });
      o.metrics?.uncharged?.(write.ledger.model ?? 'unknown', result.unchargedMicroUsd);
    }
  };
  const onLate = (write: SettleWrite, late: LateSettleResult) => {
    // Every one is worth a look: the request's settlement came after the sweep (a queue, an outage, a clock).
    o.log.error('late_settlement', {
      request_id: write.ledger.id,
      account_id: write.hold.accountId,
      abandoned_micro_usd: late.abandonedMicroUsd,
      difference_micro_usd: late.chargedMicroUsd,
      uncharged_micro_usd: late.unchargedMicroUsd || undefined,
    });
    o.metrics?.lateSettlement?.(write.ledger.model ?? 'unknown', late.chargedMicroUsd);
  };
  // Once a settlement has landed: the low-balance check (awaited, never throwing). The usage
  // roll-up landed with it (local mode, `rollupsTable`) or comes from the usage table's stream (AWS).
  const afterSettled = async (write: SettleWrite) => {
    await o.afterCharge?.(write.hold.accountId);
  };
  const rollupsTable = o.rollupsInline ? o.tables.rollups : undefined;
  // A request's own settlement: retried for about 20 s, then queued (or reported lost).
  const settlements = new Settlements({
    store: o.stores.accounts,
    queue: o.queue,
    rollupsTable,
    // Local mode: settlements of an account that land while one is in flight share a transaction.
    groupCommit: o.rollupsInline === true && o.groupCommit === true,
    now,
    onSettled,
    onLate,
    afterSettled,
    onQueued(write, err) {
      o.log.error('settlement_queued', { request_id: write.ledger.id, account_id: write.hold.accountId, ...describeError(err) });
    },
    onLost(write, err) {
      o.log.error('settlement_not_written', { request_id: write.ledger.id, account_id: write.hold.accountId, ...describeError(err) });
    },
    onHoldGone(write) {
      o.log.info('settlement_found_no_hold', { request_id: write.ledger.id, account_id: write.hold.accountId });
    },
  });
  // Sweeps and replays (the local queue, SQS, the TTL stream): short retries and no queue, since
  // their caller tries again (the next sweep, the queue's redelivery); a failure is the caller's to report.
  const replays = new Settlements({ store: o.stores.accounts, retryDelaysMs: [200, 1000], rollupsTable, now, onSettled, onLate, afterSettled });
  const sweeper = new HoldSweeper({
    holds: o.stores.holds,
    accounts: o.stores.accounts,
    settlements: replays,
    keysTable: o.tables.keys,
    graceMs: o.sweepGraceMs,
    now,
    onAbandoned(hold) {
      o.log.info('hold_abandoned', { request_id: hold.requestId, account_id: hold.accountId, hold_micro_usd: hold.holdMicroUsd });
      o.metrics?.abandoned?.(hold.model);
    },
  });
  return { settlements, replays, sweeper };
}
