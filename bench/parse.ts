// npx tsx bench/parse.ts: what checking a coding agent's long request costs, the whole zod schema
// against the messages taken without zod (lambda/contract/request.ts `parseTakingMessages`), for
// Chat (bench/first-byte.ts's agent prompt, 100,000 characters), for Messages (a Claude Code-like
// turn: 40 rounds of cached text, a tool use and a 1,500-character tool result; 15 tools) and for
// Responses (a Codex-like turn of about 100,000 characters, its input items taken).
// Each side in its own fresh process (so "first" is a cold process's first check), each iteration
// the body parsed from its JSON and then checked, the two timed apart (timed together, one
// iteration's garbage falls into the next one's check). Medians of BENCH_PARSE_ROUNDS (200) after
// 100 warm-up iterations. See docs/BENCHMARKS.md, "The long prompt, thirteenth pass".
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { chatCompletionRequestSchema, parseChatCompletionRequest, parseRequestBody } from '../lambda/contract/request';
import { parseMessagesRequest, parseWholeMessagesRequest } from '../lambda/messages/request';
import { parseCreateResponseRequest, parseWholeCreateResponseRequest } from '../lambda/contract/responses';
import { decodeResponsesRequest } from '../lambda/codecs/openai-responses';
import { answerPlan } from '../lambda/responses/answer-plan';
import { parseCatalog } from '../lambda/catalog';
import { benchCatalogDocument, BENCH_MODEL } from './servers/bench-catalog';
import { longPrompt } from './first-byte';

const ROUNDS = Number(process.env.BENCH_PARSE_ROUNDS ?? 200);
/** Fresh processes a side for the Responses endpoint's first request (BENCH_PARSE_FRESH). */
const FRESH = Number(process.env.BENCH_PARSE_FRESH ?? 9);

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

/** A Codex-like Responses request of about 100,000 characters: instructions, then turns of reasoning, a shell call, its output (a file's text) and an assistant message; 10 tools. */
function codexTurn(): object {
  const prose = (n: number) => 'The gateway counts every token it holds for. '.repeat(Math.ceil(n / 46)).slice(0, n);
  const code = (n: number, turn: number) => Array.from({ length: Math.ceil(n / 48) }, (_, i) => `  const v${i} = read("src/f${turn}.ts", ${i}); // "${i}"`).join('\n').slice(0, n);
  const input: object[] = [
    { type: 'message', role: 'developer', content: [{ type: 'input_text', text: prose(2_000) }] },
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: prose(1_000) }] },
  ];
  for (let turn = 0, size = 3_000; size < 100_000; turn++, size += 3_300) {
    input.push(
      { type: 'reasoning', summary: [{ type: 'summary_text', text: prose(100) }], content: null, encrypted_content: `gAAAA${'x'.repeat(400)}` },
      { type: 'function_call', name: 'shell', arguments: JSON.stringify({ command: ['bash', '-lc', `cat src/f${turn}.ts`] }), call_id: `call_${turn}` },
      { type: 'function_call_output', call_id: `call_${turn}`, output: code(3_000, turn) },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: prose(200), annotations: [] }] },
    );
  }
  const tools = Array.from({ length: 10 }, (_, i) => ({ type: 'function', name: `tool_${i}`, description: prose(300), strict: false, parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } } } } }));
  return { model: 'gpt-5-codex', instructions: prose(8_000), input, tools, tool_choice: 'auto', parallel_tool_calls: false, reasoning: { effort: 'medium', summary: 'auto' }, store: false, stream: true, include: ['reasoning.encrypted_content'], prompt_cache_key: 'k' };
}

const CASES: Record<string, { body: () => object; whole: (b: unknown) => unknown; taken: (b: unknown) => unknown }> = {
  chat: { body: () => ({ model: 'gpt-4o', stream: true, ...longPrompt(100_000, 'agent') }), whole: (b) => parseRequestBody(chatCompletionRequestSchema(), b), taken: parseChatCompletionRequest },
  messages: { body: claudeCodeTurn, whole: parseWholeMessagesRequest, taken: parseMessagesRequest },
  responses: { body: codexTurn, whole: parseWholeCreateResponseRequest, taken: parseCreateResponseRequest },
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

/**
 * In a child: the Responses endpoint's steps before the upstream call on a fresh process's first
 * request (the Codex-like turn): the check (`side`), the codec's decoding, and the answer's plan
 * (lambda/responses/answer-plan.ts: the prompt's estimate and billing ask on the decoded request,
 * and what a Chat route would refuse; before 2026-12-07 a Chat request built and checked with
 * Chat's schema, lambda/responses/chat-seam.ts).
 */
function measureSteps(side: 'whole' | 'taken'): void {
  const text = JSON.stringify({ ...codexTurn(), model: BENCH_MODEL });
  const model = parseCatalog(benchCatalogDocument('http://127.0.0.1:9'), 'bench').get(BENCH_MODEL)!;
  const t0 = performance.now();
  const request = CASES.responses[side](JSON.parse(text)) as ReturnType<typeof parseCreateResponseRequest>;
  const t1 = performance.now();
  const decoded = decodeResponsesRequest(request, {}, {});
  const t2 = performance.now();
  answerPlan(decoded, model, 'acct_bench');
  const t3 = performance.now();
  process.stdout.write(JSON.stringify({ check: t1 - t0, decode: t2 - t1, plan: t3 - t2 }));
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
  rows.push('(whole: zod checks every message; taken: the messages of the common shapes taken without zod)', '');
  rows.push(`Responses, a fresh process's first request, median of ${FRESH} processes a side (alternating), ms: check, decode, the answer's plan, sum`);
  const steps: Record<'whole' | 'taken', number[][]> = { whole: [], taken: [] };
  for (let i = 0; i < FRESH; i++) {
    for (const side of ['whole', 'taken'] as const) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', __filename, 'responses-steps', side], { encoding: 'utf8' });
      const r = JSON.parse(out) as { check: number; decode: number; plan?: number; seam?: number };
      const plan = r.plan ?? r.seam ?? NaN;
      steps[side].push([r.check, r.decode, plan, r.check + r.decode + plan]);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const side of ['whole', 'taken'] as const) {
    rows.push(`${side.padEnd(8)}${[0, 1, 2, 3].map((c) => median(steps[side].map((r) => r[c])).toFixed(2).padStart(9)).join('')}`);
  }
  process.stdout.write(`${rows.join('\n')}\n`);
}

if (process.argv[2] === 'responses-steps') measureSteps(process.argv[3] as 'whole' | 'taken');
else if (process.argv[2]) measure(process.argv[2], process.argv[3] as 'whole' | 'taken');
else main();
