import { join } from 'node:path';
import { chatPromptEstimate, countTokens, estimatePromptTokens, keptCountsSize, plusTokens, promptEstimate, setKeptCountBudget, warmTokenizer } from '../../lambda/money/tokens';
import { estimateMessagesPromptTokens, messagesPromptEstimate } from '../../lambda/messages/tokens';
import { parseCountTokensRequest } from '../../lambda/messages/request';
import type { TokenRules } from '../../lambda/catalog';

/**
 * A prompt's estimate in two steps (issue 22): the bound, from the UTF-8 size, known before the
 * tokenizer runs and never below its count (a speculative call goes upstream on it); the count,
 * taken once, equal to what the estimate always was.
 */

const RULES: TokenRules = { image: { kind: 'tiles', base: 85, tile: 170 }, textMargin: 1 };
const CLAUDE_LIKE: TokenRules = { image: { kind: 'tiles', base: 85, tile: 170 }, textMargin: 1.15 };

const TEXTS = [
  'Hello! Say something short, please.',
  'The quick brown fox jumps over the lazy dog. '.repeat(500),
  '日本語のテキストと中文文本混在。'.repeat(300),
  '😀🎉👍🏽🇫🇷'.repeat(400),
  'a'.repeat(20_000),
  '{"type":"object","properties":{"x":{"type":"number"}}} \u0000\u007f\u0080\uffff',
  '    \n\n\t\t  '.repeat(1000),
];

beforeAll(() => {
  // The real o200k_base, through a module that tells which texts are counted.
  process.env.ITAPI_TOKENIZER_MODULE = join(__dirname, '../support/observed-tokenizer.cjs');
  return warmTokenizer();
});

describe('promptEstimate', () => {
  it('bounds every count from above with the UTF-8 size', () => {
    for (const margin of [1, 1.15]) {
      for (const text of TEXTS) {
        const estimate = promptEstimate(7, [text, 'and a tool: {"name":"f"}'], margin);
        const tokens = estimate.tokens();
        expect({ text: text.slice(0, 20), ok: estimate.bound >= tokens }).toEqual({ text: text.slice(0, 20), ok: true });
        expect(estimate.bound).toBe(7 + Math.ceil((Buffer.byteLength(text) + Buffer.byteLength('and a tool: {"name":"f"}')) * margin));
        expect(estimate.tokens()).toBe(tokens);
      }
    }
    // Most text is well below its bound: what a speculative call pays for in the rule's margins, and nothing more.
    const prose = promptEstimate(0, [TEXTS[1]], 1);
    expect(prose.tokens()).toBeLessThan(prose.bound / 3);
  });

  it('counts as the estimate always did, for Chat and Messages requests alike', () => {
    const chat = {
      messages: [
        { role: 'system' as const, content: TEXTS[1] },
        { role: 'user' as const, content: [{ type: 'text' as const, text: TEXTS[2] }] },
      ],
      tools: [{ type: 'function' as const, function: { name: 'lookup', parameters: { type: 'object' } } }],
    };
    const estimate = chatPromptEstimate(chat, CLAUDE_LIKE);
    expect(estimate.tokens()).toBe(estimatePromptTokens(chat, CLAUDE_LIKE));
    expect(estimate.bound).toBeGreaterThanOrEqual(estimate.tokens());
    // The framing (3 a request, 4 a message) is in both.
    expect(chatPromptEstimate({ messages: [{ role: 'user', content: '' }] }, RULES)).toMatchObject({ bound: 7 });
    expect(chatPromptEstimate({ messages: [{ role: 'user', content: '' }] }, RULES).tokens()).toBe(7);

    const messages = parseCountTokensRequest({ model: 'm', system: TEXTS[3], messages: [{ role: 'user', content: TEXTS[4] }] });
    const m = messagesPromptEstimate(messages, CLAUDE_LIKE);
    expect(m.tokens()).toBe(estimateMessagesPromptTokens(messages, CLAUDE_LIKE));
    expect(m.bound).toBeGreaterThanOrEqual(m.tokens());
  });

  it('counts special-token text (<|endoftext|>, <|im_start|>) as the text it is, where gpt-tokenizer refuses it by default', () => {
    const text = 'Training data ends with <|endoftext|>; chat turns start with <|im_start|>user and <|fim_prefix|> marks code.';
    const tokens = countTokens(text);
    expect(tokens).toBeGreaterThan(20);
    expect(tokens).toBeLessThan(Buffer.byteLength(text));
    const estimate = chatPromptEstimate({ messages: [{ role: 'user', content: text.repeat(100) }] });
    expect(estimate.tokens()).toBeLessThanOrEqual(estimate.bound);
  });

  it('adds tokens known apart (inputs of unknown size) to both', () => {
    const estimate = plusTokens(promptEstimate(3, [TEXTS[0]], 1), 1_000);
    expect(estimate.bound).toBe(3 + Buffer.byteLength(TEXTS[0]) + 1_000);
    expect(estimate.tokens()).toBe(promptEstimate(3, [TEXTS[0]], 1).tokens() + 1_000);
  });
});

describe("a long text's count kept for its account", () => {
  /** Texts the tokenizer was given, through test/support/observed-tokenizer.cjs (loaded in beforeAll). */
  const seen: string[] = [];
  const counted = globalThis as { __itapiCounted?: (text: string) => void };
  beforeAll(() => {
    counted.__itapiCounted = (text) => seen.push(text);
  });
  afterAll(() => {
    counted.__itapiCounted = undefined;
  });
  const countsOf = (marker: string) => seen.filter((t) => t.includes(marker)).length;

  it("counts a conversation's earlier messages once per account, and again for another account", () => {
    const history = `history ${Math.random()} ${'The agent read the file and found the bug. '.repeat(200)}`;
    const turn = (n: number) => ({
      messages: [
        { role: 'system' as const, content: history },
        { role: 'user' as const, content: `turn ${n}` },
      ],
    });
    const first = chatPromptEstimate(turn(1), RULES, 'acct-a').tokens();
    expect(countsOf(history.slice(0, 30))).toBeGreaterThan(0);
    const once = countsOf(history.slice(0, 30));
    // The next turn: the history is not counted again (its new message counts as many tokens as the last).
    const second = chatPromptEstimate(turn(2), RULES, 'acct-a').tokens();
    expect(countsOf(history.slice(0, 30))).toBe(once);
    expect(second).toBe(first);
    // Another account's same text is counted again (nothing is shared across accounts).
    expect(chatPromptEstimate(turn(3), RULES, 'acct-b').tokens()).toBe(first);
    expect(countsOf(history.slice(0, 30))).toBe(2 * once);
    // No account named: counted each time.
    chatPromptEstimate(turn(4), RULES).tokens();
    expect(countsOf(history.slice(0, 30))).toBe(3 * once);
    // Messages keeps them too.
    const messages = parseCountTokensRequest({ model: 'm', system: history, messages: [{ role: 'user', content: 'hi' }] });
    messagesPromptEstimate(messages, RULES, 'acct-a').tokens();
    messagesPromptEstimate(messages, RULES, 'acct-a').tokens();
    expect(countsOf(history.slice(0, 30))).toBe(3 * once);
  });

  it('counts short texts each time', () => {
    const short = `short ${Math.random()}`;
    chatPromptEstimate({ messages: [{ role: 'user', content: short }] }, RULES, 'acct-a').tokens();
    chatPromptEstimate({ messages: [{ role: 'user', content: short }] }, RULES, 'acct-a').tokens();
    expect(countsOf(short)).toBe(2);
  });

  it('keeps texts within its budget, the least recently used dropped first', () => {
    // A 10,000-character budget (8 M in service): four 2,000-character texts fit, a fifth drops one.
    setKeptCountBudget(10_000);
    try {
      const marker = `lru ${Math.random()}`;
      const text = (i: number) => `${marker} ${i} ${'lorem ipsum dolor sit amet '.repeat(80)}`.slice(0, 2_000);
      const count = (i: number) => promptEstimate(0, [text(i)], 1, 'acct-lru').tokens();
      const countsOfText = (i: number) => seen.filter((t) => t.startsWith(`${marker} ${i} `)).length;
      for (let i = 0; i < 4; i++) count(i);
      expect(keptCountsSize().texts).toBe(4);
      // Text 0 used again (kept: not counted), so text 1 is now the least recently used.
      count(0);
      expect(countsOfText(0)).toBe(1);
      count(4);
      expect(keptCountsSize().chars).toBeLessThanOrEqual(10_000);
      expect(keptCountsSize().texts).toBe(4);
      // Text 0 is still kept, text 1 was dropped and is counted again.
      count(0);
      expect(countsOfText(0)).toBe(1);
      count(1);
      expect(countsOfText(1)).toBe(2);
    } finally {
      setKeptCountBudget();
    }
  });

  it('keeps no count taken while the tokenizer is not loaded (its byte count stands in)', async () => {
    // A fresh copy of the module, as a Lambda instance has before its first answer's tail loads the tokenizer.
    let fresh!: typeof import('../../lambda/money/tokens');
    jest.isolateModules(() => {
      fresh = require('../../lambda/money/tokens');
    });
    fresh.loadTokenizersWhenAsked();
    const text = `unloaded ${Math.random()} ${'The agent read the file and found the bug. '.repeat(100)}`;
    const bytes = Buffer.byteLength(text);
    expect(fresh.promptEstimate(0, [text], 1, 'acct-cold').tokens()).toBe(bytes);
    expect(fresh.keptCountsSize().texts).toBe(0);
    await fresh.warmWantedTokenizers();
    // Once loaded, the same text of the same account is counted by the tokenizer, not given its byte count again.
    const tokens = fresh.promptEstimate(0, [text], 1, 'acct-cold').tokens();
    expect(tokens).toBeLessThan(bytes / 3);
    expect(fresh.keptCountsSize().texts).toBe(1);
  }, 60_000);

});
