import { invalidRequest } from '../contract/errors';
import type { ContentPart, FunctionCallOutputItem, InputItem, ResponseInputMessageItem, ResponseOutputMessage, ResponseReasoningItem, StoredItem } from '../contract/responses';
import type { ResponseIds } from './response-ids';

/**
 * The client's input items in the shape they are stored and listed in (`ItemResource`: every item
 * with an id), each `item_reference` replaced by the stored item it names (`references`, by item id,
 * as the endpoint read them). Reasoning items are kept (the provider that thought them gets them
 * back through `previous_response_id`); items of hosted tools no route runs are not stored (the
 * Responses codec names them in `ignored`).
 */
export function storedItemsOf(input: ReadonlyArray<InputItem>, references: ReadonlyMap<string, StoredItem>, ids: ResponseIds): StoredItem[] {
  const items: StoredItem[] = [];
  input.forEach((item, i) => {
    const param = `input[${i}]`;
    switch (item.type) {
      case 'item_reference': {
        const found = references.get(item.id);
        if (found) items.push(found);
        return;
      }
      case 'message':
        items.push(messageItem(item, ids.input('msg', i), param));
        return;
      case 'function_call':
        items.push({ id: item.id ?? ids.input('fc', i), type: 'function_call', call_id: item.call_id, name: item.name, arguments: item.arguments, status: 'completed' });
        return;
      case 'function_call_output':
        items.push(functionCallOutput(item, ids.input('fco', i)));
        return;
      case 'reasoning':
        items.push(reasoningItem(item as Partial<ResponseReasoningItem>, ids.input('rs', i)));
        return;
      case 'unsupported':
        return;
    }
  });
  return items;
}

/** A reasoning item as sent (Codex sends `content: null`): summary, content and `encrypted_content` kept as they came. */
function reasoningItem(item: Partial<ResponseReasoningItem>, fallbackId: string): ResponseReasoningItem {
  return {
    id: item.id ?? fallbackId,
    type: 'reasoning',
    summary: Array.isArray(item.summary) ? item.summary : [],
    ...(Array.isArray(item.content) && { content: item.content }),
    ...(typeof item.encrypted_content === 'string' && { encrypted_content: item.encrypted_content }),
  };
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
  return { id, type: 'message', role: item.role, status: 'completed', content: parts.map(inputContent) };
}

type InputContent = ResponseInputMessageItem['content'][number];

/** Content as stored: text as `input_text`, images and files as sent (the codec has checked them). */
function inputContent(part: ContentPart): InputContent {
  switch (part.type) {
    case 'input_text':
    case 'output_text':
      return { type: 'input_text', text: part.text };
    case 'refusal':
      return { type: 'input_text', text: part.refusal };
    case 'input_image':
      return { type: 'input_image', image_url: part.image_url ?? null, ...(part.file_id && { file_id: part.file_id }), detail: part.detail ?? 'auto' } as InputContent;
    case 'input_file':
      return part as InputContent;
  }
}

function functionCallOutput(item: FunctionCallOutputItem, fallbackId: string): StoredItem {
  const output = typeof item.output === 'string' ? item.output : item.output.map(inputContent);
  return { id: item.id ?? fallbackId, type: 'function_call_output', call_id: item.call_id, output, status: 'completed' } as StoredItem;
}
