// The one module that writes Server-Sent Events text. Per-wire code gives event names and payloads.

const encoder = new TextEncoder();

/** One event: an optional name (`event:` line, as Anthropic and Responses send it) and its data. */
export interface SseFrame {
  event?: string;
  /** A value written as JSON, or text written as is (a relayed upstream frame, `[DONE]`). */
  data: unknown;
  /** true when `data` is already the text to write. */
  raw?: boolean;
}

export const DONE_FRAME: SseFrame = Object.freeze({ data: '[DONE]', raw: true });

export function sseFrameText(frame: SseFrame): string {
  const data = frame.raw ? String(frame.data) : JSON.stringify(frame.data);
  return `${frame.event !== undefined ? `event: ${frame.event}\n` : ''}data: ${data}\n\n`;
}

export function sseBytes(frames: ReadonlyArray<SseFrame>): Uint8Array {
  return encoder.encode(frames.map(sseFrameText).join(''));
}

/** An OpenAI error body, `{error: {...}}`, as every wire's terminal error carries some form of it. */
export interface StreamError {
  status: number;
  type: string;
  code: string | null;
  param: string | null;
  message: string;
}

/**
 * How a wire ends a stream: after the last answer event (`ended`), or when it fails after the
 * first byte (`failed`: Chat's error event then `[DONE]`, Anthropic's `error` event, Responses'
 * `response.failed`).
 */
export interface StreamTerminals {
  ended(): SseFrame[];
  failed(error: StreamError): SseFrame[];
}
