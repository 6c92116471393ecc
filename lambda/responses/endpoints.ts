import { GatewayError, invalidRequest, upstreamError } from '../contract/errors';
import type { ChatCompletionChunk, CompletionUsage } from '../contract/openai';
import {
  parseCreateResponseRequest,
  type CreateResponseRequest,
  type InputItem,
  type ResponseObject,
  type ResponseUsage,
  type StoredItem,
} from '../contract/responses';
import { countTokens, estimatePromptTokens } from '../money/tokens';
import type { KeyRecord } from '../store/keys';
import type { ResponsesStore, StoredResponse } from '../store/responses';
import { modelFor, noteIgnored, type CompletionDeps, type RequestScope } from '../chat/pipeline';
import { openCompletion } from '../chat/chat-hub';
import { SSE_HEADERS } from '../chat/completions';
import { pricesServerTool } from '../money/billing-ask';
import { chatRequestOf } from './chat-request';
import { storedItemsOf, type ResolvedInputItem } from './items';
import { finalResponse, inProgressResponse, outputOfCompletion, responseUsage, terminalOf, type ResponseFrame } from './output';
import { isResponseId, ResponseIds, responseIdOfItem } from './response-ids';
import { responseEventFrame, responseEventText, ResponseEventStream, type ResponseEvent } from './stream';

/** What the Responses endpoints need besides the completion path: the store, and a log for its failures. */
export interface ResponsesDeps extends CompletionDeps {
  responses: Pick<ResponsesStore, 'get' | 'put' | 'delete'>;
  logError(requestId: string, err: unknown): void;
}


/**
 * `POST /v1/responses` once the key is known: validate, rebuild the conversation (previous
 * response, item references), translate to Chat Completions and run it through the shared
 * completion path (admission, routes, deadline, billing), then answer in Responses' shapes.
 * With `store` (the default) the response is written before its terminal event is sent.
 */
export async function createResponse(deps: ResponsesDeps, scope: RequestScope, key: KeyRecord, body: unknown): Promise<Response> {
  const request = parseCreateResponseRequest(body);
  const model = modelFor(deps, key, request.model);
  const store = request.store !== false;
  const ids = new ResponseIds();

  // The previous response and the items the input refers to, read together.
  const [previous, resolved] = await Promise.all([
    request.previous_response_id ? previousResponse(deps, key, request.previous_response_id) : undefined,
    resolveReferences(deps, key, inputItemsOf(request)),
  ]);
  const context: StoredItem[] = previous ? [...previous.context, ...previous.input, ...previous.response.output] : [];
  const { items: input, ignored: ignoredInput } = storedItemsOf(resolved, ids);
  const plan = chatRequestOf(request, [...context, ...input], model.id, { webSearch: pricesServerTool(model, 'web_search') });
  const ignored = [...plan.ignoredTools, ...ignoredInput];
  noteIgnored(scope, ignored);

  const frame: ResponseFrame = { ids, request, tools: plan.tools, modelId: model.id, createdAtMs: scope.startedAtMs, store };
  const base = inProgressResponse(frame);
  const estimate = (text: string): ResponseUsage => responseUsage(estimatedUsage(estimatePromptTokens(plan.chat, model.tokenRules), text));
  const persist = async (response: ResponseObject): Promise<ResponseObject> => {
    if (!store) return response;
    try {
      await deps.responses.put(key.accountId, { response, input, context });
      return response;
    } catch (err) {
      // The answer is paid for and delivered; it says it was not stored, and a later reference to it gets a 400.
      deps.logError(scope.requestId, err);
      return { ...response, store: false };
    }
  };

  const opened = await openCompletion(deps, scope, key, model, plan.chat);
  if (opened.kind === 'json') {
    const completion = opened.completion;
    const { status, incompleteDetails } = terminalOf(completion.choices[0]?.finish_reason);
    const output = outputOfCompletion(completion, ids, status);
    const usage = completion.usage ? responseUsage(completion.usage) : estimate(output.map(itemText).join(''));
    const response = await persist(finalResponse(base, { status, output, usage, incompleteDetails, nowMs: Date.now() }));
    return new Response(JSON.stringify(response), { status: 200, headers: { 'content-type': 'application/json', ...scope.responseHeaders } });
  }

  const chunks = opened.chunks;
  const events = new ResponseEventStream(base, ids);
  let pending: ResponseEvent[] = events.start();
  let ended = false;
  let cancelled = false;
  const body$ = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const send = (list: ResponseEvent[]) => list.forEach((event) => controller.enqueue(responseEventFrame(event)));
      try {
        while (!ended) {
          if (pending.length) {
            send(pending);
            pending = [];
            return;
          }
          const next = await chunks.next();
          // The client left while the upstream was answering: nothing more is sent or stored.
          if (cancelled) return;
          if (next.done) {
            ended = true;
            const usage = events.reportedUsage ? responseUsage(events.reportedUsage) : estimate(events.deliveredText);
            const { events: closing, response } = events.finish(usage, Date.now());
            send(closing);
            send([events.terminal(await persist(response))]);
            break;
          }
          pending = events.push(next.value);
        }
      } catch (err) {
        ended = true;
        // The client went away (its cancel aborted the upstream): nothing to tell it, nothing to store.
        if (cancelled) return;
        const error = err instanceof GatewayError ? err : upstreamError('The upstream failed mid-stream.', { cause: err });
        const usage = events.reportedUsage ? responseUsage(events.reportedUsage) : estimate(events.deliveredText);
        const failed = events.fail({ code: responseErrorCode(error), message: error.message }, usage, Date.now());
        send([events.terminal(await persist(failed))]);
      }
      controller.close();
    },
    async cancel() {
      ended = cancelled = true;
      await chunks.return();
    },
  });
  return new Response(body$, { status: 200, headers: { ...SSE_HEADERS, ...scope.responseHeaders } });
}

/** `GET /v1/responses/{id}`: the stored response; `?stream=true` replays it as the events a stream would have sent. */
export async function retrieveResponse(deps: ResponsesDeps, key: KeyRecord, id: string, query: URLSearchParams): Promise<Response> {
  const stored = await storedResponse(deps, key, id);
  const stream = query.get('stream');
  if (stream !== 'true') return json(stored.response);
  const startingAfter = query.get('starting_after');
  const after = startingAfter === null ? -1 : Number(startingAfter);
  if (!Number.isInteger(after) || after < -1) throw invalidRequest("'starting_after' must be a sequence number (an integer).", 'starting_after');
  const events = replayEvents(stored.response).filter((event) => event.sequence_number > after);
  return new Response(events.map(responseEventText).join(''), { status: 200, headers: { ...SSE_HEADERS } });
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

/** Replaces each `item_reference` with the stored item it names: one read per referenced response. */
async function resolveReferences(deps: ResponsesDeps, key: KeyRecord, input: InputItem[]): Promise<ResolvedInputItem[]> {
  const responseIds = new Set<string>();
  for (const item of input) {
    if (item.type !== 'item_reference') continue;
    const responseId = responseIdOfItem(item.id);
    if (responseId) responseIds.add(responseId);
  }
  const loaded = new Map<string, StoredResponse | undefined>();
  await Promise.all([...responseIds].map(async (id) => loaded.set(id, await deps.responses.get(key.accountId, id))));
  return input.map((item, i): ResolvedInputItem => {
    if (item.type !== 'item_reference') return item;
    const responseId = responseIdOfItem(item.id);
    const stored = responseId ? loaded.get(responseId) : undefined;
    const found = stored && [...stored.response.output, ...stored.input, ...stored.context].find((candidate) => candidate.id === item.id);
    if (!found) {
      throw new GatewayError(
        404,
        'invalid_request_error',
        'not_found',
        `Item with id '${item.id.slice(0, 100)}' not found. Items are not persisted when 'store' is set to false; send the item itself instead of a reference.`,
        { param: `input[${i}]` },
      );
    }
    return { type: 'resolved', item: found };
  });
}

/** The stored response as a stream would have sent it: the same events, numbered from 0. */
function replayEvents(response: ResponseObject): ResponseEvent[] {
  const ids = ResponseIds.of(response.id);
  const { usage: _usage, ...rest } = response;
  const base: ResponseObject = { ...rest, status: 'in_progress', completed_at: null, error: null, incomplete_details: null, output: [] };
  const stream = new ResponseEventStream(base, ids);
  const events = stream.start();
  const chunk = (delta: ChatCompletionChunk.Choice.Delta, finishReason: ChatCompletionChunk.Choice['finish_reason'] = null): ChatCompletionChunk => ({
    id: response.id,
    object: 'chat.completion.chunk',
    created: response.created_at,
    model: response.model,
    choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
  });
  let tools = 0;
  for (const item of response.output) {
    if (item.type === 'message') {
      for (const part of item.content) events.push(...stream.push(chunk(part.type === 'output_text' ? { content: part.text } : { refusal: part.refusal })));
    } else {
      events.push(...stream.push(chunk({ tool_calls: [{ index: tools++, id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } }] })));
    }
  }
  if (response.status !== 'failed') {
    const finish = response.incomplete_details?.reason === 'content_filter' ? 'content_filter' : response.status === 'incomplete' ? 'length' : 'stop';
    events.push(...stream.push(chunk({}, finish)));
    events.push(...stream.finish(response.usage!, Date.now()).events);
  }
  events.push(stream.terminal(response));
  return events;
}

function estimatedUsage(promptTokens: number, text: string): CompletionUsage {
  const completion = countTokens(text);
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
}

function itemText(item: ResponseObject['output'][number]): string {
  return item.type === 'function_call' ? item.arguments : item.content.map((p) => (p.type === 'output_text' ? p.text : p.refusal)).join('');
}

/** The spec's `ResponseErrorCode` has no word for itapi's own codes: a limit is `rate_limit_exceeded`, the rest `server_error`. */
function responseErrorCode(error: GatewayError): 'rate_limit_exceeded' | 'server_error' {
  return error.status === 429 ? 'rate_limit_exceeded' : 'server_error';
}

function json(value: unknown): Response {
  return new Response(JSON.stringify(value), { status: 200, headers: { 'content-type': 'application/json' } });
}
