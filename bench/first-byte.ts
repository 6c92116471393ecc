// The first-byte step shared by `npm run bench` and `bench/ttfb.ts`: streams from an upstream that
// waits 300 ms before its first byte, interleaved round by round across the targets.
import { target, timedRequest, type Target } from './client';

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
export const pct = (xs: number[], p: number) => {
  const s = sorted(xs);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};

export interface FirstByteFigures {
  medianMs: number;
  p95Ms: number;
  failures: number;
  /** Each round's first byte less the `direct` row's of the same round, median and p95 (paired: less noise than the difference of the medians). */
  addedMedianMs?: number;
  addedP95Ms?: number;
}

/**
 * Time to first byte with an upstream that waits 300 ms before its own (a provider's time to first
 * token): streams, interleaved round by round (the order rotates, so no target always follows the
 * same one). Each target's first body byte, median and p95 over the rounds, and paired with the
 * `direct` row's of the same round when there is one. `gapMs`: a pause before each request.
 */
export async function firstByte300(targets: Target[], rounds: number, gapMs = 0): Promise<Record<string, FirstByteFigures>> {
  const times: Record<string, Array<number | undefined>> = Object.fromEntries(targets.map((t) => [t.name, []]));
  const failures: Record<string, number> = Object.fromEntries(targets.map((t) => [t.name, 0]));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(round + i) % targets.length];
      // A pause before each request (bench/ttfb.ts BENCH_TTFB_GAP_MS): every server then waits as
      // long between its own requests as in `npm run bench`, where nine targets take turns.
      if (gapMs) await new Promise((resolve) => setTimeout(resolve, gapMs));
      const r = await timedRequest(t, true);
      if (r.status !== 200 || r.ttfbMs < 0) failures[t.name]++;
      times[t.name][round] = r.status === 200 && r.ttfbMs >= 0 ? r.ttfbMs : undefined;
    }
  }
  const direct = times.direct;
  return Object.fromEntries(
    targets.map((t) => {
      const ok = times[t.name].filter((x): x is number => x !== undefined);
      const added: number[] = [];
      if (direct && t.name !== 'direct') {
        times[t.name].forEach((x, round) => {
          if (x !== undefined && direct[round] !== undefined) added.push(x - direct[round]!);
        });
      }
      const figures: FirstByteFigures = { medianMs: pct(ok, 50), p95Ms: pct(ok, 95), failures: failures[t.name] };
      if (added.length) Object.assign(figures, { addedMedianMs: pct(added, 50), addedP95Ms: pct(added, 95) });
      return [t.name, figures];
    }),
  );
}

/** The long prompt's size in characters of prose (BENCH_TTFB_LONG_CHARS): a coding agent's context is 50,000-400,000. */
export const LONG_PROMPT_CHARS = Number(process.env.BENCH_TTFB_LONG_CHARS ?? 100_000);
const PROSE = 'The gateway relays each answer as the upstream streams it, and the books balance to the micro-dollar. ';

/**
 * The same target with one user message of `chars` characters of prose instead of its own: what
 * the prompt's size costs before the upstream call (body read, validated, counted, sent), side by
 * side with the relays, which only forward it.
 */
export function withLongPrompt(t: Target, chars: number = LONG_PROMPT_CHARS): Target {
  const content = PROSE.repeat(Math.ceil(chars / PROSE.length)).slice(0, chars);
  return target(t.name, t.url, t.path, t.headers, (stream) => JSON.stringify({ ...JSON.parse(t.body(stream)), messages: [{ role: 'user', content }] }));
}
