// Bundled on its own as tokenizer.js beside the Lambda handler (scripts/bundle.ts, lib/itapi-chat-function.ts),
// and loaded through ITAPI_TOKENIZER_MODULE after start-up, so its few MB never weigh on a cold start.
export { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
// OpenAI's embedding models count with cl100k_base (loaded by the first embeddings request).
export { countTokens as countCl100kTokens } from 'gpt-tokenizer/encoding/cl100k_base';
