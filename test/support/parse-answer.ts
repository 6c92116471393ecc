import { GatewayError } from '../../lambda/contract/errors';

/**
 * What a request parser answers for a body, as a value to compare: the parsed request as JSON (its
 * keys' order included), or the 400's status, message, param and code. Anything but a
 * GatewayError is thrown on (a parser must never answer with one).
 */
export function parseAnswer(parse: (body: unknown) => unknown, body: unknown): { value: string } | { error: Record<string, unknown> } {
  try {
    return { value: JSON.stringify(parse(body)) };
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return { error: { status: err.status, message: err.message, param: err.param, code: err.code } };
  }
}
