import type { TokenRules } from '../catalog';
import { imageTokens } from '../money/image-tokens';
import { promptEstimate, type PromptEstimate } from '../money/tokens';
import type { ContentBlockParam } from '@anthropic-ai/sdk/resources/messages';
import type { MessagesPrompt } from './request';

/** Framing per message and per request, as the chat estimate counts them. */
const TOKENS_PER_MESSAGE = 4;
const TOKENS_PER_REQUEST = 3;

/**
 * The prompt of a Messages request as its upstream will count it, or a little more, by the
 * model's rules: system, every message's text, tool calls and results, thinking carried in the
 * history, images by the model's image rule, tools and the output schema. Block types the gateway
 * does not read (documents, server-tool results) count as their JSON, which stays above what they
 * cost. Used for the hold and for `count_tokens`.
 */
export function estimateMessagesPromptTokens(request: MessagesPrompt, rules: TokenRules): number {
  return messagesPromptEstimate(request, rules).tokens();
}

/** A Messages request's prompt estimate (`estimateMessagesPromptTokens`), its count left for when it is asked (money/tokens.ts `PromptEstimate`). */
export function messagesPromptEstimate(request: MessagesPrompt, rules: TokenRules, account?: string): PromptEstimate {
  const texts: string[] = [];
  let tokens = TOKENS_PER_REQUEST;
  const add = (content: string | ContentBlockParam[] | undefined) => {
    if (content === undefined) return;
    if (typeof content === 'string') {
      texts.push(content);
      return;
    }
    for (const block of content) tokens += blockTokens(block, rules, texts, add);
  };
  if (request.system !== undefined) add(request.system);
  for (const message of request.messages) {
    tokens += TOKENS_PER_MESSAGE;
    add(message.content);
  }
  if (request.tools?.length) texts.push(JSON.stringify(request.tools));
  if (request.output_config?.format) texts.push(JSON.stringify(request.output_config.format.schema));
  return promptEstimate(tokens, texts, rules.textMargin, account);
}

/** Image tokens of one block; its text goes to `texts`. */
function blockTokens(block: ContentBlockParam, rules: TokenRules, texts: string[], add: (content: string | ContentBlockParam[] | undefined) => void): number {
  switch (block.type) {
    case 'text':
      texts.push((block as { text: string }).text);
      return 0;
    case 'image': {
      const source = (block as Extract<ContentBlockParam, { type: 'image' }>).source;
      const url = source.type === 'base64' ? `data:${source.media_type};base64,${source.data}` : source.type === 'url' ? source.url : '';
      return imageTokens(url, undefined, rules.image);
    }
    case 'tool_use': {
      const use = block as Extract<ContentBlockParam, { type: 'tool_use' }>;
      texts.push(use.name, JSON.stringify(use.input));
      return 0;
    }
    case 'tool_result':
      add((block as Extract<ContentBlockParam, { type: 'tool_result' }>).content as ContentBlockParam[] | string | undefined);
      return 0;
    case 'thinking':
      texts.push((block as Extract<ContentBlockParam, { type: 'thinking' }>).thinking);
      return 0;
    case 'redacted_thinking':
      // Opaque, and about as long as the thinking it stands for.
      texts.push((block as Extract<ContentBlockParam, { type: 'redacted_thinking' }>).data);
      return 0;
    default:
      texts.push(JSON.stringify(block));
      return 0;
  }
}
