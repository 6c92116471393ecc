// A tokenizer module for tests that must see when the gateway counts a prompt
// (test/money/overlapped-admission.test.ts sets ITAPI_TOKENIZER_MODULE to this file): o200k_base's
// own count, each call first reported to `globalThis.__itapiCounted` when a test has set it.
const { countTokens } = require('gpt-tokenizer/encoding/o200k_base');

exports.countTokens = (text, options) => {
  globalThis.__itapiCounted?.(text);
  return countTokens(text, options);
};
