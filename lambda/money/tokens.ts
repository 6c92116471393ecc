import type { TokenizerName, TokenRules } from '../catalog';
import type { ChatCompletionRequest, ChatMessage } from '../contract/request';
import type { RequestOptions } from '../core/call';
import { textOf, type ImagePart, type MediaSource, type Prompt, type Turn } from '../core/prompt';
import { dirname, join } from 'node:path';
import { imageTokens } from './image-tokens';

type CountTokens = (text: string) => number;
type TokenizerModule = { countTokens: (text: string, options?: { disallowedSpecial?: Set<string> }) => number };

/**
 * Special-token text in a prompt or an answer (`<|endoftext|>`, `<|im_start|>`, `<|fim_prefix|>`:
 * common in code and in text about models) is counted as the ordinary text it is. gpt-tokenizer
 * refuses it by default and threw, which answered such a prompt with a 500. A count that throws
 * anyway gives the UTF-8 byte count, never below the token count.
 */
const AS_TEXT = { disallowedSpecial: new Set<string>() };
function countingAsText(m: TokenizerModule): CountTokens {
  return (text) => {
    try {
      return m.countTokens(text, AS_TEXT);
    } catch {
      return Buffer.byteLength(text, 'utf8');
    }
  };
}

/** OpenAI's per-message framing overhead (role and separators). */
const TOKENS_PER_MESSAGE = 4;

/** OpenAI's rules, for callers that know no model. */
export const OPENAI_TOKEN_RULES: TokenRules = { image: { kind: 'tiles', base: 85, tile: 170 }, textMargin: 1 };

let encoder: CountTokens | undefined;
let loading: Promise<void> | undefined;
let cl100k: CountTokens | undefined;
let loadingCl100k: Promise<void> | undefined;
/** Whether a count that finds its tokenizer missing starts loading it at once (see loadTokenizersWhenAsked). */
let loadOnFirstCount = true;
/** Tokenizers a count asked for before they were loaded. */
const wanted = new Set<TokenizerName>();

/**
 * Where the tokenizers come from: the Lambda bundle ships each as a file of its own beside index.js
 * (`tokenizer.js` for o200k_base, `tokenizer-cl100k.js` for cl100k_base; see scripts/bundle.ts).
 */
function tokenizerModule(name: TokenizerName): string {
  const bundled = process.env.ITAPI_TOKENIZER_MODULE;
  if (name === 'o200k_base') return bundled ?? 'gpt-tokenizer/encoding/o200k_base';
  return bundled ? join(dirname(bundled), CL100K_FILE) : 'gpt-tokenizer/encoding/cl100k_base';
}

/** The cl100k_base tokenizer's file beside the o200k one in the Lambda bundle. */
export const CL100K_FILE = 'tokenizer-cl100k.js';

/**
 * Loads the o200k tokenizer (about 4 MB of ranks, ~300 ms of CPU). Until it is in, counts fall
 * back to the UTF-8 byte count, which is never below the token count: a larger hold for the first
 * requests of a cold instance, corrected at settlement, never an undercount.
 */
export function warmTokenizer(): Promise<void> {
  loading ??= (import(tokenizerModule('o200k_base')) as Promise<TokenizerModule>).then(
    (m) => {
      encoder = countingAsText(m);
    },
    () => undefined,
  );
  return loading;
}

/** Loads cl100k_base (OpenAI's embedding models count with it), on the first request that needs it; the same byte-count fallback until then. */
export function warmCl100kTokenizer(): Promise<void> {
  loadingCl100k ??= (import(tokenizerModule('cl100k_base')) as Promise<TokenizerModule>).then(
    (m) => {
      cl100k = countingAsText(m);
    },
    () => undefined,
  );
  return loadingCl100k;
}

/**
 * From now on a count that finds its tokenizer missing only notes it (and counts bytes); the
 * caller loads what was asked for with `warmWantedTokenizers`, at a moment of its choosing. The
 * Lambda entry does so after an invocation's answer has left: loading a tokenizer holds the
 * event loop for hundreds of milliseconds, which on the request path would stall that answer.
 */
export function loadTokenizersWhenAsked(): void {
  loadOnFirstCount = false;
}

/** Loads every tokenizer a count asked for and found missing (nothing when none was). */
export function warmWantedTokenizers(): Promise<void> {
  const loads: Array<Promise<void>> = [];
  for (const name of wanted) loads.push(name === 'cl100k_base' ? warmCl100kTokenizer() : warmTokenizer());
  wanted.clear();
  return Promise.all(loads).then(() => undefined);
}

/** Pieces longer than this are counted in slices (see countTokens). */
const SLICE_CHARS = 2048;
/** Runs of non-space characters longer than this are cut before the BPE sees them. */
const RUN_CHARS = 64;
const LONG_RUN = new RegExp(`\\S{${RUN_CHARS + 1}}`);
const RUN_PIECES = new RegExp(`\\S{1,${RUN_CHARS}}|\\s+`, 'gu');

/**
 * The BPE's merge loop is quadratic in the length of one pre-tokenized piece, and a run of
 * letters with no space (`aaaa…`, or CJK text) is one piece: 80,000 such characters took 4-20 s
 * of CPU, a 6 MiB body hours. So long text is counted in slices, and long runs in short pieces;
 * a cut can only split a token, so the estimate stays at or a little above the exact count.
 * `tokenizer` picks the encoding (o200k_base unless the model counts with another).
 */
export function countTokens(text: string, tokenizer: TokenizerName = 'o200k_base'): number {
  if (!text) return 0;
  const count = tokenizer === 'cl100k_base' ? cl100k : encoder;
  if (!count) {
    if (loadOnFirstCount) void (tokenizer === 'cl100k_base' ? warmCl100kTokenizer() : warmTokenizer());
    else wanted.add(tokenizer);
    return Buffer.byteLength(text, 'utf8');
  }
  if (text.length <= RUN_CHARS) return count(text);
  let total = 0;
  for (let start = 0; start < text.length; ) {
    let end = Math.min(start + SLICE_CHARS, text.length);
    // Never cut a surrogate pair in two.
    if (end < text.length && isLowSurrogate(text.charCodeAt(end))) end++;
    total += countSlice(count, text.slice(start, end));
    start = end;
  }
  return total;
}

function countSlice(count: CountTokens, slice: string): number {
  if (!LONG_RUN.test(slice)) return count(slice);
  let total = 0;
  for (const piece of slice.match(RUN_PIECES) ?? []) total += count(piece);
  return total;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/**
 * A canonical request's prompt estimate (what a codec decoded, before any wire's encoding): framed
 * and counted as `chatPromptEstimate` counts the Chat request the same prompt becomes (4 tokens a
 * message, a tool result a message of its own, texts joined as Chat joins them, images by the
 * model's rule), so that a request reads the same on every endpoint. Beyond what Chat sends, with
 * `claude` (some route is Anthropic's or Bedrock's, which take them): thinking sent back (its text,
 * or a redacted block's data), documents (their text or data; all but plain text are also the
 * billing ask's `unknownSizeInputs`, a PDF being billed by the page) and blocks of the client's own
 * wire (their JSON). OpenAI's encrypted reasoning is never sent through this path and never counted.
 */
export function callPromptEstimate(
  prompt: Prompt,
  options: Pick<RequestOptions, 'tools' | 'responseFormat'>,
  rules: TokenRules = OPENAI_TOKEN_RULES,
  account?: string,
  claude = false,
): PromptEstimate {
  let tokens = 3;
  const texts: string[] = [];
  const system = textOf(prompt.system, '\n\n');
  if (system) {
    texts.push(system);
    tokens += TOKENS_PER_MESSAGE;
  }
  for (const turn of prompt.turns) tokens += turnTokens(turn, rules, texts, claude);
  const tools = options.tools.flatMap((tool) =>
    tool.kind === 'function'
      ? [{ type: 'function', function: { name: tool.name, ...(tool.description !== undefined && { description: tool.description }), parameters: tool.parameters, ...(tool.strict !== undefined && { strict: tool.strict }) } }]
      : [],
  );
  if (tools.length) texts.push(JSON.stringify(tools));
  const format = options.responseFormat;
  if (format?.type === 'json_schema') {
    texts.push(JSON.stringify({ name: format.name, ...(format.description !== undefined && { description: format.description }), schema: format.schema, ...(format.strict !== undefined && { strict: format.strict }) }));
  }
  return promptEstimate(tokens, texts, rules.textMargin, account);
}

/** One turn's framing and image tokens; its texts go to `texts`, as the Chat messages it becomes would give them. */
function turnTokens(turn: Turn, rules: TokenRules, texts: string[], claude: boolean): number {
  if (turn.role === 'system') {
    texts.push(textOf(turn.parts, '\n\n'));
    return TOKENS_PER_MESSAGE;
  }
  if (turn.role === 'assistant') {
    let text = '';
    let calls = '';
    let thinking = false;
    for (const part of turn.parts) {
      if (part.type === 'text') text += part.text;
      else if (part.type === 'tool_call') calls += part.name + part.arguments;
      else if (part.type === 'reasoning' && claude) {
        thinking = true;
        texts.push(part.redactedData ?? part.text);
      } else if (part.type === 'opaque') texts.push(JSON.stringify(part.value));
    }
    if (!text && !calls && !thinking) return 0;
    texts.push(text + calls);
    return TOKENS_PER_MESSAGE;
  }
  let tokens = 0;
  let text = '';
  let parts = 0;
  let toolImages = 0;
  for (const part of turn.parts) {
    switch (part.type) {
      case 'text':
        text += part.text;
        parts++;
        break;
      case 'image':
        tokens += mediaImageTokens(part, rules);
        parts++;
        break;
      case 'document':
        texts.push(documentText(part.source));
        parts++;
        break;
      case 'opaque':
        texts.push(JSON.stringify(part.value));
        parts++;
        break;
      case 'tool_result': {
        const inner: string[] = [];
        for (const block of part.content) {
          if (block.type === 'text') inner.push(block.text);
          else if (block.type === 'image') {
            tokens += mediaImageTokens(block, rules);
            toolImages++;
          } else texts.push(documentText(block.source));
        }
        texts.push(part.isError ? `Error: ${inner.join('\n')}` : inner.join('\n'));
        tokens += TOKENS_PER_MESSAGE;
        break;
      }
    }
  }
  if (toolImages) {
    texts.push(TOOL_IMAGES_TEXT);
    tokens += TOKENS_PER_MESSAGE;
  }
  if (parts) {
    texts.push(text);
    tokens += TOKENS_PER_MESSAGE;
  }
  return tokens;
}

/** The user message a Chat request carries a tool result's images in (codecs/openai-chat.ts). */
const TOOL_IMAGES_TEXT = 'Images returned by the tool:';

function mediaImageTokens(part: ImagePart, rules: TokenRules): number {
  return imageTokens(mediaUrl(part.source), part.detail, rules.image);
}

/** An image's URL as Chat sends it (a data URL for base64); a file id's size is not known here, and counts as the rule's largest. */
function mediaUrl(source: MediaSource): string {
  if (source.kind === 'base64') return `data:${source.mediaType};base64,${source.data}`;
  return source.kind === 'url' ? source.url : '';
}

/** A document's text, or its data (at least a token a byte of it); by URL or file id, nothing here. */
function documentText(source: MediaSource | { kind: 'text'; text: string }): string {
  if (source.kind === 'text') return source.text;
  return source.kind === 'base64' ? source.data : '';
}

function messageText(message: ChatMessage, rules: TokenRules): { text: string; imageTokens: number } {
  const out = { text: '', imageTokens: 0 };
  const content = message.content;
  if (typeof content === 'string') out.text = content;
  else if (Array.isArray(content)) {
    for (const part of content) {
      if (part.type === 'text') out.text += part.text;
      else if (part.type === 'refusal') out.text += part.refusal;
      else out.imageTokens += imageTokens(part.image_url.url, part.image_url.detail, rules.image);
    }
  }
  if (message.role === 'assistant') {
    for (const call of message.tool_calls ?? []) out.text += call.function.name + call.function.arguments;
    if (message.function_call) out.text += message.function_call.name + message.function_call.arguments;
  }
  if ('name' in message && message.name) out.text += message.name;
  return out;
}

/**
 * A prompt's token estimate in two steps (issue 22). `bound` is known at once from the prompt's
 * UTF-8 size: a token is at least one byte, so it is never below the estimate (and it is what a
 * count gives while the tokenizer is not loaded). `tokens()` is the tokenizer's count, the
 * costliest step before the upstream call on a long prompt (tens of milliseconds for 100,000
 * characters): counted on its first call, and kept. A speculative call (chat/overlap.ts) goes
 * upstream on the bound; admission counts before its write.
 */
export interface PromptEstimate {
  readonly bound: number;
  tokens(): number;
}

/** Texts shorter than this are counted each time (cheap, and many). */
const KEPT_COUNT_MIN_CHARS = 1_024;
/** The most characters of texts whose counts are kept, all accounts together (at most 8-16 MB). */
const KEPT_COUNT_CHARS = 8 * 1024 * 1024;
let keptBudget = KEPT_COUNT_CHARS;
/** `length:account\ntext` → its o200k_base count, least recently used first. */
const keptCounts = new Map<string, number>();
let keptChars = 0;

/**
 * A prompt text's count, kept for the account that sent it (issue 22): a conversation sends its
 * history again with every turn, and a coding agent's runs to 50,000-400,000 characters, tens of
 * ms to count each time; kept, only its new messages are counted. Per account, never across:
 * how soon one account's count comes back must not tell whether another sent the same text.
 * Short texts, and any text while the tokenizer is not loaded (its byte count stands in), are
 * counted each time.
 */
function countKept(text: string, account: string | undefined): number {
  if (account === undefined || text.length < KEPT_COUNT_MIN_CHARS || !encoder) return countTokens(text);
  // Length-prefixed: no account id and text can make another's key.
  const key = `${account.length}:${account}\n${text}`;
  const kept = keptCounts.get(key);
  if (kept !== undefined) {
    keptCounts.delete(key);
    keptCounts.set(key, kept);
    return kept;
  }
  const tokens = countTokens(text);
  if (key.length > keptBudget) return tokens;
  keptCounts.set(key, tokens);
  keptChars += key.length;
  for (const oldest of keptCounts.keys()) {
    if (keptChars <= keptBudget) break;
    keptCounts.delete(oldest);
    keptChars -= oldest.length;
  }
  return tokens;
}

/** How many texts' counts are kept, and their characters (tests). */
export function keptCountsSize(): { texts: number; chars: number } {
  return { texts: keptCounts.size, chars: keptChars };
}

/** Tests: a smaller budget than the 8 M characters (the kept counts are dropped). */
export function setKeptCountBudget(chars: number = KEPT_COUNT_CHARS): void {
  keptBudget = chars;
  keptCounts.clear();
  keptChars = 0;
}

/**
 * `fixedTokens` (framing, images) plus the texts' tokens × `margin`, rounded up. `account`: whose
 * prompt it is, so that the counts of its long texts are kept for its next requests (`countKept`).
 */
export function promptEstimate(fixedTokens: number, texts: readonly string[], margin: number, account?: string): PromptEstimate {
  let bytes = 0;
  for (const text of texts) bytes += Buffer.byteLength(text, 'utf8');
  let counted: number | undefined;
  // Let go of the prompt's text once counted (an estimate may live as long as its stream).
  let uncounted: readonly string[] | undefined = texts;
  return {
    bound: fixedTokens + Math.ceil(bytes * margin),
    tokens() {
      if (counted === undefined) {
        let textTokens = 0;
        for (const text of uncounted ?? []) textTokens += countKept(text, account);
        counted = fixedTokens + Math.ceil(textTokens * margin);
        uncounted = undefined;
      }
      return counted;
    },
  };
}

/** An estimate with `extra` tokens on both its bound and its count. */
export function plusTokens(estimate: PromptEstimate, extra: number): PromptEstimate {
  if (!extra) return estimate;
  return { bound: estimate.bound + extra, tokens: () => estimate.tokens() + extra };
}

/**
 * Prompt tokens as the upstream will count them, or a little more: messages, tools (and legacy
 * `functions`), images (by the model's rule, from the image's own size when it is inline) and
 * response schema. `chatPromptEstimate(...).tokens()`.
 */
export function estimatePromptTokens(request: Pick<ChatCompletionRequest, 'messages' | 'tools' | 'response_format'>, rules: TokenRules = OPENAI_TOKEN_RULES): number {
  return chatPromptEstimate(request, rules).tokens();
}

/**
 * A Chat request's prompt estimate (`estimatePromptTokens`), its count left for when it is asked:
 * each message's text counted on its own (a conversation's earlier messages come again unchanged,
 * and `account` keeps their counts), tools and schema as their JSON.
 */
export function chatPromptEstimate(
  request: Pick<ChatCompletionRequest, 'messages' | 'tools' | 'response_format'>,
  rules: TokenRules = OPENAI_TOKEN_RULES,
  account?: string,
): PromptEstimate {
  let tokens = 3;
  const texts: string[] = [];
  for (const message of request.messages) {
    const m = messageText(message, rules);
    if (m.text) texts.push(m.text);
    tokens += TOKENS_PER_MESSAGE + m.imageTokens;
  }
  if (request.tools?.length) texts.push(JSON.stringify(request.tools));
  // Legacy `functions` are passed through to OpenAI-compatible upstreams, which bill them as tools.
  const functions = (request as { functions?: unknown }).functions;
  if (functions != null) texts.push(JSON.stringify(functions));
  if (request.response_format?.type === 'json_schema') texts.push(JSON.stringify(request.response_format.json_schema));
  return promptEstimate(tokens, texts, rules.textMargin, account);
}
