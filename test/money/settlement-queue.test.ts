import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { moneyRuntime } from '../../lambda/money';
import { abandonedSettlement } from '../../lambda/money/settlement';
import { FileSettlementQueue, replayQueued } from '../../lambda/money/settlement-queue';
import type { Stores } from '../../lambda/runtime';
import type { HoldRecord } from '../../lambda/store/holds';
import type { TableNames } from '../../lambda/store/tables';
import { memoryLogger } from '../support/gateway';

/**
 * Local mode's durable queue (lambda/money/settlement-queue.ts) drained as the local server's
 * sweep loop drains it: through the runtime's `replays`, which have no queue of their own.
 */
const hold: HoldRecord = {
  accountId: 'acct_q',
  requestId: 'req_queued',
  keyId: 'key_q',
  keyHash: 'hash_q',
  model: 'gpt-4o-mini',
  holdMicroUsd: 5000,
  promptMicroUsd: 100,
  promptTokens: 10,
  rateTokens: 110,
  window: 0,
  startedAtMs: 1,
  deadlineMs: 2,
  stream: false,
} as HoldRecord;

function runtimeOver(settle: () => Promise<unknown>, queue: FileSettlementQueue) {
  const stores = { accounts: { settle }, holds: {} } as unknown as Stores;
  return moneyRuntime({ stores, tables: { keys: 'k' } as TableNames, log: memoryLogger(), queue });
}

const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean);

it('keeps a settlement that still fails in the queue exactly once, however many sweeps fail', async () => {
  const queue = new FileSettlementQueue(join(mkdtempSync(join(tmpdir(), 'itapi-queue-')), 'settlements.jsonl'));
  let calls = 0;
  const { replays } = runtimeOver(() => {
    calls++;
    return Promise.reject(new Error('DynamoDB down'));
  }, queue);
  await queue.send(abandonedSettlement(hold));
  for (let sweep = 0; sweep < 3; sweep++) expect(await replayQueued(queue, replays)).toBe(0);
  expect(lines(queue.path)).toHaveLength(1);
  // Short retries per replay (3 tries), not the request path's schedule of about 20 s.
  expect(calls).toBe(9);
}, 20_000);

it('applies a queued settlement once DynamoDB answers, and empties the queue', async () => {
  const queue = new FileSettlementQueue(join(mkdtempSync(join(tmpdir(), 'itapi-queue-')), 'settlements.jsonl'));
  const applied: unknown[] = [];
  const { replays } = runtimeOver(async () => {
    applied.push(1);
    return { settled: true, chargedMicroUsd: 100, refundMicroUsd: 4900, unchargedMicroUsd: 0 };
  }, queue);
  await queue.send(abandonedSettlement(hold));
  expect(await replayQueued(queue, replays)).toBe(1);
  expect(applied).toHaveLength(1);
  expect(await replayQueued(queue, replays)).toBe(0);
  expect(applied).toHaveLength(1);
});
