import type { Context } from 'hono';
import type { z } from 'zod';
import { GatewayError, invalidRequest } from '../contract/errors';
import { AmountError, usdToMicro } from './money';

/** JSON request bodies of the admin API and the console's API: read, then validated with zod. */

/** The JSON body; an empty body is a 400 unless `emptyAllowed` (then `undefined`). */
export async function readJson(c: Context, emptyAllowed = false): Promise<unknown> {
  const type = c.req.header('content-type');
  if (type && !/^application\/json\s*(;|$)/i.test(type)) {
    throw new GatewayError(415, 'invalid_request_error', 'unsupported_content_type', `Unsupported content type '${type.slice(0, 100)}': send application/json.`);
  }
  const text = await c.req.text();
  if (!text.trim() && emptyAllowed) return undefined;
  if (!text.trim()) throw invalidRequest('The request body is empty: send a JSON object.', null, 'invalid_json');
  try {
    return JSON.parse(text);
  } catch {
    throw invalidRequest('The request body is not valid JSON.', null, 'invalid_json');
  }
}

/** A request's USD amount (`param` names its field) as integer micro-USD; a malformed amount is a 400 naming the field. */
export function usdParam(value: number | string, param: string): number {
  try {
    return usdToMicro(value);
  } catch (err) {
    if (err instanceof AmountError) throw invalidRequest(`Invalid value for '${param}': the amount ${err.message}.`, param);
    throw err;
  }
}

/** Validates with zod; the first issue becomes a 400 naming the field (`models[1]`). */
export function parse<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  let path = issue.path.map((p) => (typeof p === 'number' ? p : String(p)));
  if (issue.code === 'unrecognized_keys') path = [...path, issue.keys[0]];
  const param = path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '') || null;
  if (issue.code === 'unrecognized_keys') {
    return fail(`Unrecognized request argument supplied: ${issue.keys.join(', ')}`, param, 'unknown_parameter');
  }
  if (path.length > 0 && valueAt(body, path) === undefined) {
    return fail(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
  }
  if (!param && issue.code === 'invalid_type') return fail('The request body must be a JSON object.', null, 'invalid_value');
  return fail(`Invalid value for '${param}': ${issue.message}.`, param, 'invalid_value');
}

function valueAt(body: unknown, path: Array<string | number>): unknown {
  let value = body;
  for (const p of path) value = value && typeof value === 'object' ? (value as Record<string | number, unknown>)[p] : undefined;
  return value;
}

function fail(message: string, param: string | null, code: string): never {
  throw invalidRequest(message, param, code);
}
