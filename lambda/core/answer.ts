// The canonical answer: the events a provider's stream becomes, and the whole answer they add up to.

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

/**
 * One step of an answer. Content events carry `index`, the position of the part they belong to
 * (0, 1, … in the order parts open); a part is one kind: text, refusal, reasoning or a tool call.
 */
export type AnswerEvent =
  | { type: 'start'; id: string; model: string; createdS?: number }
  | { type: 'text'; index: number; text: string }
  | { type: 'refusal'; index: number; text: string }
  /** Thinking text (a delta), possibly empty when a part opens. */
  | { type: 'reasoning'; index: number; text: string }
  /** The signature that closes an Anthropic thinking block. */
  | { type: 'reasoning_signature'; index: number; signature: string }
  /** An Anthropic redacted_thinking block, whole. */
  | { type: 'reasoning_redacted'; index: number; data: string }
  /** OpenAI's encrypted reasoning, whole, with its item id. */
  | { type: 'reasoning_encrypted'; index: number; encryptedContent: string; id?: string }
  | { type: 'tool_call_start'; index: number; id: string; name: string }
  | { type: 'tool_call_delta'; index: number; arguments: string }
  | { type: 'finish'; reason: FinishReason; stopSequence?: string }
  /** The provider's usage so far; a later one replaces an earlier one. */
  | { type: 'usage'; usage: Usage };

export type AnswerPart =
  | { type: 'text'; text: string }
  | { type: 'refusal'; text: string }
  | { type: 'reasoning'; text: string; signature?: string; redactedData?: string; encryptedContent?: string; id?: string }
  | { type: 'tool_call'; id: string; name: string; arguments: string };

export interface Answer {
  id: string;
  model: string;
  createdS: number;
  parts: AnswerPart[];
  finishReason: FinishReason;
  stopSequence?: string;
  /** Absent when the provider reported none. */
  usage?: Usage;
}

/** The events of a whole answer, in the order a stream would carry them. */
export function answerEvents(answer: Answer): AnswerEvent[] {
  const events: AnswerEvent[] = [{ type: 'start', id: answer.id, model: answer.model, createdS: answer.createdS }];
  answer.parts.forEach((part, index) => {
    switch (part.type) {
      case 'text':
      case 'refusal':
        events.push({ type: part.type, index, text: part.text });
        return;
      case 'reasoning':
        if (part.redactedData !== undefined) events.push({ type: 'reasoning_redacted', index, data: part.redactedData });
        else events.push({ type: 'reasoning', index, text: part.text });
        if (part.signature !== undefined) events.push({ type: 'reasoning_signature', index, signature: part.signature });
        if (part.encryptedContent !== undefined) events.push({ type: 'reasoning_encrypted', index, encryptedContent: part.encryptedContent, ...(part.id !== undefined && { id: part.id }) });
        return;
      case 'tool_call':
        events.push({ type: 'tool_call_start', index, id: part.id, name: part.name });
        if (part.arguments) events.push({ type: 'tool_call_delta', index, arguments: part.arguments });
        return;
    }
  });
  events.push({ type: 'finish', reason: answer.finishReason, ...(answer.stopSequence !== undefined && { stopSequence: answer.stopSequence }) });
  if (answer.usage) events.push({ type: 'usage', usage: answer.usage });
  return events;
}

/** Adds events up to a whole answer (for a JSON reply, the store, and settlement's text count). */
export class AnswerCollector {
  private id = '';
  private model = '';
  private createdS = 0;
  private readonly parts: AnswerPart[] = [];
  private finishReason: FinishReason | undefined;
  private stopSequence: string | undefined;
  private usage: Usage | undefined;

  push(event: AnswerEvent): void {
    switch (event.type) {
      case 'start':
        this.id = event.id;
        this.model = event.model;
        this.createdS = event.createdS ?? Math.floor(Date.now() / 1000);
        return;
      case 'text':
      case 'refusal': {
        const part = this.partAt(event.index, () => ({ type: event.type, text: '' }));
        if (part.type !== event.type) throw new Error(`Answer part ${event.index} is ${part.type}, not ${event.type}.`);
        part.text += event.text;
        return;
      }
      case 'reasoning':
        this.reasoningAt(event.index).text += event.text;
        return;
      case 'reasoning_signature':
        this.reasoningAt(event.index).signature = event.signature;
        return;
      case 'reasoning_redacted':
        this.reasoningAt(event.index).redactedData = event.data;
        return;
      case 'reasoning_encrypted': {
        const part = this.reasoningAt(event.index);
        part.encryptedContent = event.encryptedContent;
        if (event.id !== undefined) part.id = event.id;
        return;
      }
      case 'tool_call_start':
        this.partAt(event.index, () => ({ type: 'tool_call', id: event.id, name: event.name, arguments: '' }));
        return;
      case 'tool_call_delta': {
        const part = this.parts[event.index];
        if (part?.type !== 'tool_call') throw new Error(`Arguments for answer part ${event.index}, which is no tool call.`);
        part.arguments += event.arguments;
        return;
      }
      case 'finish':
        this.finishReason = event.reason;
        this.stopSequence = event.stopSequence;
        return;
      case 'usage':
        this.usage = event.usage;
        return;
    }
  }

  /** The answer so far; `finishReason` is `stop` if no finish came (the caller knows if the stream was cut). */
  answer(): Answer {
    return {
      id: this.id,
      model: this.model,
      createdS: this.createdS,
      parts: this.parts.map((p) => ({ ...p })),
      finishReason: this.finishReason ?? 'stop',
      ...(this.stopSequence !== undefined && { stopSequence: this.stopSequence }),
      ...(this.usage && { usage: this.usage }),
    };
  }

  /** The text and tool arguments delivered, for counting the tokens of an answer the provider did not count. */
  deliveredText(): string {
    return this.parts.map((p) => (p.type === 'tool_call' ? p.arguments : p.text)).join('');
  }

  private partAt<P extends AnswerPart>(index: number, open: () => P): AnswerPart {
    if (index === this.parts.length) this.parts.push(open());
    const part = this.parts[index];
    if (!part) throw new Error(`Answer part ${index} opened before part ${this.parts.length}.`);
    return part;
  }

  private reasoningAt(index: number): Extract<AnswerPart, { type: 'reasoning' }> {
    const part = this.partAt(index, () => ({ type: 'reasoning', text: '' }));
    if (part.type !== 'reasoning') throw new Error(`Answer part ${index} is ${part.type}, not reasoning.`);
    return part;
  }
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
