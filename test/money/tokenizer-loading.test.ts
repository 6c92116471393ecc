import { countTokens, loadTokenizersWhenAsked, warmWantedTokenizers } from '../../lambda/money/tokens';

/**
 * The Lambda entry's mode (lambda/entry/lambda.ts): a count that finds its tokenizer missing stands
 * in with the UTF-8 byte count (never below the token count) and loads nothing on the request path;
 * the entry loads what was asked for once the answer has left.
 */
describe('tokenizers loaded when asked', () => {
  beforeAll(() => loadTokenizersWhenAsked());

  it('counts bytes until asked to load, then tokens; cl100k_base only once it was wanted', async () => {
    const text = 'Hello there, how are you today?';
    expect(countTokens(text)).toBe(Buffer.byteLength(text));
    // Nothing started loading on its own.
    await new Promise((r) => setTimeout(r, 200));
    expect(countTokens(text)).toBe(Buffer.byteLength(text));

    await warmWantedTokenizers();
    const tokens = countTokens(text);
    expect(tokens).toBeGreaterThan(3);
    expect(tokens).toBeLessThan(Buffer.byteLength(text) / 2);

    // cl100k_base was never asked for: still the stand-in, until a count wants it and the caller loads it.
    expect(countTokens(text, 'cl100k_base')).toBe(Buffer.byteLength(text));
    await warmWantedTokenizers();
    expect(countTokens(text, 'cl100k_base')).toBeLessThan(Buffer.byteLength(text) / 2);
  }, 60_000);

  it('loads nothing when nothing was asked for', async () => {
    await expect(warmWantedTokenizers()).resolves.toBeUndefined();
  });
});
