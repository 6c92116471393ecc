import { describeError, jsonLogger, type Logger } from '../observability/log';
import { createDynamoClient } from '../store/client';
import { RollupsStore } from '../store/rollups';
import { tableNamesFromEnv } from '../store/tables';
import { ledgerFromItem } from '../store/usage';

/**
 * The usage table's stream consumer (AWS): each new request item of the ledger is added to its
 * account's roll-up for its day, key and model (store/rollups.ts), exactly once, whatever the
 * stream's redeliveries. A plain handler reporting partial batch failures: the first record that
 * fails and every one after it come back (records of one account stay in order); one that keeps
 * failing goes, after the event source mapping's retries, to its on-failure queue (alarmed).
 */
export type UsageStreamEvent = {
  Records: Array<{
    eventName?: string;
    eventID?: string;
    dynamodb?: { NewImage?: Record<string, any>; SequenceNumber?: string };
  }>;
};
export type BatchResponse = { batchItemFailures: Array<{ itemIdentifier: string }> };

/** The handler over a roll-ups store (tests give theirs). */
export function rollupHandler(rollups: Pick<RollupsStore, 'apply'>, log: Logger) {
  return async function rollUpUsage(event: UsageStreamEvent): Promise<BatchResponse> {
    for (const record of event.Records) {
      const image = record.dynamodb?.NewImage;
      // The event source mapping passes only inserts of request items; anything else is skipped.
      if (record.eventName !== 'INSERT' || !image || image.kind?.S === 'topup') continue;
      try {
        await rollups.apply(ledgerFromItem(image));
      } catch (err) {
        log.error('rollup_failed', { event_id: record.eventID, ...describeError(err) });
        return { batchItemFailures: [{ itemIdentifier: record.dynamodb?.SequenceNumber ?? record.eventID ?? '' }] };
      }
    }
    return { batchItemFailures: [] };
  };
}

const tables = tableNamesFromEnv();
export const handler = rollupHandler(new RollupsStore(createDynamoClient(process.env.ITAPI_DYNAMODB_ENDPOINT), tables.rollups, tables.usage), jsonLogger());
