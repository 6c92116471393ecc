// The canonical prompt: what every wire format's request says, in one shape. Codecs decode a wire
// request into it and encode it for a provider; nothing here knows a wire's field names.

/** Anthropic's `cache_control`: the prompt up to this part may be written to the provider's cache. */
export interface CacheMark {
  /** @default '5m' */
  ttl?: '5m' | '1h';
}

export interface TextPart {
  type: 'text';
  text: string;
  cache?: CacheMark;
}

export type MediaSource =
  | { kind: 'base64'; mediaType: string; data: string }
  | { kind: 'url'; url: string }
  /** A provider's file id (Anthropic's Files API, OpenAI's `file_id`): only that provider can read it. */
  | { kind: 'file'; fileId: string };

export interface ImagePart {
  type: 'image';
  source: MediaSource;
  /** OpenAI's `detail`. */
  detail?: 'auto' | 'low' | 'high';
  cache?: CacheMark;
}

export interface DocumentPart {
  type: 'document';
  source: MediaSource | { kind: 'text'; text: string };
  title?: string;
  cache?: CacheMark;
}

export interface ToolCallPart {
  type: 'tool_call';
  id: string;
  name: string;
  /** The arguments as JSON text, as the model wrote them (Anthropic's `input`, serialised). */
  arguments: string;
}

export interface ToolResultPart {
  type: 'tool_result';
  toolCallId: string;
  content: Array<TextPart | ImagePart | DocumentPart>;
  isError?: boolean;
  cache?: CacheMark;
}

/**
 * The model's thinking, kept whole so it can go back to the provider that wrote it: Anthropic's
 * `thinking` block (text + signature) or `redacted_thinking` block (data), or OpenAI's reasoning
 * item (summary + encrypted content). A provider accepts only its own signatures.
 */
export interface ReasoningPart {
  type: 'reasoning';
  /** The thinking (or its summary) as text; '' for a redacted block. */
  text: string;
  /** Anthropic's `signature` ('' when the provider gave none, e.g. an OpenAI-compatible `reasoning_content`). */
  signature?: string;
  /** Anthropic's `redacted_thinking.data`. */
  redactedData?: string;
  /** OpenAI's `encrypted_content` of a reasoning item (opaque; only OpenAI reads it). */
  encryptedContent?: string;
  /** OpenAI's reasoning item id (`rs_…`). */
  id?: string;
}

/**
 * A block only its own wire knows (Anthropic's `server_tool_use`, `web_search_tool_result`,
 * `search_result`, `container_upload`): kept as sent for a provider of that wire; other wires drop
 * or refuse it.
 */
export interface OpaquePart {
  type: 'opaque';
  wire: WireName;
  kind: string;
  value: Record<string, unknown>;
}

export type UserPart = TextPart | ImagePart | DocumentPart | ToolResultPart | OpaquePart;
export type AssistantPart = TextPart | ReasoningPart | ToolCallPart | OpaquePart;

export type Turn =
  | { role: 'user'; parts: UserPart[] }
  | { role: 'assistant'; parts: AssistantPart[] }
  /** An instruction mid-conversation (a Chat system message after the first turn, Claude Code's `role: "system"`). */
  | { role: 'system'; parts: TextPart[] };

export interface Prompt {
  /** The instructions before the first turn. */
  system: TextPart[];
  turns: Turn[];
}

export interface FunctionTool {
  kind: 'function';
  name: string;
  description?: string;
  /** JSON Schema of the arguments. */
  parameters: Record<string, unknown>;
  strict?: boolean;
  cache?: CacheMark;
}

/**
 * A tool the provider defines or runs itself (Anthropic's `bash_20250124`, `web_search_20250305`;
 * Responses' `web_search`): kept as the client sent it, for a provider speaking the same wire.
 */
export interface ProviderTool {
  kind: 'provider';
  /** The wire it came from; other wires drop it (and name it). */
  wire: WireName;
  type: string;
  name?: string;
  fields: Record<string, unknown>;
}

export type Tool = FunctionTool | ProviderTool;

export type ToolChoice = { type: 'auto' } | { type: 'none' } | { type: 'required' } | { type: 'tool'; name: string };

export type WireName = 'openai-chat' | 'openai-responses' | 'anthropic-messages' | 'openai-embeddings';

/** All the text of some parts, joined. */
export function textOf(parts: ReadonlyArray<{ type: string }>, separator = ''): string {
  return parts
    .filter((p): p is TextPart => p.type === 'text')
    .map((p) => p.text)
    .join(separator);
}
