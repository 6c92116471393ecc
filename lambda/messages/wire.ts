// Anthropic's Messages API as clients speak it to the gateway (anthropic-version 2023-06-01, the
// beta fields Claude Code sends included). Only what the gateway reads or writes is typed; every
// other field of a request is kept as sent, for the Anthropic passthrough.

export type ImageMediaType = 'image/jpeg' | 'image/png' | 'image/gif' | 'image/webp';

export interface TextBlockParam {
  type: 'text';
  text: string;
}

export interface ImageBlockParam {
  type: 'image';
  source:
    | { type: 'base64'; media_type: ImageMediaType; data: string }
    | { type: 'url'; url: string }
    | { type: 'file'; file_id: string };
}

export interface ToolUseBlockParam {
  type: 'tool_use';
  id: string;
  name: string;
  input: Record<string, unknown>;
}

export interface ToolResultBlockParam {
  type: 'tool_result';
  tool_use_id: string;
  content?: string | ContentBlockParam[];
  is_error?: boolean;
}

export interface ThinkingBlockParam {
  type: 'thinking';
  thinking: string;
  signature: string;
}

export interface RedactedThinkingBlockParam {
  type: 'redacted_thinking';
  data: string;
}

/** `document`, `search_result`, server-tool blocks and whatever Anthropic adds next. */
export interface OtherBlockParam {
  type: string;
  [field: string]: unknown;
}

export type ContentBlockParam =
  | TextBlockParam
  | ImageBlockParam
  | ToolUseBlockParam
  | ToolResultBlockParam
  | ThinkingBlockParam
  | RedactedThinkingBlockParam
  | OtherBlockParam;

export interface MessageParam {
  /** `system` mid-conversation is Claude Code's (beta `mid-conversation-system-2026-04-07`). */
  role: 'user' | 'assistant' | 'system';
  content: string | ContentBlockParam[];
}

/** A custom tool has no `type` (or `custom`); Anthropic-defined and server tools name a versioned type. */
export interface ToolParam {
  name: string;
  type?: string;
  description?: string;
  input_schema?: Record<string, unknown>;
  strict?: boolean;
  [field: string]: unknown;
}

export type ToolChoiceParam =
  | { type: 'auto'; disable_parallel_tool_use?: boolean }
  | { type: 'any'; disable_parallel_tool_use?: boolean }
  | { type: 'tool'; name: string; disable_parallel_tool_use?: boolean }
  | { type: 'none' };

/** The fields `POST /v1/messages/count_tokens` and `POST /v1/messages` share. */
export interface MessagesPrompt {
  model: string;
  messages: MessageParam[];
  system?: string | TextBlockParam[];
  tools?: ToolParam[];
  tool_choice?: ToolChoiceParam;
  thinking?: { type: string; budget_tokens?: number; [field: string]: unknown };
  output_config?: { effort?: string; format?: { type: 'json_schema'; schema: Record<string, unknown> } | null; [field: string]: unknown };
  [field: string]: unknown;
}

export interface MessagesRequest extends MessagesPrompt {
  max_tokens: number;
  stream?: boolean;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  stop_sequences?: string[];
  metadata?: { user_id?: string | null };
}

export type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'pause_turn' | 'refusal';

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number | null;
  cache_read_input_tokens: number | null;
  /** Cache writes by lifetime, when the route reported any. */
  cache_creation?: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
  /** Server-tool calls, when the route reported any (`web_search_requests`). */
  server_tool_use?: Record<string, number>;
  service_tier?: string;
}

export type ContentBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> };

export interface Message {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: ContentBlock[];
  stop_reason: StopReason | null;
  stop_sequence: string | null;
  usage: Usage;
}

/** The stream events as Anthropic frames them (`event: <type>` then `data: <json>`). */
export type MessageStreamEvent =
  | { type: 'message_start'; message: Message }
  | { type: 'content_block_start'; index: number; content_block: ContentBlock }
  | { type: 'content_block_delta'; index: number; delta: { type: 'text_delta'; text: string } | { type: 'input_json_delta'; partial_json: string } }
  | { type: 'content_block_stop'; index: number }
  | { type: 'message_delta'; delta: { stop_reason: StopReason | null; stop_sequence: string | null }; usage: Partial<Usage> & { output_tokens: number } }
  | { type: 'message_stop' }
  | { type: 'ping' };

/** Anthropic's error types, one per status it answers with. */
export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'billing_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'timeout_error'
  | 'overloaded_error';

export interface AnthropicErrorBody {
  type: 'error';
  error: { type: AnthropicErrorType; message: string };
  request_id: string | null;
}

/** `GET /v1/models` as Anthropic serves it (model discovery in Claude Code, `client.models.list()`). */
export interface ModelInfo {
  type: 'model';
  id: string;
  display_name: string;
  /** RFC 3339. */
  created_at: string;
}

export interface ModelInfoPage {
  data: ModelInfo[];
  has_more: boolean;
  first_id: string | null;
  last_id: string | null;
}
