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
 * The long prompt's shape (BENCH_TTFB_LONG_SHAPE): `one` user message of prose (the default), or
 * `agent`, a coding agent's history of about the same size: a system prompt, then turns of a user
 * message, an assistant tool call and the tool's result (a file's text), with 15 tools declared.
 */
export const LONG_PROMPT_SHAPE = process.env.BENCH_TTFB_LONG_SHAPE === 'agent' ? 'agent' : 'one';

/**
 * The same target with `chars` characters of prompt instead of its own (`LONG_PROMPT_SHAPE`): what
 * the prompt's size costs before the upstream call (body read, validated, counted, sent), side by
 * side with the relays, which only forward it.
 */
export function withLongPrompt(t: Target, chars: number = LONG_PROMPT_CHARS): Target {
  const prompt = longPrompt(chars);
  return target(t.name, t.url, t.path, t.headers, (stream) => JSON.stringify({ ...JSON.parse(t.body(stream)), ...prompt }));
}

/** The long prompt's fields (`messages`, and `tools` for an agent's), `chars` characters in the shape `LONG_PROMPT_SHAPE` says. */
export function longPrompt(chars: number = LONG_PROMPT_CHARS, shape: 'one' | 'agent' = LONG_PROMPT_SHAPE): { messages: object[]; tools?: object[] } {
  const prose = (n: number) => PROSE.repeat(Math.ceil(n / PROSE.length)).slice(0, n);
  return shape === 'agent' ? agentPrompt(chars, prose) : { messages: [{ role: 'user', content: prose(chars) }] };
}

function agentPrompt(chars: number, prose: (n: number) => string): { messages: object[]; tools: object[] } {
  const code = (n: number, turn: number) =>
    Array.from({ length: Math.ceil(n / 48) }, (_, i) => `  const v${i} = read("src/f${turn}.ts", ${i}); // "${i}"`).join('\n').slice(0, n);
  const messages: object[] = [{ role: 'system', content: prose(4_000) }];
  let size = 4_000;
  for (let turn = 0; size < chars; turn++) {
    const file = Math.min(3_000, chars - size);
    messages.push(
      { role: 'user', content: prose(200) },
      { role: 'assistant', content: null, tool_calls: [{ id: `call_${turn}`, type: 'function', function: { name: 'read_file', arguments: JSON.stringify({ path: `src/f${turn}.ts` }) } }] },
      { role: 'tool', tool_call_id: `call_${turn}`, content: code(file, turn) },
    );
    size += 200 + file;
  }
  const tools = Array.from({ length: 15 }, (_, i) => ({
    type: 'function',
    function: { name: `tool_${i}`, description: prose(300), parameters: { type: 'object', properties: { path: { type: 'string', description: 'a path' } }, required: ['path'] } },
  }));
  return { messages, tools };
}
