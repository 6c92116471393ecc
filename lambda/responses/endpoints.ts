import { GatewayError, invalidRequest } from '../contract/errors';
import { parseCreateResponseRequest, type CreateResponseRequest, type InputItem, type ResponseObject, type StoredItem } from '../contract/responses';
import {
  decodeResponsesRequest,
  encodeResponse,
  encryptedContentOf,
  replayResponseFrames,
  responseShell,
  responsesStreamTerminals,
  ResponsesEventEncoder,
  type ResponseEncodingOptions,
  type ResponsesObject,
} from '../codecs/openai-responses';
import { AnswerCollector, answerEvents, type Answer, type AnswerEvent } from '../core/answer';
import { sseBytes } from '../core/sse';
import type { KeyRecord } from '../store/keys';
import type { ResponsesStore, StoredResponse } from '../store/responses';
import { JSON_HEADERS, modelFor, noteIgnored, scopedResponse, type CompletionDeps, type RequestScope } from '../chat/pipeline';
import { SSE_HEADERS } from '../chat/completions';
import { sseBody, type SseSource } from '../chat/sse-body';
import { pricesServerTool } from '../money/billing-ask';
import { answerPlan } from './answer-plan';
import { storedItemsOf } from './items';
import { isResponseId, ResponseIds, responseIdOfItem } from './response-ids';

/** What the Responses endpoints need besides the completion path: the store, and a log for its failures. */
export interface ResponsesDeps extends CompletionDeps {
  responses: Pick<ResponsesStore, 'get' | 'put' | 'delete'>;
  logError(requestId: string, err: unknown): void;
}

/**
 * `POST /v1/responses` once the key is known: validate, read the previous response and the items
 * the input refers to, decode with the Responses codec, run on the pipeline, and answer with the
 * codec (`encodeResponse`, or `ResponsesEventEncoder` through `core/sse.ts`). With `store` (the
 * default) the response is written before its terminal event (`response.failed` included) is sent.
 */
export async function createResponse(deps: ResponsesDeps, scope: RequestScope, key: KeyRecord, body: unknown): Promise<Response> {
  const request = parseCreateResponseRequest(body);
  const model = modelFor(deps, key, request.model);
  const ids = new ResponseIds();
  const input = inputItemsOf(request);

  // The previous response and the items the input refers to, read together; the codec reads nothing.
  const [previous, references] = await Promise.all([
    request.previous_response_id ? previousResponse(deps, key, request.previous_response_id) : undefined,
    resolveReferences(deps, key, input),
  ]);
  const context: StoredItem[] = previous ? [...previous.context, ...previous.input, ...outputOf(previous)] : [];
  const decoded = decodeResponsesRequest(request, { previous: context, references }, { webSearch: pricesServerTool(model, 'web_search') });
  const plan = answerPlan(decoded, model, key.accountId);
  noteIgnored(scope, decoded.ignored);
  const stored = storedItemsOf(input, references, ids);

  const shell = responseShell(request, decoded, { id: ids.responseId, model: model.id, createdAtMs: scope.startedAtMs });
  const options: ResponseEncodingOptions = { idFor: (prefix, position) => ids.output(prefix, position), includeEncrypted: decoded.includeEncrypted, includeLogprobs: decoded.includeLogprobs };
  const persist = async (response: ResponsesObject, answer: Answer): Promise<ResponsesObject> => {
    if (!decoded.store) return response;
    try {
      const reasoning = carriedReasoning(answer, response);
      await deps.responses.put(key.accountId, { response: response as ResponseObject, input: stored, context, ...(reasoning && { reasoning }) });
      return response;
    } catch (err) {
      // The answer is paid for and delivered; it says it was not stored, and a later reference to it gets a 400.
      deps.logError(scope.requestId, err);
      return { ...response, store: false };
    }
  };

  const opened = await plan.open(deps, scope, key);
  if (opened.kind === 'json') {
    const answer = opened.answer;
    const collector = new AnswerCollector();
    const estimatedUsage = answer.usage ? undefined : plan.estimate(deliveredText(answer, collector));
    const response = await persist(encodeResponse(answer, { ...options, shell, estimatedUsage }), answer);
    return scopedResponse(scope, JSON.stringify(response), JSON_HEADERS);
  }

  const events = opened.events;
  const encoder = new ResponsesEventEncoder(shell, options);
  const terminals = responsesStreamTerminals(encoder);
  const delivered = new AnswerCollector();
  const estimate = () => (encoder.reportedUsage ? undefined : plan.estimate(delivered.deliveredText()));
  // `response.created` and `response.in_progress` go out at once, before the upstream's first event.
  const opening: AnswerEvent = { type: 'start', id: shell.id, model: shell.model };
  let opened$ = false;
  // The client left while the upstream was answering: nothing more is sent or stored.
  let cancelled = false;
  const source: SseSource<AnswerEvent> = {
    next: async () => (opened$ ? events.next() : ((opened$ = true), { done: false, value: opening })),
    return: async () => {
      cancelled = true;
      return events.return();
    },
    ...(events.fail && { fail: (error: GatewayError) => events.fail!(error) }),
  };
  const encode = (event: AnswerEvent) => {
    if (event !== opening) delivered.push(event);
    return encoder.push(event);
  };
  // The terminal carries the stored response: written after the store write (issue 18 item 4).
  const body$ = sseBody(source, encode, {
    ended: async () => {
      if (cancelled) return [];
      encoder.stored(await persist(encoder.finalResponse(estimate()), delivered.answer()));
      return terminals.ended();
    },
    failed: async (error) => {
      if (cancelled) return [];
      encoder.stored(await persist(encoder.failedResponse(error, estimate()), delivered.answer()));
      return terminals.failed(error);
    },
  });
  return scopedResponse(scope, body$, SSE_HEADERS);
}

/** `GET /v1/responses/{id}`: the stored response; `?stream=true` replays it as the events a stream would have sent. */
export async function retrieveResponse(deps: ResponsesDeps, key: KeyRecord, id: string, query: URLSearchParams): Promise<Response> {
  const stored = await storedResponse(deps, key, id);
  const stream = query.get('stream');
  if (stream !== 'true') return json(stored.response);
  const startingAfter = query.get('starting_after');
  const after = startingAfter === null ? -1 : Number(startingAfter);
  if (!Number.isInteger(after) || after < -1) throw invalidRequest("'starting_after' must be a sequence number (an integer).", 'starting_after');
  const frames = replayResponseFrames(stored.response as ResponsesObject).filter((frame) => (frame.data as { sequence_number: number }).sequence_number > after);
  return new Response(sseBytes(frames) as Uint8Array<ArrayBuffer>, { status: 200, headers: { ...SSE_HEADERS } });
}

/** `DELETE /v1/responses/{id}`. */
export async function deleteResponse(deps: ResponsesDeps, key: KeyRecord, id: string): Promise<Response> {
  if (!isResponseId(id) || !(await deps.responses.delete(key.accountId, id))) throw responseNotFound(id);
  return json({ id, object: 'response', deleted: true });
}

/** `GET /v1/responses/{id}/input_items`: the request's input items, newest first unless `order=asc`, paged by `after` and `limit`. */
export async function listInputItems(deps: ResponsesDeps, key: KeyRecord, id: string, query: URLSearchParams): Promise<Response> {
  const order = query.get('order') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw invalidRequest("Invalid value for 'order': expected one of 'asc', 'desc'.", 'order');
  const limitText = query.get('limit');
  const limit = limitText === null ? 20 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalidRequest("Invalid value for 'limit': expected an integer from 1 to 100.", 'limit');
  const stored = await storedResponse(deps, key, id);
  const items = order === 'asc' ? stored.input : [...stored.input].reverse();
  const after = query.get('after');
  let start = 0;
  if (after !== null) {
    const at = items.findIndex((item) => item.id === after);
    if (at < 0) throw invalidRequest(`Invalid value for 'after': no input item '${after.slice(0, 100)}' in this response.`, 'after');
    start = at + 1;
  }
  const data = items.slice(start, start + limit);
  return json({ object: 'list', data, first_id: data[0]?.id ?? '', last_id: data[data.length - 1]?.id ?? '', has_more: start + limit < items.length });
}

async function storedResponse(deps: ResponsesDeps, key: KeyRecord, id: string): Promise<StoredResponse> {
  const stored = isResponseId(id) ? await deps.responses.get(key.accountId, id) : undefined;
  if (!stored) throw responseNotFound(id);
  return stored;
}

/** Another account's response is as absent as one that never existed. */
const responseNotFound = (id: string) =>
  new GatewayError(404, 'invalid_request_error', 'not_found', `No response found with id '${id.slice(0, 100)}'.`, { param: 'response_id' });

async function previousResponse(deps: ResponsesDeps, key: KeyRecord, id: string): Promise<StoredResponse> {
  const stored = isResponseId(id) ? await deps.responses.get(key.accountId, id) : undefined;
  if (!stored) {
    throw new GatewayError(400, 'invalid_request_error', 'previous_response_not_found', `Previous response with id '${id.slice(0, 100)}' not found.`, {
      param: 'previous_response_id',
    });
  }
  return stored;
}

function inputItemsOf(request: CreateResponseRequest): InputItem[] {
  if (request.input === undefined) return [];
  if (typeof request.input === 'string') return [{ type: 'message', role: 'user', content: request.input }];
  return request.input;
}

/**
 * The stored items the input's `item_reference`s name, by item id: one read per referenced
 * response. An id found nowhere is left out, and the codec answers it with a 404.
 */
async function resolveReferences(deps: ResponsesDeps, key: KeyRecord, input: InputItem[]): Promise<Map<string, StoredItem>> {
  const wanted = new Set<string>();
  const responseIds = new Set<string>();
  for (const item of input) {
    if (item.type !== 'item_reference') continue;
    wanted.add(item.id);
    const responseId = responseIdOfItem(item.id);
    if (responseId) responseIds.add(responseId);
  }
  const found = new Map<string, StoredItem>();
  const loaded = await Promise.all([...responseIds].map((id) => deps.responses.get(key.accountId, id)));
  for (const stored of loaded) {
    for (const candidate of stored ? [...outputOf(stored), ...stored.input, ...stored.context] : []) {
      if (wanted.has(candidate.id) && !found.has(candidate.id)) found.set(candidate.id, candidate);
    }
  }
  return found;
}

/**
 * The `encrypted_content` of each output reasoning item that the response shows without it (the
 * client did not `include` it), by item id. Reasoning items are one per reasoning part, in order.
 */
function carriedReasoning(answer: Answer, response: ResponsesObject): Record<string, string> | undefined {
  const parts = answer.parts.filter((p) => p.type === 'reasoning');
  const carried: Record<string, string> = {};
  response.output.filter((item) => item.type === 'reasoning').forEach((item, i) => {
    const part = parts[i];
    const content = part?.type === 'reasoning' ? encryptedContentOf(part) : undefined;
    if (content !== undefined && item.encrypted_content == null) carried[item.id] = content;
  });
  return Object.keys(carried).length ? carried : undefined;
}

/** A stored response's output as the provider gave it: reasoning items with the content the answer left out. */
function outputOf(stored: StoredResponse): StoredItem[] {
  const carried = stored.reasoning ?? {};
  return stored.response.output.map((item) => (item.type === 'reasoning' && carried[item.id] !== undefined ? { ...item, encrypted_content: carried[item.id] } : item));
}

/** The text and tool arguments of a whole answer, for the tokenizer when the provider counted none. */
function deliveredText(answer: Answer, collector: AnswerCollector): string {
  for (const event of answerEvents(answer)) collector.push(event);
  return collector.deliveredText();
}

function json(value: unknown): Response {
  return new Response(JSON.stringify(value), { status: 200, headers: { 'content-type': 'application/json' } });
}
