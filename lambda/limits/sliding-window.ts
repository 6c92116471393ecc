export const WINDOW_MS = 60_000;

/** The minute counters as they live on the account item. */
export interface WindowCounts {
  /** Minute index (ms since the epoch / 60,000) that `requests` and `tokens` belong to. */
  window: number;
  requests: number;
  tokens: number;
  /** Counts of minute `window - 1`; immutable once that minute is over. */
  prevRequests: number;
  prevTokens: number;
}

export const minuteOf = (nowMs: number) => Math.floor(nowMs / WINDOW_MS);

/** The counters as they stand in the minute of `nowMs`, rolling over in memory if the item is older. */
export function countsAt(counts: WindowCounts, nowMs: number): WindowCounts {
  const minute = minuteOf(nowMs);
  if (counts.window === minute) return counts;
  if (counts.window === minute - 1) {
    return { window: minute, requests: 0, tokens: 0, prevRequests: counts.requests, prevTokens: counts.tokens };
  }
  return { window: minute, requests: 0, tokens: 0, prevRequests: 0, prevTokens: 0 };
}

/**
 * What the current minute may still hold: the limit less the previous minute's count times the
 * share of the previous minute still inside the last 60 s.
 */
export function slidingWindowAllowance(limit: number, prevCount: number, nowMs: number): number {
  const msLeftOfPrev = WINDOW_MS - (nowMs % WINDOW_MS);
  return limit - (prevCount * msLeftOfPrev) / WINDOW_MS;
}

/** The highest current-minute count at which `need` more still fits (may be negative: nothing fits). */
export function maxCountBefore(limit: number, prevCount: number, need: number, nowMs: number): number {
  return Math.floor(slidingWindowAllowance(limit, prevCount, nowMs) - need + 1e-9);
}

/** What the current minute still allows, floored at zero. */
export function remaining(limit: number, prevCount: number, count: number, nowMs: number): number {
  return Math.max(0, Math.floor(slidingWindowAllowance(limit, prevCount, nowMs) + 1e-9) - count);
}

/** Milliseconds until `need` more fits, assuming nothing else is admitted meanwhile; 0 if it fits now. */
export function msUntilAllowed(limit: number, prevCount: number, count: number, need: number, nowMs: number): number {
  if (need > limit) return Number.POSITIVE_INFINITY;
  const intoMinute = nowMs % WINDOW_MS;
  // In this minute: prev * (W - t) / W <= limit - count - need.
  const room = limit - count - need;
  if (room >= 0) {
    if (prevCount <= room) return 0;
    const t = WINDOW_MS - (room * WINDOW_MS) / prevCount;
    return Math.max(0, Math.ceil(t - intoMinute));
  }
  // Next minute: this minute's count becomes the previous one and the current count is zero.
  const untilNext = WINDOW_MS - intoMinute;
  const roomNext = limit - need;
  if (count <= roomNext) return untilNext;
  return Math.ceil(untilNext + WINDOW_MS - (roomNext * WINDOW_MS) / count);
}

/**
 * Milliseconds until the whole limit is available again, told as at most 60 s: a per-minute limit
 * never names a reset beyond a minute (what is counted now weighs on, sliding out, through the
 * next minute; a client that comes back after 60 s finds most of it free).
 */
export function msUntilReset(prevCount: number, count: number, nowMs: number): number {
  const intoMinute = nowMs % WINDOW_MS;
  if (count > 0) return Math.min(WINDOW_MS, 2 * WINDOW_MS - intoMinute);
  if (prevCount > 0) return WINDOW_MS - intoMinute;
  return 0;
}

/** A wait as told to clients (`retry-after`, `retry-after-ms`, "try again in"): at most 60 s on a per-minute limit. */
export function toldWaitMs(waitMs: number): number {
  return Math.min(WINDOW_MS, Math.max(0, Math.ceil(waitMs)));
}

/** OpenAI's duration form: `250ms`, `6s`, `1.5s`, `1m0s`, `1m30.5s`. */
export function formatResetDuration(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  if (whole < 1000) return `${whole}ms`;
  const minutes = Math.floor(whole / 60_000);
  const seconds = Number(((whole % 60_000) / 1000).toFixed(3));
  return minutes ? `${minutes}m${seconds}s` : `${seconds}s`;
}
