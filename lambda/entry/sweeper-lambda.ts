import { BalanceAlerts, deliverQueuedAlert, snsEmailSender, sqsAlertOutbox, type AlertMessage, type QueuedAlert } from '../alerts/balance-alerts';
import { loadCatalog } from '../catalog';
import { checkCatalog } from '../catalog/check';
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
/** The daily rule's input: check the catalog for routes near their shutdown. */
type CatalogCheckEvent = { itapi: 'catalog-check' };
type SqsEvent = { Records: Array<{ eventSource: 'aws:sqs'; messageId: string; body: string; eventSourceARN?: string }> };
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
const metrics = emfMetrics();
const tables = tableNamesFromEnv();
const stores = createStores(createDynamoClient(process.env.ITAPI_DYNAMODB_ENDPOINT), tables);
const graceS = Number(process.env.ITAPI_SWEEP_GRACE_S);
const sweeperAlerts = new BalanceAlerts({
  accounts: stores.accounts,
  outbox: process.env.ITAPI_ALERT_QUEUE_URL ? sqsAlertOutbox(process.env.ITAPI_ALERT_QUEUE_URL) : { send: async () => undefined },
  log,
});
const { replays, sweeper } = moneyRuntime({
  stores,
  tables,
  log,
  metrics,
  // Sweeps and replays lower balances too; their alerts go to the same queue.
  afterCharge: process.env.ITAPI_ALERT_QUEUE_URL
    ? (accountId) => sweeperAlerts.afterCharge(accountId)
    : undefined,
  sweepGraceMs: Number.isFinite(graceS) && graceS > 0 ? graceS * 1000 : undefined,
});

export async function handler(event: ScheduledEvent | ReconcileEvent | SqsEvent | StreamEvent | CatalogCheckEvent): Promise<BatchResponse | void> {
  if ('itapi' in event && event.itapi === 'catalog-check') return catalogCheck();
  if ('action' in event && event.action === 'reconcile') return reconcile();
  if ('Records' in event && event.Records[0]?.eventSource === 'aws:sqs') {
    const sqsEvent = event as SqsEvent;
    if (alertQueueArn && sqsEvent.Records[0].eventSourceARN === alertQueueArn) return deliverAlerts(sqsEvent);
    return applyQueued(sqsEvent);
  }
  if ('Records' in event && event.Records[0]?.eventSource === 'aws:dynamodb') return settleExpired(event as StreamEvent);
  const report = await sweeper.sweep();
  log.info('sweep', { ...report });
  // A sweep that could not write reports it; the next one (a minute later) tries again.
  if (report.failed) throw new Error(`${report.failed} overdue holds could not be settled this time`);
}

const alertQueueArn = process.env.ITAPI_ALERT_QUEUE_ARN;
/** E-mail alerts: published to this SNS topic, whose e-mail subscriptions filter on `account_id` (docs/CONSOLE.md). */
const sendEmail = process.env.ITAPI_ALERT_TOPIC_ARN
  ? snsEmailSender(process.env.ITAPI_ALERT_TOPIC_ARN, {
      log,
      // Outside Lambda (tests) a loopback stand-in, with a static region and credentials.
      client: process.env.ITAPI_SNS_ENDPOINT
        ? { endpoint: process.env.ITAPI_SNS_ENDPOINT, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }
        : undefined,
    })
  : undefined;
/** Quick attempts within one receive; after them the message waits out the queue's visibility timeout. */
const ALERT_ATTEMPT_PAUSES_MS = [1_000, 4_000];

/** Low-balance alerts the chat function fired: one delivery attempt each; a failure comes back after the queue's visibility timeout. */
async function deliverAlerts(event: SqsEvent): Promise<BatchResponse> {
  const batchItemFailures: BatchResponse['batchItemFailures'] = [];
  await Promise.all(
    event.Records.map(async (record) => {
      // Within one receive the e-mail goes out once, however many times the webhook is retried.
      let emailed = false;
      const once = sendEmail
        ? async (message: AlertMessage) => {
            if (emailed) return;
            await sendEmail(message);
            emailed = true;
          }
        : undefined;
      for (let attempt = 0; ; attempt++) {
        try {
          await deliverQueuedAlert(JSON.parse(record.body) as QueuedAlert, { accounts: stores.accounts, log, sendEmail: once }, { allowPrivate: false, timeoutMs: 10_000 });
          return;
        } catch (err) {
          log.info('balance_alert_retry', { message_id: record.messageId, attempt: attempt + 1, ...describeError(err) });
          if (attempt >= ALERT_ATTEMPT_PAUSES_MS.length) {
            batchItemFailures.push({ itemIdentifier: record.messageId });
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, ALERT_ATTEMPT_PAUSES_MS[attempt]));
        }
      }
    }),
  );
  return { batchItemFailures };
}

/**
 * The daily catalog check (issue 20): the routes within 30 days of their `shutdown_date`, as the
 * metric RoutesNearShutdown (alarmed) and one log line naming them; those past it as
 * RoutesPastShutdown. The catalog is the one the chat function serves (`ITAPI_MODELS`, else the
 * built-in one), read at each check.
 */
function catalogCheck(): void {
  const check = checkCatalog(loadCatalog(process.env));
  metrics.routeShutdowns?.(check.near, check.past);
  log.info('catalog_check', { today: check.today, within_days: check.withinDays, near: check.near, past: check.past });
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
