// npx tsx bench/converse.ts: what a request on a Bedrock route spends making its prompt into
// Converse blocks, with an image of BENCH_CONVERSE_MB (5) MB as a data URL. Such a request asks
// `converseRequest` three times (the refusal probe before its hold, `thinkingBilling`, the call),
// each on a prompt decoded afresh per round: side by side in one run, one call alone and the three
// in a row. The prompt's blocks are made once per prompt (lambda/providers/bedrock/request.ts
// `conversePrompt`), so the three cost about one; before, each made them again (about three).
import { decodeChatRequest } from '../lambda/codecs/openai-chat';
import { parseChatCompletionRequest } from '../lambda/contract/request';
import { callFor, heldOutputLimit } from '../lambda/core/call';
import { converseRequest } from '../lambda/providers/bedrock/request';

const MB = Number(process.env.BENCH_CONVERSE_MB ?? 5);
const ROUNDS = Number(process.env.BENCH_CONVERSE_ROUNDS ?? 61);
const MODEL = 'anthropic.claude-3-5-sonnet-20241022-v2:0';
const image = `data:image/png;base64,${Buffer.alloc(MB * 1024 * 1024, 7).toString('base64')}`;
const decoded = () =>
  decodeChatRequest(parseChatCompletionRequest({ model: 'gw', messages: [{ role: 'user', content: [{ type: 'text', text: 'What is in it?' }, { type: 'image_url', image_url: { url: image } }] }] }));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const one: number[] = [];
const three: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  // Interleaved, each on a prompt of its own (decoded outside the timing).
  let d = decoded();
  let t0 = performance.now();
  converseRequest(callFor(d, heldOutputLimit(8192)), MODEL);
  one.push(performance.now() - t0);
  d = decoded();
  t0 = performance.now();
  for (const limit of [8192, 8192, 4096]) converseRequest(callFor(d, heldOutputLimit(limit)), MODEL);
  three.push(performance.now() - t0);
}
console.log(`Node ${process.version}, a ${MB} MB image, median of ${ROUNDS} rounds (ms):`);
console.log(`  one converseRequest:                              ${median(one).toFixed(2)}`);
console.log(`  probe + thinkingBilling + call (three, one prompt): ${median(three).toFixed(2)}  (${(median(three) / median(one)).toFixed(2)}× one)`);
