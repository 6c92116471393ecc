// The canonical answer: the events a provider's stream becomes, and the whole answer they add up to.
import type { WireName } from './prompt';

/** Why the model stopped, in one vocabulary; each codec maps its wire's words to and from it. */
export type FinishReason =
  /** Natural end (OpenAI `stop`, Anthropic `end_turn`). */
  | 'stop'
  /** A client stop sequence matched (Anthropic `stop_sequence`; OpenAI says `stop`). */
  | 'stop_sequence'
  /** The output limit or the context window was reached. */
  | 'length'
  | 'tool_calls'
  /** A content filter or a refusal (OpenAI `content_filter`, Anthropic `refusal`). */
  | 'refusal'
  /** Anthropic's `pause_turn`: a server tool's long turn, to be continued. */
  | 'pause';

/**
 * Every class of tokens and calls a provider bills, as the provider reported it. Input classes do
 * not overlap: the prompt is `inputTokens + cacheReadTokens + cacheWriteTokens + cacheWrite1hTokens`
 * (OpenAI's `prompt_tokens`); Anthropic's `input_tokens` is `inputTokens` alone.
 */
export interface Usage {
  /** Input tokens neither read from nor written to a cache. */
  inputTokens: number;
  cacheReadTokens: number;
  /** 5-minute cache writes (all writes when the provider gives no lifetime split). */
  cacheWriteTokens: number;
  /** 1-hour cache writes. */
  cacheWrite1hTokens: number;
  /** All output, reasoning included. */
  outputTokens: number;
  /** The part of `outputTokens` spent thinking, when the provider says (never billed twice). */
  reasoningTokens?: number;
  /** Server-tool calls by the catalog's name (`web_search`, `web_fetch`, `code_execution`). */
  serverToolCalls?: Record<string, number>;
  /** The service tier the provider says it served the request with. */
  serviceTier?: string;
}

export const ZERO_USAGE: Readonly<Usage> = Object.freeze({ inputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 0 });

/** The whole prompt as OpenAI counts it (`prompt_tokens`). */
export function promptTokensOf(usage: Usage): number {
  return usage.inputTokens + usage.cacheReadTokens + usage.cacheWriteTokens + usage.cacheWrite1hTokens;
}

/** One token's log probability, as OpenAI's wires write it (Chat's `ChatCompletionTokenLogprob`, Responses' `logprobs`). */
export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
  /** The most likely tokens at this position, as many as the client asked (`top_logprobs`). */
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] | null }>;
}

/** A choice's log probabilities as the provider sent them: the content's tokens and the refusal's. */
export interface ChoiceLogprobs {
  content: TokenLogprob[] | null;
  refusal: TokenLogprob[] | null;
}

/** A citation the provider put on the answer's text (OpenAI's `url_citation`, from web search). */
export interface UrlCitation {
  type: 'url_citation';
  url: string;
  title: string;
  /** Character offsets into the choice's text. */
  startIndex: number;
  endIndex: number;
}

/**
 * One step of an answer. Content events carry `index`, the position of the part they belong to
 * (0, 1, … in the order parts open); a part is one kind: text, refusal, reasoning or a tool call.
 * Events of a choice other than the first (Chat's `n > 1`) carry `choice` (absent means 0); part
 * indices count within their choice.
 */
export type AnswerEvent =
  | { type: 'start'; id: string; model: string; createdS?: number; systemFingerprint?: string }
  | { type: 'text'; index: number; text: string; choice?: number }
  | { type: 'refusal'; index: number; text: string; choice?: number }
  /** Thinking text (a delta), possibly empty when a part opens. */
  | { type: 'reasoning'; index: number; text: string; choice?: number }
  /** The signature that closes an Anthropic thinking block. */
  | { type: 'reasoning_signature'; index: number; signature: string; choice?: number }
  /** An Anthropic redacted_thinking block, whole. */
  | { type: 'reasoning_redacted'; index: number; data: string; choice?: number }
  /** OpenAI's encrypted reasoning, whole, with its item id. */
  | { type: 'reasoning_encrypted'; index: number; encryptedContent: string; id?: string; choice?: number }
  | { type: 'tool_call_start'; index: number; id: string; name: string; choice?: number }
  | { type: 'tool_call_delta'; index: number; arguments: string; choice?: number }
  /** Log probabilities of the tokens just sent (appended to the choice's), as the provider sent them. */
  | { type: 'logprobs'; content?: TokenLogprob[]; refusal?: TokenLogprob[]; choice?: number }
  | { type: 'annotation'; annotation: UrlCitation; choice?: number }
  | { type: 'finish'; reason: FinishReason; stopSequence?: string; choice?: number }
  /** The provider's usage so far (all choices together); a later one replaces an earlier one. */
  | { type: 'usage'; usage: Usage };

export type AnswerPart =
  | { type: 'text'; text: string }
  | { type: 'refusal'; text: string }
  | { type: 'reasoning'; text: string; signature?: string; redactedData?: string; encryptedContent?: string; id?: string }
  | { type: 'tool_call'; id: string; name: string; arguments: string };

/**
 * Fields of the wire a whole answer came in that the canonical model does not name, kept as sent
 * (Chat's `metadata`, `moderation`, a message's legacy `function_call`): only a codec of the same
 * wire writes them back. Whole (JSON) answers only: a stream of the same wire is relayed as sent.
 */
export interface AnswerExtensions {
  wire: WireName;
  fields: Record<string, unknown>;
}

/** One of the answer's choices: its message (parts) and how it ended. */
export interface AnswerChoice {
  parts: AnswerPart[];
  finishReason: FinishReason;
  stopSequence?: string;
  /** Per-token log probabilities, when the client asked (`logprobs`) and the provider sent them. */
  logprobs?: ChoiceLogprobs;
  annotations?: UrlCitation[];
  /** The message's fields the canonical model does not name. */
  extensions?: AnswerExtensions;
}

/** A whole answer: its first choice at the top, any further ones (`n > 1`) in `otherChoices`. */
export interface Answer extends AnswerChoice {
  id: string;
  model: string;
  createdS: number;
  /** The backend configuration the provider says it ran (OpenAI's `system_fingerprint`). */
  systemFingerprint?: string;
  /** Choices 1, 2, … when the provider answered several (Chat's `n > 1`); absent for one. */
  otherChoices?: AnswerChoice[];
  /** The answer's top-level fields the canonical model does not name. */
  answerExtensions?: AnswerExtensions;
  /** Absent when the provider reported none. */
  usage?: Usage;
}

/** Every choice of an answer, the first at index 0. */
export function choicesOf(answer: Answer): AnswerChoice[] {
  const { parts, finishReason, stopSequence, logprobs, annotations, extensions } = answer;
  const first: AnswerChoice = { parts, finishReason, ...(stopSequence !== undefined && { stopSequence }), ...(logprobs && { logprobs }), ...(annotations && { annotations }), ...(extensions && { extensions }) };
  return [first, ...(answer.otherChoices ?? [])];
}

/** The events of a whole answer, in the order a stream would carry them (choice after choice). */
export function answerEvents(answer: Answer): AnswerEvent[] {
  const events: AnswerEvent[] = [{ type: 'start', id: answer.id, model: answer.model, createdS: answer.createdS, ...(answer.systemFingerprint !== undefined && { systemFingerprint: answer.systemFingerprint }) }];
  choicesOf(answer).forEach((choice, c) => events.push(...choiceEvents(choice, c)));
  if (answer.usage) events.push({ type: 'usage', usage: answer.usage });
  return events;
}

function choiceEvents(choice: AnswerChoice, c: number): AnswerEvent[] {
  const events: AnswerEvent[] = [];
  const at = c > 0 ? { choice: c } : {};
  choice.parts.forEach((part, index) => {
    switch (part.type) {
      case 'text':
      case 'refusal':
        events.push({ type: part.type, index, text: part.text, ...at });
        return;
      case 'reasoning':
        if (part.redactedData !== undefined) events.push({ type: 'reasoning_redacted', index, data: part.redactedData, ...at });
        else events.push({ type: 'reasoning', index, text: part.text, ...at });
        if (part.signature !== undefined) events.push({ type: 'reasoning_signature', index, signature: part.signature, ...at });
        if (part.encryptedContent !== undefined) events.push({ type: 'reasoning_encrypted', index, encryptedContent: part.encryptedContent, ...(part.id !== undefined && { id: part.id }), ...at });
        return;
      case 'tool_call':
        events.push({ type: 'tool_call_start', index, id: part.id, name: part.name, ...at });
        if (part.arguments) events.push({ type: 'tool_call_delta', index, arguments: part.arguments, ...at });
        return;
    }
  });
  const lp = choice.logprobs;
  if (lp) events.push({ type: 'logprobs', ...(lp.content && { content: lp.content }), ...(lp.refusal && { refusal: lp.refusal }), ...at });
  for (const annotation of choice.annotations ?? []) events.push({ type: 'annotation', annotation, ...at });
  events.push({ type: 'finish', reason: choice.finishReason, ...(choice.stopSequence !== undefined && { stopSequence: choice.stopSequence }), ...at });
  return events;
}

/** OpenAI's largest `n`. */
export const MAX_CHOICES = 128;

/** One choice as the collector builds it. */
class ChoiceBuilder {
  readonly parts: AnswerPart[] = [];
  finishReason: FinishReason | undefined;
  stopSequence: string | undefined;
  logprobs: ChoiceLogprobs | undefined;
  readonly annotations: UrlCitation[] = [];

  choice(): AnswerChoice {
    return {
      parts: this.parts.map((p) => ({ ...p })),
      finishReason: this.finishReason ?? 'stop',
      ...(this.stopSequence !== undefined && { stopSequence: this.stopSequence }),
      ...(this.logprobs && { logprobs: { content: this.logprobs.content && [...this.logprobs.content], refusal: this.logprobs.refusal && [...this.logprobs.refusal] } }),
      ...(this.annotations.length > 0 && { annotations: [...this.annotations] }),
    };
  }

  partAt<P extends AnswerPart>(index: number, open: () => P): AnswerPart {
    if (index === this.parts.length) this.parts.push(open());
    const part = this.parts[index];
    if (!part) throw new Error(`Answer part ${index} opened before part ${this.parts.length}.`);
    return part;
  }

  reasoningAt(index: number): Extract<AnswerPart, { type: 'reasoning' }> {
    const part = this.partAt(index, () => ({ type: 'reasoning', text: '' }));
    if (part.type !== 'reasoning') throw new Error(`Answer part ${index} is ${part.type}, not reasoning.`);
    return part;
  }
}

/** Adds events up to a whole answer (for a JSON reply, the store, and settlement's text count): one message per choice index. */
export class AnswerCollector {
  private id = '';
  private model = '';
  private createdS = 0;
  private systemFingerprint: string | undefined;
  private readonly choices: ChoiceBuilder[] = [new ChoiceBuilder()];
  private usage: Usage | undefined;

  push(event: AnswerEvent): void {
    if (event.type === 'start') {
      this.id = event.id;
      this.model = event.model;
      this.createdS = event.createdS ?? Math.floor(Date.now() / 1000);
      if (event.systemFingerprint !== undefined) this.systemFingerprint = event.systemFingerprint;
      return;
    }
    if (event.type === 'usage') {
      this.usage = event.usage;
      return;
    }
    const choice = this.choiceAt(event.choice ?? 0);
    switch (event.type) {
      case 'text':
      case 'refusal': {
        const part = choice.partAt(event.index, () => ({ type: event.type, text: '' }));
        if (part.type !== event.type) throw new Error(`Answer part ${event.index} is ${part.type}, not ${event.type}.`);
        part.text += event.text;
        return;
      }
      case 'reasoning':
        choice.reasoningAt(event.index).text += event.text;
        return;
      case 'reasoning_signature':
        choice.reasoningAt(event.index).signature = event.signature;
        return;
      case 'reasoning_redacted':
        choice.reasoningAt(event.index).redactedData = event.data;
        return;
      case 'reasoning_encrypted': {
        const part = choice.reasoningAt(event.index);
        part.encryptedContent = event.encryptedContent;
        if (event.id !== undefined) part.id = event.id;
        return;
      }
      case 'tool_call_start':
        choice.partAt(event.index, () => ({ type: 'tool_call', id: event.id, name: event.name, arguments: '' }));
        return;
      case 'tool_call_delta': {
        const part = choice.parts[event.index];
        if (part?.type !== 'tool_call') throw new Error(`Arguments for answer part ${event.index}, which is no tool call.`);
        part.arguments += event.arguments;
        return;
      }
      case 'logprobs': {
        const lp = (choice.logprobs ??= { content: null, refusal: null });
        if (event.content) lp.content = [...(lp.content ?? []), ...event.content];
        if (event.refusal) lp.refusal = [...(lp.refusal ?? []), ...event.refusal];
        return;
      }
      case 'annotation':
        choice.annotations.push(event.annotation);
        return;
      case 'finish':
        choice.finishReason = event.reason;
        choice.stopSequence = event.stopSequence;
        return;
    }
  }

  /** The answer so far; `finishReason` is `stop` if no finish came (the caller knows if the stream was cut). */
  answer(): Answer {
    const [first, ...others] = this.choices.map((c) => c.choice());
    return {
      id: this.id,
      model: this.model,
      createdS: this.createdS,
      ...first,
      ...(this.systemFingerprint !== undefined && { systemFingerprint: this.systemFingerprint }),
      ...(others.length > 0 && { otherChoices: others }),
      ...(this.usage && { usage: this.usage }),
    };
  }

  /** The text and tool arguments delivered in every choice, for counting the tokens of an answer the provider did not count. */
  deliveredText(): string {
    return this.choices.map((c) => answerText(c.parts)).join('');
  }

  private choiceAt(index: number): ChoiceBuilder {
    // Choices of a stream may interleave in any order; OpenAI's `n` is at most 128.
    if (!Number.isInteger(index) || index < 0 || index >= MAX_CHOICES) throw new Error(`No choice ${index}: choices are 0 to ${MAX_CHOICES - 1}.`);
    while (this.choices.length <= index) this.choices.push(new ChoiceBuilder());
    return this.choices[index];
  }
}

/** The text, thinking and tool arguments of some parts, as the tokenizer counts a delivered answer. */
export function answerText(parts: readonly AnswerPart[]): string {
  return parts.map((p) => (p.type === 'tool_call' ? p.arguments : p.text)).join('');
}

/** The text every choice of a whole answer delivered (for the tokenizer when the provider reported no usage). */
export function deliveredTextOf(answer: Answer): string {
  return choicesOf(answer).map((c) => answerText(c.parts)).join('');
}

export function collectAnswer(events: Iterable<AnswerEvent>): Answer {
  const collector = new AnswerCollector();
  for (const event of events) collector.push(event);
  return collector.answer();
}

/** An error event a provider's stream carried after it began (Anthropic's `error`), for the provider to map to a GatewayError. */
export class StreamErrorEvent extends Error {
  constructor(
    readonly errorType: string | undefined,
    message: string | undefined,
  ) {
    super(message ?? 'The upstream stream failed.');
    this.name = 'StreamErrorEvent';
  }
}
