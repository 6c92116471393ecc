// npx tsx bench/kept-counts.ts: what a conversation's next turn costs to count (lambda/money/tokens.ts
// `countKept`), side by side in one process: an account that sent the same history before (its
// long texts' counts kept) against accounts new to it (counted by the tokenizer). The history is
// BENCH_KEPT_CHARS characters (100,000) of this repository's code; BENCH_KEPT_TURNS turns (20).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chatPromptEstimate, warmTokenizer } from '../lambda/money/tokens';
import { pct } from './first-byte';
import { runMain } from './procs';

const CHARS = Number(process.env.BENCH_KEPT_CHARS ?? 100_000);
const TURNS = Number(process.env.BENCH_KEPT_TURNS ?? 20);

async function main() {
  await warmTokenizer();
  const source = ['chat/pipeline.ts', 'money/admission.ts', 'providers/http.ts'].map((f) => readFileSync(join(__dirname, '../lambda', f), 'utf8')).join('\n');
  const history = source.repeat(Math.ceil(CHARS / source.length)).slice(0, CHARS);
  const turn = (n: number) => ({ messages: [{ role: 'system' as const, content: history }, { role: 'user' as const, content: `turn ${n}: fix the failing test` }] });
  const timed = (account: string, n: number) => {
    const t0 = performance.now();
    chatPromptEstimate(turn(n), undefined, account).tokens();
    return performance.now() - t0;
  };
  // First, what one count costs by size (no account: nothing kept), each text counted once.
  const sizes = [10_000, 100_000, 400_000];
  const bySize = sizes.map((size, i) => {
    const text = source.repeat(Math.ceil((size + 997 * (i + 1)) / source.length)).slice(997 * (i + 1), 997 * (i + 1) + size);
    const t0 = performance.now();
    chatPromptEstimate({ messages: [{ role: 'user', content: text }] }).tokens();
    return `${size}: ${(performance.now() - t0).toFixed(1)} ms`;
  });
  process.stdout.write(`one count of a prompt, by characters (the tokenizer's own merge cache warming as it goes): ${bySize.join(', ')}\n`);
  timed('acct-kept', -1);
  const kept: number[] = [];
  const fresh: number[] = [];
  for (let n = 0; n < TURNS; n++) {
    kept.push(timed('acct-kept', n));
    fresh.push(timed(`acct-new-${n}`, n));
  }
  const k = pct(kept, 50);
  const f = pct(fresh, 50);
  process.stdout.write(
    `a turn with a ${CHARS}-character history, ${TURNS} turns, median ms to count its prompt\n` +
      `  account that sent the history before  ${k.toFixed(2)}\n  account new to it                      ${f.toFixed(2)}\n  ratio                                  ${(f / k).toFixed(0)}×\n`,
  );
}

runMain(main, 'kept-counts');
