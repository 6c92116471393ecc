import { moneyRuntime } from '../money';
import { reconcileHolds } from '../money/reconcile';
import { abandonedSettlement } from '../money/settlement';
import { emfMetrics } from '../observability/metrics';
import { describeError, jsonLogger } from '../observability/log';
import { createStores } from '../store';
import type { SettleWrite } from '../store/accounts';
import { createDynamoClient } from '../store/client';
import { holdFromItem } from '../store/holds';
import { tableNamesFromEnv } from '../store/tables';

/**
 * The money path's background function (ARCHITECTURE §3, "every hold ends"), for four kinds of
 * event: the one-minute schedule (sweep holds left past their deadline), the daily schedule
 * (`{"action": "reconcile"}`: the holds table against the accounts' `held`), the settlement queue
 * (settlements that kept failing in the chat function), and the holds table's stream (a hold the
 * table's TTL removed before any sweep settled it).
 */
type ScheduledEvent = { source?: string; 'detail-type'?: string; action?: undefined };
type ReconcileEvent = { action: 'reconcile' };
type SqsEvent = { Records: Array<{ eventSource: 'aws:sqs'; messageId: string; body: string }> };
type StreamEvent = {
  Records: Array<{
    eventSource: 'aws:dynamodb';
    eventName: string;
    eventID: string;
    userIdentity?: { type?: string; principalId?: string };
    dynamodb?: { OldImage?: Record<string, any>; SequenceNumber?: string };
  }>;
};
type BatchResponse = { batchItemFailures: Array<{ itemIdentifier: string }> };

const log = jsonLogger();
const tables = tableNamesFromEnv();
const stores = createStores(createDynamoClient(process.env.ITAPI_DYNAMODB_ENDPOINT), tables);
const graceS = Number(process.env.ITAPI_SWEEP_GRACE_S);
const metrics = emfMetrics();
const { replays, sweeper } = moneyRuntime({
  stores,
  tables,
  log,
  metrics,
  sweepGraceMs: Number.isFinite(graceS) && graceS > 0 ? graceS * 1000 : undefined,
});

export async function handler(event: ScheduledEvent | ReconcileEvent | SqsEvent | StreamEvent): Promise<BatchResponse | void> {
  if ('action' in event && event.action === 'reconcile') return reconcile();
  if ('Records' in event && event.Records[0]?.eventSource === 'aws:sqs') return applyQueued(event as SqsEvent);
  if ('Records' in event && event.Records[0]?.eventSource === 'aws:dynamodb') return settleExpired(event as StreamEvent);
  const report = await sweeper.sweep();
  log.info('sweep', { ...report });
  // A sweep that could not write reports it; the next one (a minute later) tries again.
  if (report.failed) throw new Error(`${report.failed} overdue holds could not be settled this time`);
}

/** The daily reconciliation: every account whose `held` disagrees with its hold items is logged, and their count is a metric (alarmed). */
async function reconcile(): Promise<void> {
  const report = await reconcileHolds(stores);
  for (const m of report.mismatches) {
    log.error('held_mismatch', {
      account_id: m.accountId,
      held_micro_usd: m.heldMicroUsd,
      in_flight: m.inFlight,
      hold_items_micro_usd: m.holdItemsMicroUsd,
      hold_items: m.holdItems,
    });
  }
  metrics.holdsMismatch?.(report.mismatches.length);
  log.info('reconciliation', { accounts: report.accounts, holds: report.holds, mismatched: report.mismatches.length });
}

/** Queued settlements, applied once each (idempotent); a failure goes back to the queue, then to its dead-letter queue. */
async function applyQueued(event: SqsEvent): Promise<BatchResponse> {
  const batchItemFailures: BatchResponse['batchItemFailures'] = [];
  for (const record of event.Records) {
    try {
      const result = await replays.apply(JSON.parse(record.body) as SettleWrite);
      if (result === 'lost') throw new Error('settlement still failing');
    } catch (err) {
      log.error('queued_settlement_failed', { message_id: record.messageId, ...describeError(err) });
      batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
}

/** Holds the table's TTL removed (a day past their deadline, so the sweeper was failing): settled as abandoned from the old image. */
async function settleExpired(event: StreamEvent): Promise<BatchResponse> {
  const batchItemFailures: BatchResponse['batchItemFailures'] = [];
  for (const record of event.Records) {
    const byTtl = record.eventName === 'REMOVE' && record.userIdentity?.type === 'Service' && record.userIdentity.principalId === 'dynamodb.amazonaws.com';
    const image = record.dynamodb?.OldImage;
    if (!byTtl || !image) continue;
    try {
      const hold = holdFromItem(image);
      const result = await replays.apply({ ...abandonedSettlement(hold, tables.keys), holdGone: true });
      if (result === 'lost') throw new Error('settlement of an expired hold failed');
      // Only a hold this settled says the sweeper missed it; one settled already (its request, a sweep) says nothing.
      if (typeof result === 'object' && result.settled) log.error('hold_expired_unswept', { request_id: hold.requestId, account_id: hold.accountId });
    } catch (err) {
      log.error('expired_hold_settlement_failed', describeError(err));
      batchItemFailures.push({ itemIdentifier: record.dynamodb?.SequenceNumber ?? record.eventID });
    }
  }
  return { batchItemFailures };
}
