import { parseCatalog, type CatalogFile } from '../../lambda/catalog';
import { messagesBillingAsk } from '../../lambda/messages/billing';
import { parseMessagesRequest } from '../../lambda/messages/request';

/** What a Messages request is held for beyond its counted tokens: documents whose cost the gateway cannot tell from their bytes. */
const file: CatalogFile = {
  models: {
    claude: {
      owned_by: 'anthropic',
      pricing: { input_per_mtok: 3, output_per_mtok: 15 },
      context_window: 200000,
      max_output_tokens: 8192,
      routes: [{ provider: 'anthropic', base_url: 'http://127.0.0.1:9', model: 'claude-up' }],
    },
  },
};
const model = parseCatalog(file, 'test').get('claude')!;
const ask = (content: unknown[]) => messagesBillingAsk(parseMessagesRequest({ model: 'claude', max_tokens: 16, messages: [{ role: 'user', content }] }), model);

describe('a Messages request’s documents in its billing ask', () => {
  it('holds a PDF as data (billed by the page), by URL or by file id at the context window; plain text as its tokens', () => {
    const pdf = { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0xLjQK' } };
    const url = { type: 'document', source: { type: 'url', url: 'https://example.com/a.pdf' } };
    const text = { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'plain words' } };
    expect(ask([pdf, { type: 'text', text: 'Summarise.' }]).unknownSizeInputs).toBe(1);
    expect(ask([pdf, url, { type: 'text', text: 'Compare.' }]).unknownSizeInputs).toBe(2);
    expect(ask([text, { type: 'text', text: 'Summarise.' }]).unknownSizeInputs).toBeUndefined();
  });
});
