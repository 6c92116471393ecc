import type { IncomingMessage } from 'node:http';
import type { EventSourceMessage } from 'eventsource-parser';
import { GatewayError, invalidRequest, upstreamError } from '../../contract/errors';
import { spliceJson } from '../../contract/json-splice';
import { StreamErrorEvent, type Answer, type AnswerEvent, type AnswerPart } from '../../core/answer';
import type { Call, CallSettings } from '../../core/call';
import type { ChatCompletionRequest } from '../../contract/request';
import type { AssistantPart, FunctionTool, Prompt, Turn, UserPart } from '../../core/prompt';
import { decodeMessagesAnswer, encodeMessagesRequest, MessagesEventDecoder, type MessagesWireRequest } from '../../codecs/anthropic-messages';
import { summarizesThinking, type ThinkingBilling } from '../../money/thinking';
import { fetchUpstream, openEventStream, providerMessage, readText } from '../http';
import type { AnswerCall, AnswerProvider, ProviderCall, RelayedEvent, SameWireRequest } from '../types';
import { UpstreamDeadline } from '../upstream-deadline';
import { rejectUnsupportedParameters, toConversation } from '../conversation';
import { anthropicError } from './errors';

export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';
export const ANTHROPIC_VERSION = '2023-06-01';

/** The name of the tool that carries a `json_object` answer. */
export const JSON_OBJECT_TOOL_NAME = 'json_object';

/**
 * Anthropic's Messages API in the canonical model: the call encoded with the Messages codec, the
 * answer (JSON or events) decoded with it. A `/v1/messages` endpoint may relay the stream's events
 * as Anthropic sent them (`relayStream`), each with its canonical meaning for the meter.
 *
 * What the codec leaves to the provider, because only this route needs it: JSON answers asked in
 * OpenAI's words (`response_format`) come through a forced tool whose input is the answer (and
 * is answered as text); adjacent turns of one role are merged and empty text dropped (Anthropic
 * refuses both); `reasoning_effort: minimal` thinks not at all.
 *
 * @example
 * const provider = anthropicProvider();
 * const answer = await provider.answer({ request: callFor(decoded, heldOutputLimit(1024)), route, apiKey, ... });
 */
export function anthropicProvider(): AnswerProvider {
  return {
    relayWire: 'anthropic-messages',

    async answer(call) {
      const plan = messagesPlan(call, false);
      return plan.answerOf(decodeMessagesAnswer(await wholeMessage(call, { body: plan.body })));
    },

    async answerStream(call) {
      const plan = messagesPlan(call, true);
      return answerEventsOf(await relayMessages(call, { body: plan.body }), plan.eventsOf);
    },

    async relayStream(call) {
      return relayMessages(call, call.sameWire ?? { body: messagesPlan(call, true).body });
    },

    async relayAnswer(call) {
      const message = await wholeMessage(call, call.sameWire ?? { body: messagesPlan(call, false).body });
      return { body: message as unknown as Record<string, unknown>, answer: decodeMessagesAnswer(message) };
    },

    thinkingBilling(call) {
      return thinkingBillingOf((call.sameWire?.body as MessagesWireRequest | undefined) ?? messagesPlan(call, true).body, call.route.model);
    },
  };
}

/**
 * The 400s of what Anthropic cannot take from a Chat Completions request, naming the field (the
 * canonical prompt no longer knows message indices): n > 1, logprobs, seed, penalties, legacy
 * function messages, images it cannot read, tool-call arguments that are not a JSON object. The
 * chat endpoint runs it before an Anthropic route's call.
 */
export function refuseWhatAnthropicCannotTake(request: ChatCompletionRequest): void {
  rejectUnsupportedParameters(request, 'Anthropic');
  toConversation(request.messages);
}

/** The Messages body a call sends on this route, and the name of the tool that carries a JSON answer (if any). */
export function messagesBody(call: Pick<AnswerCall, 'request' | 'route'>): { body: MessagesWireRequest; jsonToolName?: string } {
  const plan = messagesPlan(call, call.request.settings.stream);
  return { body: plan.body, ...(plan.jsonTool !== undefined && { jsonToolName: plan.jsonTool }) };
}

/** What a Messages request sends besides its body: the client's own version and beta words on a same-wire relay. */
export type MessagesSend = SameWireRequest;

/**
 * `POST /v1/messages` on the route's Anthropic endpoint, with the route's key. Settles with the
 * response head; a status other than 2xx is thrown as the GatewayError Anthropic's error maps to
 * (fallback-able but for the client's own mistakes).
 */
export async function postMessages(call: ProviderCall<unknown>, send: MessagesSend, deadline: UpstreamDeadline): Promise<IncomingMessage> {
  const base = (call.route.base_url ?? ANTHROPIC_DEFAULT_BASE_URL).replace(/\/+$/, '');
  const headers: Record<string, string> = {
    accept: send.body.stream === true ? 'text/event-stream' : 'application/json',
    'anthropic-version': send.version ?? ANTHROPIC_VERSION,
  };
  if (send.beta) headers['anthropic-beta'] = send.beta;
  if (call.apiKey) headers['x-api-key'] = call.apiKey;
  const url = `${base}/v1/messages${send.betaQuery ? '?beta=true' : ''}`;
  return fetchUpstream(url, { headers, body: spliceJson(send.body, send.source) }, call, deadline, async (status, response) => {
    const text = await readText(response).catch(() => '');
    return anthropicError(errorTypeOf(text), providerMessage(text), status);
  });
}

/** A whole (`stream: false`) message, within the call's total time. */
async function wholeMessage(call: ProviderCall<unknown>, send: MessagesSend): Promise<Parameters<typeof decodeMessagesAnswer>[0]> {
  const deadline = UpstreamDeadline.whole(call, 'Anthropic');
  let whole = false;
  try {
    const response = await postMessages(call, send, deadline);
    const message = parseMessage(await readText(response));
    whole = true;
    return message;
  } catch (err) {
    throw deadline.failure(err, true);
  } finally {
    deadline.dispose(!whole);
  }
}

/** One event of Anthropic's stream, its data kept as the upstream wrote it. */
export interface RawAnthropicEvent {
  /** The `type` of the data (which Anthropic also writes as the `event:` line). */
  type: string;
  data: string;
  doc: Record<string, unknown>;
}

/** An event's data, parsed: an object with a `type`, else the upstream error it is. */
export function anthropicEventOf(event: EventSourceMessage): RawAnthropicEvent {
  let doc: unknown;
  try {
    doc = JSON.parse(event.data);
  } catch {
    doc = undefined;
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc) || typeof (doc as { type?: unknown }).type !== 'string') {
    throw upstreamError(`Anthropic sent a stream event that is not JSON (event: ${event.event ?? 'message'}).`);
  }
  return { type: (doc as { type: string }).type, data: event.data, doc: doc as Record<string, unknown> };
}

/** An `error` event of Anthropic's stream in the gateway's words. */
export function anthropicStreamError(doc: Record<string, unknown>): GatewayError {
  const error = (doc.error ?? {}) as { type?: unknown; message?: unknown };
  return anthropicError(typeof error.type === 'string' ? error.type : undefined, typeof error.message === 'string' ? error.message : undefined);
}

/**
 * Anthropic's stream, opened and read up to `message_start` (an error as the first event may still
 * fall back), each event as sent with its canonical meaning. An `error` event, a body that is not
 * JSON, or a body that ends before `message_stop` is thrown as a GatewayError.
 */
async function relayMessages(call: AnswerCall, send: MessagesSend): Promise<AsyncIterable<RelayedEvent>> {
  const deadline = new UpstreamDeadline(call.signal, 'Anthropic');
  const decoder = new MessagesEventDecoder();
  return openEventStream<RelayedEvent>(deadline, call.timeouts.idleMs, () => postMessages(call, send, deadline), {
    decode(event) {
      const raw = anthropicEventOf(event);
      if (raw.type === 'error') throw anthropicStreamError(raw.doc);
      let answer: AnswerEvent[];
      try {
        answer = decoder.push(raw.doc as never);
      } catch (err) {
        if (err instanceof StreamErrorEvent) throw anthropicError(err.errorType, err.message);
        throw err;
      }
      return [{ event: event.event ?? raw.type, data: event.data, answer }];
    },
    end() {
      decoder.end();
      return [];
    },
    finished: () => decoder.finished,
  });
}

async function* answerEventsOf(relayed: AsyncIterable<RelayedEvent>, map: (event: AnswerEvent) => AnswerEvent[]): AsyncGenerator<AnswerEvent> {
  for await (const event of relayed) for (const e of event.answer) yield* map(e);
}

function errorTypeOf(text: string): string | undefined {
  try {
    const type = (JSON.parse(text) as { error?: { type?: unknown } }).error?.type;
    return typeof type === 'string' ? type : undefined;
  } catch {
    return undefined;
  }
}

function parseMessage(text: string): Parameters<typeof decodeMessagesAnswer>[0] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    doc = undefined;
  }
  const message = doc as { type?: unknown; content?: unknown } | undefined;
  if (!message || message.type !== 'message' || !Array.isArray(message.content)) {
    throw upstreamError('Anthropic answered with something that is not a message.', { fallback: true });
  }
  return message as Parameters<typeof decodeMessagesAnswer>[0];
}

/** The thinking a body asks for, as the meter bills it when a stream is cut before Anthropic's count came. */
function thinkingBillingOf(body: MessagesWireRequest, upstreamModel: string): ThinkingBilling | undefined {
  const thinking = body.thinking as { type?: string; budget_tokens?: number } | undefined;
  if (thinking?.type !== 'enabled' && thinking?.type !== 'adaptive') return undefined;
  return {
    ...(thinking.budget_tokens !== undefined && { budgetTokens: thinking.budget_tokens }),
    outputLimit: body.max_tokens,
    summarized: summarizesThinking(upstreamModel),
  };
}

// ---- the request ------------------------------------------------------------------------------

interface MessagesPlan {
  body: MessagesWireRequest;
  jsonTool?: string;
  /** A whole answer, the JSON tool's input made text. */
  answerOf(answer: Answer): Answer;
  /** A stream's events, the JSON tool's input made text. */
  eventsOf(event: AnswerEvent): AnswerEvent[];
}

/** The Messages body for a call on this route, and how its answer reads back. */
function messagesPlan(call: Pick<AnswerCall, 'request' | 'route'>, stream: boolean): MessagesPlan {
  const { body, jsonTool } = encodedFor(call, stream);
  if (!jsonTool) return { body, answerOf: (a) => a, eventsOf: (e) => [e] };
  // The JSON tool's events are read by a state of their own: one per plan.
  return { body, jsonTool, answerOf: (a) => jsonAnswer(a, jsonTool), eventsOf: jsonEvents(jsonTool) };
}

/**
 * A call's Messages body, encoded once per call and kind (JSON, stream): a translated stream asks
 * for it twice (`thinkingBilling`, then the call), and a long prompt's encoding is the call's
 * largest step before it goes out. Kept while the call is, checked against its request and model.
 */
function encodedFor(call: Pick<AnswerCall, 'request' | 'route'>, stream: boolean): { body: MessagesWireRequest; jsonTool?: string } {
  let kept = ENCODED.get(call);
  if (!kept || kept.request !== call.request || kept.model !== call.route.model) ENCODED.set(call, (kept = { request: call.request, model: call.route.model, bodies: [] }));
  const i = stream ? 1 : 0;
  const done = kept.bodies[i];
  if (done) return done;
  const { settings, jsonTool } = withJsonTool(anthropicSettings({ ...call.request.settings, model: call.route.model, stream }));
  const encoded = { body: encodeMessagesRequest({ prompt: anthropicPrompt(call.request.prompt), settings }), ...(jsonTool !== undefined && { jsonTool }) };
  kept.bodies[i] = encoded;
  return encoded;
}

const ENCODED = new WeakMap<object, { request: Call; model: string; bodies: Array<{ body: MessagesWireRequest; jsonTool?: string } | undefined> }>();

/**
 * JSON asked in OpenAI's words (`response_format`) on a provider without JSON mode: a tool whose
 * input schema is the wanted JSON, forced (a named tool choice still wins; with tools of the
 * client's own, the model must answer through some tool, the JSON one included).
 */
function withJsonTool(settings: CallSettings): { settings: CallSettings; jsonTool?: string } {
  const format = settings.responseFormat;
  if (!format || format.type === 'text') return { settings: { ...settings, responseFormat: undefined } };
  let tool: FunctionTool;
  if (format.type === 'json_object') {
    tool = { kind: 'function', name: JSON_OBJECT_TOOL_NAME, description: 'Give your answer as a JSON object.', parameters: { type: 'object' } };
  } else {
    if (format.schema.type !== undefined && format.schema.type !== 'object') {
      throw invalidRequest(`'response_format.json_schema.schema' must describe a JSON object at its root for this model.`, 'response_format.json_schema.schema');
    }
    const schema = Object.keys(format.schema).length ? format.schema : { type: 'object' };
    tool = { kind: 'function', name: format.name, description: format.description ?? 'Give your answer as JSON matching this schema.', parameters: schema };
  }
  if (settings.tools.some((t) => t.kind === 'function' && t.name === tool.name)) {
    const param = format.type === 'json_schema' ? 'response_format.json_schema.name' : 'response_format';
    throw invalidRequest(`The JSON answer is carried by a tool named '${tool.name}', which a tool in 'tools' already uses; rename one.`, param);
  }
  const choice = settings.toolChoice;
  const userTools = settings.tools.length > 0 && choice?.type !== 'none';
  return {
    settings: {
      ...settings,
      responseFormat: undefined,
      tools: [...settings.tools, tool],
      toolChoice: choice?.type === 'tool' ? choice : userTools ? { type: 'required' } : { type: 'tool', name: tool.name },
    },
    jsonTool: tool.name,
  };
}

/**
 * OpenAI's `minimal` effort is nearly no reasoning: Claude's smallest budget would be more than
 * asked, so none; its `none` is sent as no thinking field at all (Claude's default). A tool without
 * parameters gets an empty object schema, as Anthropic's examples write it.
 */
function anthropicSettings(settings: CallSettings): CallSettings {
  const r = settings.reasoning;
  const noThinking = (r?.mode === 'enabled' && r.effort === 'minimal' && r.budgetTokens === undefined) || (r?.mode === 'disabled' && r.effort === 'none');
  const tools = settings.tools.map((t) =>
    t.kind === 'function' && t.parameters.type === 'object' && Object.keys(t.parameters).length === 1 ? { ...t, parameters: { type: 'object', properties: {} } } : t,
  );
  return { ...settings, tools, ...(noThinking && { reasoning: undefined }) };
}

function jsonAnswer(answer: Answer, jsonTool: string): Answer {
  const parts = answer.parts.map((p): AnswerPart => (p.type === 'tool_call' && p.name === jsonTool ? { type: 'text', text: p.arguments } : p));
  const calledTools = parts.some((p) => p.type === 'tool_call');
  return { ...answer, parts, finishReason: answer.finishReason === 'tool_calls' && !calledTools ? 'stop' : answer.finishReason };
}

function jsonEvents(jsonTool: string): (event: AnswerEvent) => AnswerEvent[] {
  const jsonParts = new Set<number>();
  let calledTools = false;
  return (event) => {
    switch (event.type) {
      case 'tool_call_start':
        if (event.name === jsonTool) {
          jsonParts.add(event.index);
          return [];
        }
        calledTools = true;
        return [event];
      case 'tool_call_delta':
        return jsonParts.has(event.index) ? [{ type: 'text', index: event.index, text: event.arguments }] : [event];
      case 'finish':
        return [event.reason === 'tool_calls' && !calledTools ? { ...event, reason: 'stop' } : event];
      default:
        return [event];
    }
  };
}

/** The prompt as Anthropic takes it: no empty text blocks, and adjacent turns of one role merged into one. */
function anthropicPrompt(prompt: Prompt): Prompt {
  const turns: Turn[] = [];
  for (const turn of prompt.turns) {
    const parts = (turn.parts as Array<UserPart | AssistantPart>).filter((p) => p.type !== 'text' || p.text.length > 0);
    if (parts.length === 0) continue;
    const last = turns[turns.length - 1];
    if (last && last.role === turn.role && turn.role !== 'system') (last.parts as Array<UserPart | AssistantPart>).push(...parts);
    else turns.push({ ...turn, parts } as Turn);
  }
  return { system: prompt.system.filter((p) => p.text.length > 0), turns };
}

export type { Call };
