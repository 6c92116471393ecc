import { headerWord } from '../chat/pipeline';
import { invalidRequest } from '../contract/errors';
import type { ChatMessage } from '../contract/request';
import type {
  ContentPart,
  FunctionCallOutputItem,
  InputItem,
  ResponseFunctionToolCallOutputItem,
  ResponseInputMessageItem,
  ResponseOutputMessage,
  StoredItem,
} from '../contract/responses';
import type { ResponseIds } from './response-ids';

/** The client's input once `item_reference`s are replaced by the items they name. */
export type ResolvedInputItem = Exclude<InputItem, { type: 'item_reference' }> | { type: 'resolved'; item: StoredItem };

/**
 * The client's input items in the shape they are stored and listed in (`ItemResource`: every
 * item with an id and a status), or dropped: reasoning items (itapi's routes produce none, so
 * none can go back to the route that made it) and items of hosted tools no route runs. What
 * was dropped is named in `ignored`.
 */
export function storedItemsOf(input: ResolvedInputItem[], ids: ResponseIds): { items: StoredItem[]; ignored: string[] } {
  const items: StoredItem[] = [];
  const ignored = new Set<string>();
  input.forEach((item, i) => {
    const param = `input[${i}]`;
    switch (item.type) {
      case 'resolved':
        items.push(item.item);
        return;
      case 'message':
        items.push(messageItem(item, ids.input('msg', i), param));
        return;
      case 'function_call':
        items.push({
          id: item.id ?? ids.input('fc', i),
          type: 'function_call',
          call_id: item.call_id,
          name: item.name,
          arguments: item.arguments,
          status: 'completed',
        });
        return;
      case 'function_call_output':
        items.push(functionCallOutput(item, ids.input('fco', i), param));
        return;
      case 'reasoning':
        ignored.add('input:reasoning');
        return;
      case 'unsupported':
        ignored.add(headerWord(`input:${item.itemType}`));
    }
  });
  return { items, ignored: [...ignored] };
}

function messageItem(item: Extract<InputItem, { type: 'message' }>, fallbackId: string, param: string): ResponseInputMessageItem | ResponseOutputMessage {
  const id = item.id ?? fallbackId;
  const parts: ContentPart[] = typeof item.content === 'string' ? [{ type: 'input_text', text: item.content }] : item.content;
  if (item.role === 'assistant') {
    return {
      id,
      type: 'message',
      role: 'assistant',
      status: 'completed',
      content: parts.map((part, j) => {
        if (part.type === 'refusal') return { type: 'refusal', refusal: part.refusal };
        if (part.type === 'input_text' || part.type === 'output_text') return { type: 'output_text', text: part.text, annotations: [], logprobs: [] };
        throw invalidRequest(`An assistant message can only hold text: '${param}.content[${j}]' is '${part.type}'.`, `${param}.content[${j}].type`);
      }),
    };
  }
  return {
    id,
    type: 'message',
    role: item.role,
    status: 'completed',
    content: parts.map((part, j) => inputContent(part, `${param}.content[${j}]`, item.role === 'user')),
  };
}

type InputContent = ResponseInputMessageItem['content'][number];

function inputContent(part: ContentPart, param: string, imagesAllowed: boolean): InputContent {
  switch (part.type) {
    case 'input_text':
    case 'output_text':
      return { type: 'input_text', text: part.text };
    case 'refusal':
      return { type: 'input_text', text: part.refusal };
    case 'input_image':
      if (!imagesAllowed) throw invalidRequest(`Images are only allowed in user messages and tool outputs ('${param}').`, param);
      if (!part.image_url) {
        throw invalidRequest(`'${param}' needs an 'image_url' (an http(s) URL or a data URL): uploaded files ('file_id') are not supported by this gateway.`, `${param}.image_url`, 'unsupported_parameter');
      }
      return { type: 'input_image', image_url: part.image_url, detail: part.detail ?? 'auto' };
    case 'input_file':
      throw invalidRequest(`File inputs ('input_file' in '${param}') are not supported by this gateway: send the text, or images as 'input_image'.`, `${param}.type`, 'unsupported_parameter');
  }
}

function functionCallOutput(item: FunctionCallOutputItem, fallbackId: string, param: string): ResponseFunctionToolCallOutputItem {
  const output =
    typeof item.output === 'string'
      ? item.output
      : item.output.map((part, j) => {
          const content = inputContent(part, `${param}.output[${j}]`, true);
          if (content.type === 'input_file') throw invalidRequest(`File inputs are not supported ('${param}.output[${j}]').`, `${param}.output[${j}]`);
          return content;
        });
  return { id: item.id ?? fallbackId, type: 'function_call_output', call_id: item.call_id, output, status: 'completed' };
}

type AssistantMessage = Extract<ChatMessage, { role: 'assistant' }>;
type UserParts = Exclude<Extract<ChatMessage, { role: 'user' }>['content'], string>;

/**
 * Stored items → Chat Completions messages: system and developer messages become system
 * messages (OpenAI treats system as developer for its reasoning models; other upstreams know
 * only system), an assistant message and the function calls after it become one assistant
 * message with `tool_calls` (ids = the calls' `call_id`, never rewritten), each function output
 * a `tool` message, and images in tool outputs a user message after the run of tool messages.
 */
export function chatMessagesOf(items: StoredItem[]): ChatMessage[] {
  const messages: ChatMessage[] = [];
  let assistant: AssistantMessage | undefined;
  let toolImages: UserParts = [];
  const flushAssistant = () => {
    if (assistant && (assistant.content?.length || assistant.tool_calls?.length)) messages.push(assistant);
    assistant = undefined;
  };
  const flushToolImages = () => {
    if (toolImages.length) messages.push({ role: 'user', content: toolImages });
    toolImages = [];
  };

  for (const item of items) {
    if (item.type !== 'function_call_output') flushToolImages();
    switch (item.type) {
      case 'message': {
        if (item.role === 'assistant') {
          if (assistant?.tool_calls?.length) flushAssistant();
          assistant ??= { role: 'assistant', content: [] };
          const parts = assistant.content as Array<{ type: 'text'; text: string } | { type: 'refusal'; refusal: string }>;
          for (const part of item.content) {
            if (part.type === 'output_text') {
              if (part.text) parts.push({ type: 'text', text: part.text });
            } else parts.push({ type: 'refusal', refusal: part.refusal });
          }
          continue;
        }
        flushAssistant();
        if (item.role === 'user') {
          const content: UserParts = [];
          for (const part of item.content) {
            if (part.type === 'input_text') content.push({ type: 'text', text: part.text });
            else if (part.type === 'input_image' && part.image_url) content.push({ type: 'image_url', image_url: { url: part.image_url, detail: chatImageDetail(part.detail) } });
          }
          if (content.length === 0) continue;
          messages.push({ role: 'user', content: content.length === 1 && content[0].type === 'text' ? content[0].text : content });
          continue;
        }
        const texts = item.content.flatMap((part) => (part.type === 'input_text' && part.text ? [{ type: 'text' as const, text: part.text }] : []));
        if (texts.length) messages.push({ role: 'system', content: texts.length === 1 ? texts[0].text : texts });
        continue;
      }
      case 'function_call':
        assistant ??= { role: 'assistant', content: [] };
        (assistant.tool_calls ??= []).push({ id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } });
        continue;
      case 'function_call_output': {
        flushAssistant();
        const texts: string[] = [];
        if (typeof item.output === 'string') texts.push(item.output);
        else {
          for (const part of item.output) {
            if (part.type === 'input_text') texts.push(part.text);
            else if (part.type === 'input_image' && part.image_url) toolImages.push({ type: 'image_url', image_url: { url: part.image_url, detail: chatImageDetail(part.detail) } });
          }
        }
        messages.push({ role: 'tool', tool_call_id: item.call_id, content: texts.join('\n') });
        continue;
      }
    }
  }
  flushAssistant();
  flushToolImages();
  // An assistant message that is only tool calls has no content, as Chat Completions sends it.
  for (const message of messages) {
    if (message.role === 'assistant' && Array.isArray(message.content)) {
      const parts = message.content;
      if (parts.length === 0) message.content = null;
      else if (parts.every((p) => p.type === 'text')) message.content = parts.map((p) => (p as { text: string }).text).join('');
    }
  }
  return messages;
}

/** Chat Completions knows no `original` detail; it is the highest there is. */
function chatImageDetail(detail: 'low' | 'high' | 'auto' | 'original' | undefined): 'low' | 'high' | 'auto' {
  return detail === 'original' ? 'high' : (detail ?? 'auto');
}
