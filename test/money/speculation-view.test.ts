import { CreditAdmission } from '../../lambda/money/admission';
import type { Settlements } from '../../lambda/money/settlement';
import type { Account, AdmitResult } from '../../lambda/store/accounts';
import { completed } from '../support/money';

/**
 * review-2: the view speculation reads (CreditAdmission.foresee) against its background re-read.
 * A re-read that DynamoDB serves after a settlement of this instance landed, but that returns
 * before the settlement's own continuation ran (the low-balance alert check is
 * awaited in between), already holds the refund; the settlement then adds it to the view again.
 */

const NOW0 = 1_800_000_000_000 + 5_000; // early in a minute
const MINUTE = Math.floor(NOW0 / 60_000);
const model = {
  id: 'm',
  routes: [],
  maxOutputTokens: 1000,
  contextWindow: 100_000,
  price: { inputPerToken: 10_000, outputPerToken: 100_000, cachedInputPerToken: 0, cacheWritePerToken: 0, cacheWrite1hPerToken: 0, serverToolPerCall: {}, serviceTiers: {} },
} as any;
const key = { keyId: 'k1', accountId: 'a1', keyHash: 'h1', status: 'active' } as any;
/** 100 prompt tokens × 10 + 100 output × 100 µUSD: 11,000 µUSD a request. */
const HOLD = 11_000;
/** What a settled request gives back (cost 1,000 µUSD). */
const REFUND = 10_000;

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
const flush = () => new Promise((r) => setImmediate(r));

function accountItem(balanceMicroUsd: number, requests: number): Account {
  return {
    id: 'a1',
    name: '',
    tier: 'pro',
    balanceMicroUsd,
    status: 'active',
    createdAtMs: 0,
    counts: { window: MINUTE, requests, tokens: requests * 200, prevRequests: 0, prevTokens: 0 },
    heldMicroUsd: 0,
    inFlight: 0,
    owedMicroUsd: 0,
  };
}

it('a background re-read that crosses an own settlement does not put its refund in the view twice', async () => {
  let now = NOW0;
  const admits: Array<ReturnType<typeof deferred<AdmitResult>>> = [];
  const gets: Array<ReturnType<typeof deferred<Account | undefined>>> = [];
  const applies: Array<ReturnType<typeof deferred<unknown>>> = [];
  const store = {
    admit: () => {
      const d = deferred<AdmitResult>();
      admits.push(d);
      return d.promise;
    },
    get: () => {
      const d = deferred<Account | undefined>();
      gets.push(d);
      return d.promise;
    },
  };
  const settlements = {
    apply: () => {
      const d = deferred<unknown>();
      applies.push(d);
      return d.promise;
    },
  } as unknown as Settlements;
  const admission = new CreditAdmission({
    store: store as any,
    tiers: { get: () => ({ id: 'pro', rpm: 1000, tpm: 1_000_000 }) as any, ready: async () => undefined },
    settlements,
    keysTable: 'keys',
    maxRequestMs: 60_000,
    now: () => now,
    schedule: (task) => void task().catch(() => undefined),
  });
  const request = (id: string) => ({ requestId: id, key, model, startedAtMs: now, promptTokens: 100, outputLimit: 100, n: 1, stream: false });
  // The truth: 40,000 µUSD after two requests held and one refunded; 52,000 at the start.
  const B0 = 4 * HOLD - 4_000 + 2 * HOLD - REFUND;

  // r1 is admitted; the instance then reads the account (it had never read it).
  const r1 = admission.admit(request('r1'));
  await flush();
  admits[0].resolve({ ok: true, accountCounts: accountItem(0, 1).counts });
  const admitted1 = await r1;
  await flush();
  expect(gets).toHaveLength(1);
  gets[0].resolve(accountItem(B0 - HOLD, 1));
  await flush();

  // 31 s later (same minute), r2's admission write is in flight when r1's settlement starts.
  now += 31_000;
  const r2 = admission.admit(request('r2'));
  await flush();
  void admitted1.settle(completed({ prompt_tokens: 100, completion_tokens: 0, total_tokens: 100 }));
  await flush();
  expect(applies).toHaveLength(1);
  // r2 lands; its end schedules a background re-read (the view was read more than 30 s ago).
  admits[1].resolve({ ok: true, accountCounts: accountItem(0, 2).counts });
  await r2;
  await flush();
  // DynamoDB serves the read after r1's settlement landed: the item has its refund...
  const truth = B0 - 2 * HOLD + REFUND;
  for (const g of gets.slice(1)) g.resolve(accountItem(truth, 2));
  await flush();
  // ...and only then does the settlement's continuation run (the alert check awaited first).
  applies[0].resolve({ settled: true, refundMicroUsd: REFUND });
  await flush();

  const view = (admission as any).accounts.get('a1') as Account;
  expect(view.balanceMicroUsd).toBe(truth);
  // The next request must not speculate: the true balance (40,000) is below four holds (44,000).
  expect(admission.foresee(request('r3'))).toMatchObject({ speculate: false });
});
