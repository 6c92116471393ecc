/**
 * Structured log lines on stdout (CloudWatch keeps them as JSON). Callers pass ids, counts and
 * codes only: keys, prompts and completions never reach a log line.
 */
export interface Logger {
  info(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export function jsonLogger(write: (line: string) => void = (line) => process.stdout.write(line)): Logger {
  const emit = (level: string, event: string, fields: Record<string, unknown> = {}) =>
    write(`${JSON.stringify({ level, event, time: new Date().toISOString(), ...fields })}\n`);
  return {
    info: (event, fields) => emit('info', event, fields),
    error: (event, fields) => emit('error', event, fields),
  };
}

/**
 * A SyntaxError's message quotes the text it failed on (V8: `Unexpected token 'Z', "Zq7Kx9 wha"...`),
 * which may be a piece of a prompt or completion: only its name is logged.
 */
function safeMessage(err: Error, max: number): string {
  return err instanceof SyntaxError ? '(message withheld: it may quote request or response data)' : err.message.slice(0, max);
}

/** An error's name, message and AWS error code, without request data. */
export function describeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err).slice(0, 200) };
  const out: Record<string, unknown> = { error: err.name, message: safeMessage(err, 500) };
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) out.cause = `${cause.name}: ${safeMessage(cause, 200)}`;
  if (err.stack) out.stack = err.stack.split('\n').slice(1, 6).join(' | ');
  return out;
}
