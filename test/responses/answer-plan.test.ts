import { parseCatalog, type CatalogFile } from '../../lambda/catalog';
import { decodeResponsesRequest } from '../../lambda/codecs/openai-responses';
import { parseCreateResponseRequest } from '../../lambda/contract/responses';
import { GatewayError } from '../../lambda/contract/errors';
import { UNKNOWN_INPUT_TOKENS } from '../../lambda/money/billing-ask';
import { callPromptEstimate } from '../../lambda/money/tokens';
import { answerPlan } from '../../lambda/responses/answer-plan';
import { responsesBillingAsk } from '../../lambda/responses/billing';
import { modelEntry } from './support';

/**
 * The Responses endpoint's plan of a run, on the decoded request alone (no Chat request built
 * since 2026-12-07): what it is billed for beyond tokens, its prompt's estimate, and when what a
 * Chat route cannot take is refused.
 */
const CHAT = { provider: 'openai-compatible' as const, base_url: 'http://127.0.0.1:9/v1', model: 'up' };
const CLAUDE = { provider: 'anthropic' as const, base_url: 'http://127.0.0.1:9', model: 'claude-up' };
const file: CatalogFile = {
  models: {
    chat: { ...modelEntry(CHAT), pricing: { input_per_mtok: 1, output_per_mtok: 2, server_tools: { web_search: 0.01 }, service_tiers: { priority: { input_per_mtok: 2, output_per_mtok: 4 } } } },
    plain: modelEntry(CHAT),
    claude: modelEntry(CLAUDE, 'anthropic'),
    mixed: { ...modelEntry(CLAUDE, 'anthropic'), routes: [CLAUDE, CHAT] },
    chatFirst: { ...modelEntry(CHAT), routes: [CHAT, CLAUDE] },
  },
};
const catalog = parseCatalog(file, 'test');
const model = (id: string) => catalog.get(id)!;
const decode = (body: Record<string, unknown>, webSearch = false) => decodeResponsesRequest(parseCreateResponseRequest({ model: 'x', ...body }), {}, { webSearch });
const thrown = (f: () => unknown): GatewayError => {
  try {
    f();
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('nothing thrown');
};
const pdfByUrl = { type: 'input_file', file_url: 'https://example.com/a.pdf' };
const pdfInline = { type: 'input_file', filename: 'a.pdf', file_data: 'data:application/pdf;base64,JVBERi0xLjQK' };

describe('a Responses request’s billing ask, from the decoded request', () => {
  it('asks for a priced service tier, and refuses one the model does not price with a 400 naming service_tier', () => {
    const asked = decode({ input: 'hi', service_tier: 'priority' });
    expect(responsesBillingAsk(asked.prompt, asked.options, model('chat'))).toEqual({ serviceTier: 'priority' });
    const error = thrown(() => responsesBillingAsk(asked.prompt, asked.options, model('plain')));
    expect([error.status, error.param]).toEqual([400, 'service_tier']);
  });

  it('holds and bills one web search a request where the model prices it', () => {
    const asked = decode({ input: 'hi', tools: [{ type: 'web_search' }] }, true);
    expect(responsesBillingAsk(asked.prompt, asked.options, model('chat'))).toEqual({ serverToolCalls: { web_search: 1 }, impliedServerToolCalls: { web_search: 1 } });
    // Where it is not priced the decoder drops the tool (x-itapi-ignored), and nothing is asked.
    const dropped = decode({ input: 'hi', tools: [{ type: 'web_search' }] }, false);
    expect(responsesBillingAsk(dropped.prompt, dropped.options, model('plain'))).toEqual({});
  });

  it('counts every document as one it cannot size (by URL, file id, or a PDF’s data: billed by the page), in messages and tool results', () => {
    const asked = decode({
      input: [
        { role: 'user', content: [{ type: 'input_text', text: 'a' }, pdfByUrl, pdfInline, { type: 'input_file', file_id: 'file_1' }] },
        { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
        { type: 'function_call_output', call_id: 'c1', output: [{ type: 'input_file', file_url: 'https://example.com/b.pdf' }] },
      ],
    });
    expect(responsesBillingAsk(asked.prompt, asked.options, model('claude')).unknownSizeInputs).toBe(4);
    const none = decode({ input: [{ role: 'user', content: [{ type: 'input_text', text: 'a' }] }] });
    expect(responsesBillingAsk(none.prompt, none.options, model('claude')).unknownSizeInputs).toBeUndefined();
  });
});

describe('a Responses request’s plan', () => {
  it('refuses what a Chat route cannot take at once when the first route speaks Chat (its 400 ends the route loop)', () => {
    for (const id of ['plain', 'chatFirst']) {
      const error = thrown(() => answerPlan(decode({ input: [{ role: 'user', content: [pdfInline] }] }), model(id)));
      expect([error.status, error.param]).toEqual([400, 'messages[0].content[0]']);
    }
  });

  it('refuses more tools than Chat Completions takes (128) before any hold on a Chat route; a Claude route takes them', () => {
    const tools = Array.from({ length: 129 }, (_, i) => ({ type: 'function', name: `tool_${i}`, parameters: { type: 'object', properties: {} } }));
    const error = thrown(() => answerPlan(decode({ input: 'hi', tools }), model('plain')));
    expect([error.status, error.param]).toEqual([400, 'tools']);
    expect(() => answerPlan(decode({ input: 'hi', tools: tools.slice(0, 128) }), model('plain'))).not.toThrow();
    expect(() => answerPlan(decode({ input: 'hi', tools }), model('claude'))).not.toThrow();
  });

  it('leaves a document to a model with a Claude route (a Chat fallback refuses it in its turn)', () => {
    for (const id of ['claude', 'mixed']) expect(() => answerPlan(decode({ input: [{ role: 'user', content: [pdfInline] }] }), model(id))).not.toThrow();
  });

  it('counts a document it cannot size as UNKNOWN_INPUT_TOKENS in the prompt', () => {
    const plain = decode({ input: [{ role: 'user', content: [{ type: 'input_text', text: 'Summarise.' }] }] });
    const withUrl = decode({ input: [{ role: 'user', content: [{ type: 'input_text', text: 'Summarise.' }, pdfByUrl] }] });
    const base = answerPlan(plain, model('claude')).estimate('').inputTokens;
    expect(answerPlan(withUrl, model('claude')).estimate('').inputTokens).toBe(base + UNKNOWN_INPUT_TOKENS);
  });

  it('counts thinking sent back where every route is Claude’s, and never OpenAI’s encrypted reasoning', () => {
    const body = {
      input: [
        { role: 'user', content: 'q' },
        { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 'thinking it over '.repeat(20) }], encrypted_content: 'E'.repeat(4000) },
        { role: 'assistant', content: [{ type: 'output_text', text: 'a' }] },
        { role: 'user', content: 'again' },
      ],
    };
    const decoded = decode(body);
    const chatRoute = callPromptEstimate(decoded.prompt, decoded.options);
    const claudeRoute = callPromptEstimate(decoded.prompt, decoded.options, undefined, undefined, true);
    expect(claudeRoute.bound).toBeGreaterThan(chatRoute.bound);
    // The summary's text, not the 4,000 characters of encrypted content.
    expect(claudeRoute.bound - chatRoute.bound).toBeLessThan(1000);
    expect(answerPlan(decoded, model('claude')).estimate('').inputTokens).toBeGreaterThan(answerPlan(decoded, model('plain')).estimate('').inputTokens);
  });
});
