import type { ChatCompletion, ChatCompletionChunk, ChatCompletionTokenLogprob, CompletionUsage, FinishReason } from '../../contract/openai';
import type { ChatCompletionRequest, ChatMessage } from '../../contract/request';
import { ChatChunkDecoder, decodeChatCompletion, encodeChatRequest } from '../../codecs/openai-chat';
import type { AnswerEvent } from '../../core/answer';
import type { AnswerCall, AnswerProvider, ProviderCall } from '../types';
import { mockEmbeddings } from './embeddings';

/** Stream pieces per answer: one word each, so clients see several chunks. */
const CREATED_S = 1735689600;

interface MockChoice {
  text: string | null;
  toolCall?: { id: string; name: string; arguments: string };
  finishReason: FinishReason;
  completionTokens: number;
}

/**
 * Offline and deterministic: the same request always gets the same answer. With tools offered
 * (and `tool_choice` not `none`) and no tool result yet, it calls a tool — the one `tool_choice`
 * forces, else one the last user message names, else the only one offered; an agent's whole
 * toolbox (Claude Code sends two dozen tools) gets words, not a call of its first tool, which
 * for Claude Code's `Agent` tool would start sub-agents without end. Otherwise it answers in
 * words (to the last message that is not a system message), cut at the request's token limit.
 */
export function mockProvider(): AnswerProvider {
  return {
    // `n` choices, each its own deterministic answer.
    servesSeveralChoices: true,

    // The call as the Chat request a client would have sent, the answer decoded back (every choice).
    async answer(call) {
      return decodeChatCompletion(complete(chatCall(call)));
    },

    async answerStream(call) {
      return answerEventsOf(streamAnswer(chatCall(call), plan(chatCall(call))));
    },

    async embed(call) {
      return mockEmbeddings(call);
    },
  };
}

/** The mock's whole answer to a Chat request, in Chat's shape. */
function complete(call: ProviderCall): ChatCompletion {
      const answer = plan(call);
      return {
        id: `chatcmpl-mock-${call.requestId}`,
        object: 'chat.completion',
        created: CREATED_S,
        model: call.route.model,
        choices: answer.choices.map((c, index) => ({
          index,
          logprobs: call.request.logprobs === true ? { content: pieces(c.text).map((p) => tokenLogprob(p, call.request.top_logprobs)), refusal: null } : null,
          finish_reason: c.finishReason,
          message: {
            role: 'assistant',
            content: c.text,
            refusal: null,
            ...(c.toolCall && {
              tool_calls: [{ id: c.toolCall.id, type: 'function', function: { name: c.toolCall.name, arguments: c.toolCall.arguments } }],
            }),
          },
        })),
        usage: answer.usage,
      } satisfies ChatCompletion;
}

/** The call as a Chat request; what Chat cannot carry is refused as an OpenAI-compatible route refuses it. */
function chatCall(call: AnswerCall): ProviderCall {
  const { request, unsupported } = encodeChatRequest(call.request, { thinkingFields: false });
  if (unsupported) throw unsupported;
  return { ...call, request };
}

async function* answerEventsOf(chunks: AsyncIterable<ChatCompletionChunk>): AsyncGenerator<AnswerEvent> {
  const decoder = new ChatChunkDecoder();
  for await (const chunk of chunks) yield* decoder.push(chunk);
}

async function* streamAnswer(call: ProviderCall, answer: ReturnType<typeof plan>): AsyncGenerator<ChatCompletionChunk> {
  const base = { id: `chatcmpl-mock-${call.requestId}`, object: 'chat.completion.chunk' as const, created: CREATED_S, model: call.route.model };
  for (const [index, choice] of answer.choices.entries()) {
    yield { ...base, choices: [{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] };
    if (choice.toolCall) {
      const { id, name, arguments: args } = choice.toolCall;
      yield { ...base, choices: [{ index, delta: { tool_calls: [{ index: 0, id, type: 'function', function: { name, arguments: '' } }] }, finish_reason: null }] };
      yield { ...base, choices: [{ index, delta: { tool_calls: [{ index: 0, function: { arguments: args } }] }, finish_reason: null }] };
    } else {
      for (const piece of pieces(choice.text)) {
        if (call.signal.aborted) return;
        const logprobs = call.request.logprobs === true ? { content: [tokenLogprob(piece, call.request.top_logprobs)], refusal: null } : null;
        yield { ...base, choices: [{ index, delta: { content: piece }, logprobs, finish_reason: null }] };
      }
    }
    yield { ...base, choices: [{ index, delta: {}, logprobs: null, finish_reason: choice.finishReason }] };
  }
  yield { ...base, choices: [], usage: answer.usage };
}

function plan(call: ProviderCall): { choices: MockChoice[]; usage: CompletionUsage } {
  const { request } = call;
  const n = request.n ?? 1;
  const limit = request.max_completion_tokens ?? request.max_tokens ?? call.maxOutputTokens;
  const choices = Array.from({ length: n }, (_, i) => answerOne(request, i, limit, call.requestId));
  const prompt = promptTokens(request);
  const completion = choices.reduce((sum, c) => sum + c.completionTokens, 0);
  return { choices, usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } };
}

function answerOne(request: ChatCompletionRequest, choice: number, limit: number, requestId: string): MockChoice {
  const conversation = request.messages.filter((m) => m.role !== 'system' && m.role !== 'developer');
  const last = conversation[conversation.length - 1] ?? request.messages[request.messages.length - 1];
  const tool = pickTool(request, last);
  if (tool) {
    return {
      text: null,
      toolCall: { id: `call_mock_${requestId.slice(-8)}_${choice}`, name: tool.name, arguments: JSON.stringify(exampleArguments(tool.parameters)) },
      finishReason: 'tool_calls',
      completionTokens: 10,
    };
  }
  const words = `This is a mock answer from itapi to: ${(last.role === 'user' ? ownWords(last) : textOf(last)).slice(0, 200)}`.split(/\s+/).filter(Boolean);
  if (choice > 0) words.push(`(choice ${choice})`);
  const cut = words.slice(0, limit);
  return { text: cut.join(' '), finishReason: cut.length < words.length ? 'length' : 'stop', completionTokens: cut.length };
}

function pickTool(request: ChatCompletionRequest, last: ChatMessage): { name: string; parameters?: Record<string, unknown> } | undefined {
  if (!request.tools?.length || request.tool_choice === 'none' || last.role === 'tool') return undefined;
  const choice = request.tool_choice;
  const said = last.role === 'user' ? ownWords(last) : '';
  const named = (name: string) => new RegExp(`(^|[^A-Za-z0-9_-])${name}($|[^A-Za-z0-9_-])`, 'i').test(said);
  const fn =
    typeof choice === 'object'
      ? request.tools.find((t) => t.function.name === choice.function.name)
      : (request.tools.find((t) => named(t.function.name)) ?? (request.tools.length === 1 || choice === 'required' ? request.tools[0] : undefined));
  return fn && { name: fn.function.name, parameters: fn.function.parameters };
}

/** Fills a JSON schema's required properties with placeholder values of the right type. */
function exampleArguments(schema: Record<string, unknown> | undefined): Record<string, unknown> {
  const props = (schema?.properties ?? {}) as Record<string, { type?: string; enum?: unknown[] }>;
  const required = Array.isArray(schema?.required) ? (schema.required as string[]) : Object.keys(props);
  const out: Record<string, unknown> = {};
  for (const name of required) {
    const prop = props[name] ?? {};
    if (prop.enum?.length) out[name] = prop.enum[0];
    else if (prop.type === 'number' || prop.type === 'integer') out[name] = 1;
    else if (prop.type === 'boolean') out[name] = true;
    else if (prop.type === 'array') out[name] = [];
    else if (prop.type === 'object') out[name] = {};
    else out[name] = 'example';
  }
  return out;
}

/** A user's own words are the last text part: clients put context (Claude Code's reminders) before them. */
function ownWords(message: Extract<ChatMessage, { role: 'user' }>): string {
  if (typeof message.content === 'string') return message.content;
  return message.content.filter((p) => p.type === 'text').at(-1)?.text ?? '';
}

function textOf(message: ChatMessage): string {
  const content = message.content;
  if (typeof content === 'string') return content;
  if (!content) return '';
  return content.map((p) => (p.type === 'text' ? p.text : p.type === 'refusal' ? p.refusal : '[image]')).join(' ');
}

/** About four characters a token, the usual rule of thumb for English. */
function promptTokens(request: ChatCompletionRequest): number {
  const chars = request.messages.reduce((sum, m) => sum + textOf(m).length + 4, 0);
  return Math.max(1, Math.ceil(chars / 4));
}

/** The mock's tokens: its words, each with the space after it (one stream chunk each). */
function pieces(text: string | null): string[] {
  return text ? text.split(/(?<= )/) : [];
}

/** A token the mock is sure of (log probability 0), its runner-up list as long as asked (at most itself). */
function tokenLogprob(token: string, topLogprobs: number | null | undefined): ChatCompletionTokenLogprob {
  const bytes = [...Buffer.from(token, 'utf8')];
  return { token, logprob: 0, bytes, top_logprobs: topLogprobs ? [{ token, logprob: 0, bytes }] : [] };
}
