// cl100k_base (OpenAI's embedding models count with it), bundled as tokenizer-cl100k.js beside tokenizer.js:
// a file of its own so that loading o200k_base, which every chat request wants, never loads its 1.2 MB too.
export { countTokens } from 'gpt-tokenizer/encoding/cl100k_base';
