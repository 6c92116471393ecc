import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The official OpenAI OpenAPI document, shared by every engineer on the project: the nearest
 * `shared/contract/openai-openapi.json` above this checkout (a worktree sits a level deeper than main).
 */
export const OPENAI_SPEC_PATH = process.env.ITAPI_OPENAI_SPEC ?? findUp(join('shared', 'contract', 'openai-openapi.json'));

function findUp(relative: string): string {
  for (let dir = join(__dirname, '../../..'); ; dir = dirname(dir)) {
    if (existsSync(join(dir, relative))) return join(dir, relative);
    if (dirname(dir) === dir) return join(__dirname, '../../..', relative);
  }
}

let ajv: Ajv | undefined;
const compiled = new Map<string, ValidateFunction>();

function instance(): Ajv {
  if (ajv) return ajv;
  const spec = JSON.parse(readFileSync(OPENAI_SPEC_PATH, 'utf8')) as Record<string, unknown>;
  // OpenAPI keywords (nullable, discriminator, x-*) and its formats are not all JSON Schema: be lenient on the schema, strict on the data.
  ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  ajv.addFormat('unixtime', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= 0 });
  ajv.addSchema(withNullAsType(spec) as Record<string, unknown>, 'openapi');
  return ajv;
}

/**
 * OpenAPI 3.0's `nullable: true` as plain JSON Schema: `{anyOf: [schema, {type: 'null'}]}`, so that it
 * also works beside `enum`, `$ref` and `allOf`, which Ajv's own `nullable` support does not cover.
 */
function withNullAsType(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withNullAsType);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'nullable' && typeof value === 'boolean') continue;
    out[key] = withNullAsType(value);
  }
  return (node as { nullable?: unknown }).nullable === true ? { anyOf: [out, { type: 'null' }] } : out;
}

/** A validator for `#/components/schemas/<name>` of the OpenAI spec. */
export function openAiValidator(name: string): ValidateFunction {
  let validate = compiled.get(name);
  if (!validate) {
    validate = instance().compile({ $ref: `openapi#/components/schemas/${name}` });
    compiled.set(name, validate);
  }
  return validate;
}

function check(name: string, value: unknown): void {
  const validate = openAiValidator(name);
  if (!validate(value)) {
    const problems = (validate.errors ?? []).map((e) => `  ${e.instancePath || '(root)'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
    throw new Error(`Not a valid ${name}:\n${problems.join('\n')}\n${JSON.stringify(value, null, 2)}`);
  }
}

/** Throws with ajv's errors unless `value` is a valid `CreateChatCompletionResponse`. */
export function validateCompletion(value: unknown): void {
  check('CreateChatCompletionResponse', value);
}

/** Throws with ajv's errors unless `value` is a valid `CreateChatCompletionStreamResponse`. */
export function validateChunk(value: unknown): void {
  check('CreateChatCompletionStreamResponse', value);
}

/** Throws with ajv's errors unless `value` is a valid Responses API `Response`. */
export function validateResponse(value: unknown): void {
  check('Response', value);
}

/** Throws with ajv's errors unless `value` is a valid `ResponseStreamEvent`. */
export function validateResponseEvent(value: unknown): void {
  check('ResponseStreamEvent', value);
}

/** Throws with ajv's errors unless `value` is a valid `ResponseItemList` (`GET /v1/responses/{id}/input_items`). */
export function validateResponseItemList(value: unknown): void {
  check('ResponseItemList', value);
}
