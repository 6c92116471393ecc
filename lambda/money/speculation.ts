import type { Hold } from './hold';
import { countsAt, remaining, type WindowCounts } from '../limits/sliding-window';

/**
 * When the upstream call may start while the admission write is still in flight (issue 22):
 * only when this instance's own recent view of the account says the write will almost surely
 * succeed, with the very output limit the call is sent with. Any doubt: today's order.
 */

/** The balance must pay this many holds of the request. */
export const SPECULATION_BALANCE_HOLDS = 4;
/** Requests and tokens of the minute, this request included, stay within this share of each limit. */
export const SPECULATION_LIMIT_SHARE = 0.5;
/** A key with a monthly spend cap keeps this many holds of the request below it. */
export const SPECULATION_CAP_HOLDS = 4;
/** The view was last brought up to date (a read, or this instance's own admission or settlement) at most this long ago for the margins above as they are. */
export const SPECULATION_VIEW_MAX_AGE_MS = 5_000;
/**
 * A view older than SPECULATION_VIEW_MAX_AGE_MS, up to this, must show margins as many times
 * larger as it is older (20 s: 16 holds, an eighth of each limit); older still, no speculation.
 */
export const SPECULATION_VIEW_OLDEST_MS = 30_000;
/** The balance in the view comes from a read of the account item at most this long ago (own writes applied since). */
export const SPECULATION_READ_MAX_AGE_MS = 60_000;

/** One counter (the account's, or a capped key's) and its limits; 0 means no limit. */
export interface CounterView {
  rpm: number;
  tpm: number;
  counts: WindowCounts;
  /** This instance's own admissions on the counter still in flight: counted as admitted with their worst case. */
  inFlight?: { requests: number; rateTokens: number };
}

/** The account as this instance last saw it (CreditAdmission's cache), for the rule. */
export interface AccountView {
  active: boolean;
  balanceMicroUsd: number;
  account: CounterView;
  /** A key with its own caps: its counter; `null` when it has caps but no counter was seen. */
  key?: CounterView | null;
  /** A key with a monthly spend cap: its month's spend and holds; `null` when none was seen this month. */
  spend?: { capMicroUsd: number; usedMicroUsd: number } | null;
  /** When the account item was last read from DynamoDB (undefined: never, its balance is a guess). */
  readAtMs?: number;
  /** When the view last changed by a read, an admission or a settlement of this instance. */
  updatedAtMs: number;
}

export type SpeculationVerdict =
  | { speculate: true; outputTokens: number }
  | { speculate: false; reason: 'no_view' | 'unread' | 'stale' | 'inactive' | 'balance' | 'requests' | 'tokens' | 'spend_cap' };

/**
 * The rule: speculate only when the view is read and recent (within 5 s; up to 30 s with every
 * margin below scaled by age / 5 s), the balance pays
 * SPECULATION_BALANCE_HOLDS × the hold (so admission cannot lower the output to what the balance
 * pays), the minute's requests and tokens with this request stay within SPECULATION_LIMIT_SHARE
 * of each limit (so admission's fit, at most half of what is left, leaves the output as it is),
 * and a capped key's month stays SPECULATION_CAP_HOLDS × the hold below its cap. The output limit
 * sent is then the hold's: the one admission fits.
 */
export function shouldSpeculate(view: AccountView | undefined, hold: Hold, nowMs: number): SpeculationVerdict {
  if (!view) return { speculate: false, reason: 'no_view' };
  if (view.readAtMs === undefined || nowMs - view.readAtMs > SPECULATION_READ_MAX_AGE_MS) return { speculate: false, reason: 'unread' };
  const ageMs = nowMs - view.updatedAtMs;
  if (ageMs > SPECULATION_VIEW_OLDEST_MS) return { speculate: false, reason: 'stale' };
  // Other instances may have spent since: the older the view, the wider the margins it must show.
  const scale = Math.max(1, ageMs / SPECULATION_VIEW_MAX_AGE_MS);
  if (!view.active) return { speculate: false, reason: 'inactive' };
  // This instance's settlements of the account still under way do not stop it (admission waits for
  // them, with the call on the wire): their requests are in the view as admitted, each hold taken
  // and its tokens counted at the worst case, and a settlement only gives back what it did not
  // cost, unless the provider went past the hold (charged as far as the balance goes): then
  // admission refuses or fits a lower limit, and the call is cut and counted (money/README.md).
  if (view.balanceMicroUsd < SPECULATION_BALANCE_HOLDS * scale * hold.holdMicroUsd) return { speculate: false, reason: 'balance' };
  const share = SPECULATION_LIMIT_SHARE / scale;
  const counters = [view.account];
  if (view.key === null) return { speculate: false, reason: 'requests' };
  if (view.key) counters.push(view.key);
  for (const c of counters) {
    const at = countsAt(c.counts, nowMs);
    const ahead = c.inFlight ?? { requests: 0, rateTokens: 0 };
    if (c.rpm && used(c.rpm, at, 'requests', nowMs) + ahead.requests + 1 > share * c.rpm) return { speculate: false, reason: 'requests' };
    if (c.tpm && used(c.tpm, at, 'tokens', nowMs) + ahead.rateTokens + hold.rateTokens > share * c.tpm) return { speculate: false, reason: 'tokens' };
  }
  if (view.spend === null) return { speculate: false, reason: 'spend_cap' };
  if (view.spend && view.spend.usedMicroUsd + SPECULATION_CAP_HOLDS * scale * hold.holdMicroUsd > view.spend.capMicroUsd) {
    return { speculate: false, reason: 'spend_cap' };
  }
  return { speculate: true, outputTokens: hold.outputTokens };
}

/** What the sliding window counts of a limit at `nowMs`: the limit less what it has left. */
function used(limit: number, at: WindowCounts, kind: 'requests' | 'tokens', nowMs: number): number {
  return kind === 'requests' ? limit - remaining(limit, at.prevRequests, at.requests, nowMs) : limit - remaining(limit, at.prevTokens, at.tokens, nowMs);
}
