import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { moneyRuntime } from '../../lambda/money';
import { abandonedSettlement } from '../../lambda/money/settlement';
import { FileSettlementQueue, replayQueued, runsFromNow } from '../../lambda/money/settlement-queue';
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

function runtimeOver(settle: (write: unknown) => Promise<unknown>, queue: FileSettlementQueue) {
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

describe('runsFromNow (the local server\'s sweep: on demand and every 15 s)', () => {
  it('gives a call made while a sweep runs the next sweep, which sees what was queued after the first read the file', async () => {
    const queue = new FileSettlementQueue(join(mkdtempSync(join(tmpdir(), 'itapi-queue-')), 'settlements.jsonl'));
    const applied: string[] = [];
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inFirst = new Promise<void>((resolve) => (entered = resolve));
    const { replays } = runtimeOver(async (write: unknown) => {
      const id = (write as { ledger: { id: string } }).ledger.id;
      if (!applied.length) {
        entered();
        await blocked;
      }
      applied.push(id);
      return { settled: true, chargedMicroUsd: 0, refundMicroUsd: 5000, unchargedMicroUsd: 0 };
    }, queue);
    const sweep = runsFromNow(() => replayQueued(queue, replays));
    await queue.send(abandonedSettlement(hold));
    const first = sweep(); // as the timer starts it
    await inFirst; // it has read the file and is applying the first settlement
    await queue.send(abandonedSettlement({ ...hold, requestId: 'req_queued_later' }));
    const asked = sweep(); // as a caller asks for one now
    const again = sweep(); // a third call meanwhile shares that next run
    expect(again).toBe(asked);
    release();
    expect(await first).toBe(1);
    expect(await asked).toBe(1);
    expect(applied).toEqual(['req_queued', 'req_queued_later']);
    expect(existsSync(queue.path) ? lines(queue.path) : []).toEqual([]);
  });

  it('runs once per call when calls do not overlap, and a failed run does not stop the next', async () => {
    let runs = 0;
    const sweep = runsFromNow(async () => {
      runs++;
      if (runs === 1) throw new Error('DynamoDB down');
      return runs;
    });
    await expect(sweep()).rejects.toThrow('DynamoDB down');
    expect(await sweep()).toBe(2);
    expect(await sweep()).toBe(3);
  });
});
