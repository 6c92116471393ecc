// npx tsx bench/parse.ts: what checking a coding agent's long request costs, the whole zod schema
// against the messages taken without zod (lambda/contract/request.ts `parseTakingMessages`), for
// Chat (bench/first-byte.ts's agent prompt, 100,000 characters) and for Messages (a Claude
// Code-like turn: 40 rounds of cached text, a tool use and a 1,500-character tool result; 15 tools).
// Each side in its own fresh process (so "first" is a cold process's first check), each iteration
// the body parsed from its JSON and then checked, the two timed apart (timed together, one
// iteration's garbage falls into the next one's check). Medians of BENCH_PARSE_ROUNDS (200) after
// 100 warm-up iterations. See docs/BENCHMARKS.md, "The long prompt, thirteenth pass".
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { chatCompletionRequestSchema, parseChatCompletionRequest, parseRequestBody } from '../lambda/contract/request';
import { parseMessagesRequest, parseWholeMessagesRequest } from '../lambda/messages/request';
import { longPrompt } from './first-byte';

const ROUNDS = Number(process.env.BENCH_PARSE_ROUNDS ?? 200);

function claudeCodeTurn(): object {
  const round = (i: number) => [
    { role: 'user', content: [{ type: 'text', text: `Please read the file ${i}.`, cache_control: { type: 'ephemeral' } }] },
    { role: 'assistant', content: [{ type: 'text', text: 'Reading.' }, { type: 'tool_use', id: `toolu_${i}`, name: 'Read', input: { file_path: `/src/f${i}.ts` } }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: `toolu_${i}`, content: [{ type: 'text', text: 'x'.repeat(1500) }] }] },
  ];
  return {
    model: 'claude-sonnet-4-5',
    max_tokens: 32000,
    stream: true,
    system: [{ type: 'text', text: 'You are Claude Code.'.repeat(100), cache_control: { type: 'ephemeral' } }],
    messages: Array.from({ length: 40 }, (_, i) => round(i)).flat(),
    tools: Array.from({ length: 15 }, (_, i) => ({ name: `T${i}`, description: 'd'.repeat(300), input_schema: { type: 'object', properties: { p: { type: 'string' } } } })),
  };
}

const CASES: Record<string, { body: () => object; whole: (b: unknown) => unknown; taken: (b: unknown) => unknown }> = {
  chat: { body: () => ({ model: 'gpt-4o', stream: true, ...longPrompt(100_000, 'agent') }), whole: (b) => parseRequestBody(chatCompletionRequestSchema(), b), taken: parseChatCompletionRequest },
  messages: { body: claudeCodeTurn, whole: parseWholeMessagesRequest, taken: parseMessagesRequest },
};

/** In a child: one case, one side; prints {first, parse, check} in ms. */
function measure(name: string, side: 'whole' | 'taken'): void {
  const c = CASES[name];
  const text = JSON.stringify(c.body());
  const check = c[side];
  const parse: number[] = [];
  const checked: number[] = [];
  let first = 0;
  for (let i = 0; i < 100 + ROUNDS; i++) {
    const t0 = performance.now();
    const body = JSON.parse(text);
    const t1 = performance.now();
    check(body);
    const t2 = performance.now();
    if (i === 0) first = t2 - t1;
    if (i >= 100) {
      parse.push(t1 - t0);
      checked.push(t2 - t1);
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  process.stdout.write(JSON.stringify({ first, parse: median(parse), check: median(checked) }));
}

function main(): void {
  const rows = ['case       side    first ms   JSON.parse ms   check ms (median)'];
  for (const name of Object.keys(CASES)) {
    for (const side of ['whole', 'taken'] as const) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', __filename, name, side], { encoding: 'utf8' });
      const r = JSON.parse(out) as { first: number; parse: number; check: number };
      rows.push(`${name.padEnd(11)}${side.padEnd(8)}${r.first.toFixed(2).padStart(8)}${r.parse.toFixed(3).padStart(16)}${r.check.toFixed(3).padStart(11)}`);
    }
  }
  process.stdout.write(`${rows.join('\n')}\n(whole: zod checks every message; taken: the messages of the common shapes taken without zod)\n`);
}

if (process.argv[2]) measure(process.argv[2], process.argv[3] as 'whole' | 'taken');
else main();
