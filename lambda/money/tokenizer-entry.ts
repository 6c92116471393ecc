// Bundled on its own as tokenizer.js beside the Lambda handler (scripts/bundle.ts, lib/itapi-chat-function.ts),
// and loaded through ITAPI_TOKENIZER_MODULE once an answer has left, so its few MB never weigh on a cold start.
export { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
