import { computeHold } from '../../lambda/money/hold';
import {
  shouldSpeculate,
  SPECULATION_READ_MAX_AGE_MS,
  SPECULATION_VIEW_MAX_AGE_MS,
  SPECULATION_VIEW_OLDEST_MS,
  type AccountView,
} from '../../lambda/money/speculation';
import { emfMetrics } from '../../lambda/observability/metrics';
import { DEFAULT_METRICS_NAMESPACE, SERVICE_DIMENSION } from '../../lib';
import { emfDataPoints, pointsOf } from '../support/emf';

/** The rule of overlapped admission (money/speculation.ts), at its edges. */

const NOW = 1_800_000_000_000 + 30_000; // mid-minute
const MINUTE = Math.floor(NOW / 60_000);
/** 10 µUSD a prompt token, 100 µUSD an output token (in nano-USD per token). */
const model = { maxOutputTokens: 1000, contextWindow: 100_000, price: { inputPerToken: 10_000, outputPerToken: 100_000, cachedInputPerToken: 0, cacheWritePerToken: 0, cacheWrite1hPerToken: 0, serverToolPerCall: {}, serviceTiers: {} } } as any;
// 100 prompt tokens × 10 + 100 output × 100 = 11,000 µUSD; 200 tokens of the minute.
const hold = computeHold(model, { promptTokens: 100, outputLimit: 100, n: 1 });

function view(overrides: Partial<AccountView> = {}): AccountView {
  return {
    active: true,
    balanceMicroUsd: 4 * hold.holdMicroUsd,
    account: { rpm: 100, tpm: 10_000, counts: { window: MINUTE, requests: 0, tokens: 0, prevRequests: 0, prevTokens: 0 } },
    readAtMs: NOW - 1_000,
    updatedAtMs: NOW - 1_000,
    ...overrides,
  };
}

const counts = (requests: number, tokens: number) => ({ window: MINUTE, requests, tokens, prevRequests: 0, prevTokens: 0 });

describe('shouldSpeculate', () => {
  it('speculates with the hold’s own output limit when the view is read, recent and far from every limit', () => {
    expect(hold.holdMicroUsd).toBe(11_000);
    expect(shouldSpeculate(view(), hold, NOW)).toEqual({ speculate: true, outputTokens: 100 });
  });

  it('does not without a view, a view never read, read too long ago, or not brought up to date lately', () => {
    expect(shouldSpeculate(undefined, hold, NOW)).toMatchObject({ speculate: false, reason: 'no_view' });
    expect(shouldSpeculate(view({ readAtMs: undefined }), hold, NOW)).toMatchObject({ reason: 'unread' });
    expect(shouldSpeculate(view({ readAtMs: NOW - SPECULATION_READ_MAX_AGE_MS - 1 }), hold, NOW)).toMatchObject({ reason: 'unread' });
    expect(shouldSpeculate(view({ updatedAtMs: NOW - SPECULATION_VIEW_OLDEST_MS - 1, balanceMicroUsd: 1e12 }), hold, NOW)).toMatchObject({ reason: 'stale' });
    // Just past 5 s, the four holds that were enough a moment earlier are not.
    expect(shouldSpeculate(view({ updatedAtMs: NOW - SPECULATION_VIEW_MAX_AGE_MS }), hold, NOW)).toMatchObject({ speculate: true });
    expect(shouldSpeculate(view({ updatedAtMs: NOW - SPECULATION_VIEW_MAX_AGE_MS - 1 }), hold, NOW)).toMatchObject({ reason: 'balance' });
    expect(shouldSpeculate(view({ active: false }), hold, NOW)).toMatchObject({ reason: 'inactive' });
  });

  it('speculates on a view up to 30 s old only with every margin scaled by its age (20 s: 16 holds, an eighth of each limit)', () => {
    const old = NOW - 4 * SPECULATION_VIEW_MAX_AGE_MS;
    expect(shouldSpeculate(view({ updatedAtMs: old, balanceMicroUsd: 16 * hold.holdMicroUsd }), hold, NOW)).toEqual({ speculate: true, outputTokens: 100 });
    expect(shouldSpeculate(view({ updatedAtMs: old, balanceMicroUsd: 16 * hold.holdMicroUsd - 1 }), hold, NOW)).toMatchObject({ reason: 'balance' });
    const rich = { updatedAtMs: old, balanceMicroUsd: 1e12 };
    // 100 requests a minute: 11 + this one ≤ 12.5; 12 + this one is not.
    expect(shouldSpeculate(view({ ...rich, account: { rpm: 100, tpm: 0, counts: counts(11, 0) } }), hold, NOW)).toMatchObject({ speculate: true });
    expect(shouldSpeculate(view({ ...rich, account: { rpm: 100, tpm: 0, counts: counts(12, 0) } }), hold, NOW)).toMatchObject({ reason: 'requests' });
    // 10,000 tokens a minute: 1,050 + this request's 200 ≤ 1,250; 1,051 + 200 is not.
    expect(shouldSpeculate(view({ ...rich, account: { rpm: 0, tpm: 10_000, counts: counts(0, 1_050) } }), hold, NOW)).toMatchObject({ speculate: true });
    expect(shouldSpeculate(view({ ...rich, account: { rpm: 0, tpm: 10_000, counts: counts(0, 1_051) } }), hold, NOW)).toMatchObject({ reason: 'tokens' });
    // A capped key's month keeps 16 holds below its cap.
    expect(shouldSpeculate(view({ ...rich, spend: { capMicroUsd: 16 * hold.holdMicroUsd, usedMicroUsd: 1 } }), hold, NOW)).toMatchObject({ reason: 'spend_cap' });
    expect(shouldSpeculate(view({ ...rich, spend: { capMicroUsd: 16 * hold.holdMicroUsd, usedMicroUsd: 0 } }), hold, NOW)).toMatchObject({ speculate: true });
  });

  it('needs a balance of four holds', () => {
    expect(shouldSpeculate(view({ balanceMicroUsd: 4 * hold.holdMicroUsd - 1 }), hold, NOW)).toMatchObject({ reason: 'balance' });
  });

  it('keeps the minute’s requests and tokens, this request included, within half of each limit', () => {
    expect(shouldSpeculate(view({ account: { rpm: 100, tpm: 10_000, counts: counts(49, 0) } }), hold, NOW).speculate).toBe(true);
    expect(shouldSpeculate(view({ account: { rpm: 100, tpm: 10_000, counts: counts(50, 0) } }), hold, NOW)).toMatchObject({ reason: 'requests' });
    expect(shouldSpeculate(view({ account: { rpm: 100, tpm: 10_000, counts: counts(0, 4_800) } }), hold, NOW).speculate).toBe(true);
    expect(shouldSpeculate(view({ account: { rpm: 100, tpm: 10_000, counts: counts(0, 4_801) } }), hold, NOW)).toMatchObject({ reason: 'tokens' });
    // The previous minute weighs by the share of it still inside the last 60 s (half, at mid-minute).
    const prev = { window: MINUTE, requests: 0, tokens: 0, prevRequests: 100, prevTokens: 0 };
    expect(shouldSpeculate(view({ account: { rpm: 100, tpm: 10_000, counts: prev } }), hold, NOW)).toMatchObject({ reason: 'requests' });
    // A key's own caps count the same way; a capped key whose counter was never seen does not speculate.
    expect(shouldSpeculate(view({ key: { rpm: 10, tpm: 0, counts: counts(5, 0) } }), hold, NOW)).toMatchObject({ reason: 'requests' });
    expect(shouldSpeculate(view({ key: null }), hold, NOW).speculate).toBe(false);
  });

  it('keeps four holds between a capped key’s month and its cap', () => {
    expect(shouldSpeculate(view({ spend: { capMicroUsd: 100_000, usedMicroUsd: 56_000 } }), hold, NOW).speculate).toBe(true);
    expect(shouldSpeculate(view({ spend: { capMicroUsd: 100_000, usedMicroUsd: 56_001 } }), hold, NOW)).toMatchObject({ reason: 'spend_cap' });
    expect(shouldSpeculate(view({ spend: null }), hold, NOW)).toMatchObject({ reason: 'spend_cap' });
  });
});

it('emits SpeculativeCallsCancelled with its reason as an EMF dimension', () => {
  const lines: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    return true;
  });
  try {
    const metrics = emfMetrics(DEFAULT_METRICS_NAMESPACE);
    metrics.speculativeCallCancelled!('refused');
    metrics.speculativeCallCancelled!('limit_changed');
  } finally {
    spy.mockRestore();
  }
  const points = emfDataPoints(lines);
  const of = (reason: string) => pointsOf(points, DEFAULT_METRICS_NAMESPACE, 'SpeculativeCallsCancelled', { ...SERVICE_DIMENSION, Reason: reason }).map((p) => p.value);
  expect(of('refused')).toEqual([1]);
  expect(of('limit_changed')).toEqual([1]);
});
