import type {
  CachePointBlock,
  ContentBlock,
  ConverseRequest,
  DocumentBlock,
  DocumentFormat,
  ImageBlock,
  ImageFormat,
  InferenceConfiguration,
  Message,
  SystemContentBlock,
  Tool,
  ToolChoice,
  ToolConfiguration,
  ToolResultContentBlock,
  ToolUseBlock,
} from '@aws-sdk/client-bedrock-runtime';
import { thinkingFor, toolInput } from '../../codecs/anthropic-messages';
import type { Call, CallSettings } from '../../core/call';
import type { AssistantPart, CacheMark, DocumentPart, ImagePart, Prompt, TextPart, UserPart } from '../../core/prompt';
import { invalidRequest } from '../../contract/errors';
import type { ChatCompletionRequest } from '../../contract/request';
import {
  claudeTemperature,
  planTools,
  rejectUnsupportedParameters,
  IMAGE_MEDIA_TYPES,
  type ImageMediaType,
  type ToolPlan,
} from '../conversation';

export interface BedrockRequestPlan {
  input: ConverseRequest;
  /** The tool carrying a JSON-mode answer, whose input becomes the message content. */
  jsonToolName: string | undefined;
}

/** A JSON value as the SDK types it. */
type DocumentType = NonNullable<ToolUseBlock['input']>;

const IMAGE_FORMATS: Record<ImageMediaType, ImageFormat> = {
  'image/jpeg': 'jpeg',
  'image/png': 'png',
  'image/gif': 'gif',
  'image/webp': 'webp',
};

const PROVIDER = 'Amazon Bedrock';
const refuse = (param: string, why: string) => invalidRequest(`'${param}' is not supported for this model (served by ${PROVIDER}): ${why}`, param, 'unsupported_parameter');

/** Converse's document formats by media type. */
const DOCUMENT_FORMATS: Record<string, DocumentFormat> = {
  'application/pdf': 'pdf',
  'text/csv': 'csv',
  'application/msword': 'doc',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.ms-excel': 'xls',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
  'text/html': 'html',
  'text/plain': 'txt',
  'text/markdown': 'md',
};

/** Service tiers Converse takes (`serviceTier.type`); any other ask (auto, Anthropic's standard_only) sends none. */
const CONVERSE_SERVICE_TIERS = new Set(['default', 'flex', 'priority', 'reserved']);

/**
 * The canonical call → Bedrock Converse / ConverseStream input. The rules of `bedrockRequest`
 * (tools, JSON mode through a forced tool, `parallel_tool_calls: false` and image URLs refused,
 * temperature clamped for Claude), plus what the canonical prompt carries: Claude's thinking goes
 * back as `reasoningContent` blocks unchanged (text and signature, or redacted bytes) in their
 * places ahead of `toolUse`; thinking nobody signed (another provider's) is left out, since Claude
 * refuses it. Thinking follows the Anthropic codec's rule (`thinkingFor`), sent through
 * `additionalModelRequestFields`; a cache mark becomes a `cachePoint` after its block; documents
 * go as Converse documents; mid-conversation system turns join the system prompt; provider-defined
 * tools of another wire are left out (the endpoint names them).
 */
export function converseRequest(call: Call, modelId: string): BedrockRequestPlan {
  const { prompt, settings } = call;
  const claude = isClaude(modelId);
  rejectChatOnlyFields(settings);
  if (settings.parallelToolCalls === false && settings.tools.length > 0) {
    throw refuse('parallel_tool_calls', 'Converse cannot disable parallel tool calls.');
  }
  const plan = planTools(chatToolFields(settings));

  const inferenceConfig: InferenceConfiguration = { maxTokens: settings.maxOutputTokens };
  const temperature = claude ? claudeTemperature(settings.temperature) : settings.temperature;
  if (temperature !== undefined) inferenceConfig.temperature = temperature;
  if (settings.topP !== undefined) inferenceConfig.topP = settings.topP;
  if (settings.stop?.length) inferenceConfig.stopSequences = settings.stop;

  const { system, messages, historyHasTools } = conversePrompt(prompt);

  const input: ConverseRequest = { modelId, messages, inferenceConfig };
  if (system.length > 0) input.system = system;
  const toolConfig = bedrockToolConfig(plan, historyHasTools, cacheMarksOf(settings));
  if (toolConfig) input.toolConfig = toolConfig;

  const fields: Record<string, unknown> = {};
  if (settings.topK !== undefined) {
    if (!claude) throw refuse('top_k', 'only Anthropic models on Bedrock take top_k.');
    fields.top_k = settings.topK;
  }
  if (claude) {
    // A forced tool (JSON mode is one) rules thinking out, as Claude refuses both together.
    const forced = plan.choice?.type === 'any' || plan.choice?.type === 'tool';
    // OpenAI's `minimal` effort is nearly no reasoning: Claude's smallest budget would be more (as on Anthropic routes).
    const r = settings.reasoning;
    const minimal = r?.mode === 'enabled' && r.effort === 'minimal' && r.budgetTokens === undefined;
    const thinking = forced || minimal ? undefined : thinkingFor({ prompt, settings: { ...settings, temperature } });
    // No thinking field is Claude's "disabled", and the one Bedrock's Claude models without thinking accept.
    if (thinking && thinking.type !== 'disabled') fields.thinking = thinking;
  }
  if (Object.keys(fields).length > 0) input.additionalModelRequestFields = fields as DocumentType;
  if (settings.serviceTier !== undefined && CONVERSE_SERVICE_TIERS.has(settings.serviceTier)) {
    input.serviceTier = { type: settings.serviceTier as NonNullable<ConverseRequest['serviceTier']>['type'] };
  }
  return { input, jsonToolName: plan.json?.name };
}

/** A prompt as Converse takes it: the system blocks, the turns as messages (images and documents decoded), whether they carry tool blocks. */
interface ConversePrompt {
  system: SystemContentBlock[];
  messages: Message[];
  historyHasTools: boolean;
}

/**
 * The prompt's Converse blocks, made once per prompt: a request on a Bedrock route asks
 * `converseRequest` up to three times with the same prompt (the refusal probe before its hold,
 * `thinkingBilling`, the call; and a second Bedrock route on fallback), and each made every block
 * again, base64 images and documents decoded each time. The blocks depend on the prompt alone (the
 * model decides only the settings around them), and nothing changes them once made: the SDK
 * serializes them as they are. A prompt Converse cannot take throws each time (nothing is kept).
 */
const CONVERTED = new WeakMap<Prompt, ConversePrompt>();

function conversePrompt(prompt: Prompt): ConversePrompt {
  const kept = CONVERTED.get(prompt);
  if (kept) return kept;
  const systemBlocks = (parts: TextPart[]) => parts.flatMap((part) => (part.text ? withCachePoint<SystemContentBlock>({ text: part.text }, part) : []));
  const system: SystemContentBlock[] = systemBlocks(prompt.system);
  const messages: Message[] = [];
  const documents = { count: 0 };
  prompt.turns.forEach((turn, i) => {
    if (turn.role === 'system') {
      // Converse has no system turn: its text joins the system prompt, as a Chat system message does today.
      system.push(...systemBlocks(turn.parts));
      return;
    }
    const content = turn.role === 'assistant'
      ? turn.parts.flatMap((part, j) => assistantBlocks(part, `messages[${i}].content[${j}]`))
      : turn.parts.flatMap((part, j) => userBlocks(part, `messages[${i}].content[${j}]`, documents));
    if (content.length === 0) return;
    const last = messages[messages.length - 1];
    // Converse wants alternating turns: adjacent turns of one role become one.
    if (last?.role === turn.role) last.content!.push(...content);
    else messages.push({ role: turn.role, content });
  });
  const historyHasTools = messages.some((m) => m.content!.some((b) => b.toolUse !== undefined || b.toolResult !== undefined));
  const converted = { system, messages, historyHasTools };
  CONVERTED.set(prompt, converted);
  return converted;
}

/** Chat Completions fields Converse cannot honour (kept as the Chat wire's extensions): a 400 naming each, as today. */
function rejectChatOnlyFields(settings: CallSettings): void {
  if (settings.extensions?.wire === 'openai-chat') rejectUnsupportedParameters(settings.extensions.fields as unknown as ChatCompletionRequest, PROVIDER);
}

/** The canonical tool settings in the Chat fields `planTools` reads, so that JSON mode and tool choice follow one rule. */
function chatToolFields(settings: CallSettings): ChatCompletionRequest {
  const choice = settings.toolChoice;
  const format = settings.responseFormat;
  return {
    model: settings.model,
    messages: [],
    tools: settings.tools.flatMap((tool) =>
      tool.kind === 'function'
        ? [{ type: 'function' as const, function: { name: tool.name, ...(tool.description !== undefined && { description: tool.description }), parameters: tool.parameters } }]
        : [],
    ),
    ...(choice && { tool_choice: choice.type === 'tool' ? { type: 'function' as const, function: { name: choice.name } } : choice.type }),
    ...(format && {
      response_format: format.type === 'json_schema'
        ? { type: 'json_schema' as const, json_schema: { name: format.name, schema: format.schema, ...(format.description !== undefined && { description: format.description }) } }
        : { type: format.type },
    }),
  } as ChatCompletionRequest;
}

/** Function tools' cache marks, by tool name: a cachePoint follows each marked tool. */
function cacheMarksOf(settings: CallSettings): Map<string, CacheMark> {
  const marks = new Map<string, CacheMark>();
  for (const tool of settings.tools) if (tool.kind === 'function' && tool.cache) marks.set(tool.name, tool.cache);
  return marks;
}

function cachePoint(mark: CacheMark): CachePointBlock {
  return { type: 'default', ...(mark.ttl === '1h' && { ttl: '1h' }) };
}

/** A block, and a cachePoint after it when the part carries a cache mark. */
function withCachePoint<B extends { cachePoint?: CachePointBlock }>(block: B, part: { cache?: CacheMark }): B[] {
  return part.cache ? [block, { cachePoint: cachePoint(part.cache) } as B] : [block];
}

function assistantBlocks(part: AssistantPart, param: string): ContentBlock[] {
  switch (part.type) {
    case 'text':
      return part.text ? withCachePoint<ContentBlock>({ text: part.text }, part) : [];
    case 'reasoning':
      if (part.redactedData !== undefined) return [{ reasoningContent: { redactedContent: Buffer.from(part.redactedData, 'base64') } }];
      return part.signature ? [{ reasoningContent: { reasoningText: { text: part.text, signature: part.signature } } }] : [];
    case 'tool_call':
      return [{ toolUse: { toolUseId: part.id, name: part.name, input: toolInput(part.arguments) as DocumentType } }];
    case 'opaque':
      // Server-tool calls and results are the provider's own turns: a translated route never made them.
      if (/^(server_tool_use|.*_tool_result)$/.test(part.kind)) return [];
      throw refuse(param, `assistant blocks of type '${part.kind}' cannot be sent to Converse.`);
  }
}

function userBlocks(part: UserPart, param: string, documents: { count: number }): ContentBlock[] {
  switch (part.type) {
    case 'text':
      // Converse refuses blank text blocks; an empty Chat message says nothing.
      return part.text ? withCachePoint<ContentBlock>({ text: part.text }, part) : [];
    case 'image':
      return withCachePoint<ContentBlock>({ image: converseImage(part, param) }, part);
    case 'document':
      return withCachePoint<ContentBlock>({ document: converseDocument(part, param, documents) }, part);
    case 'tool_result': {
      const content = part.content.map((inner, k): ToolResultContentBlock => {
        const at = `${param}.content[${k}]`;
        if (inner.type === 'text') return { text: inner.text };
        if (inner.type === 'image') return { image: converseImage(inner, at) };
        return { document: converseDocument(inner, at, documents) };
      });
      return withCachePoint<ContentBlock>({ toolResult: { toolUseId: part.toolCallId, content, ...(part.isError && { status: 'error' as const }) } }, part);
    }
    case 'opaque':
      throw refuse(param, `blocks of type '${part.kind}' cannot be sent to Converse.`);
  }
}

function converseImage(part: ImagePart, param: string): ImageBlock {
  const source = part.source;
  if (source.kind !== 'base64') {
    throw invalidRequest(`Image ${source.kind === 'url' ? 'URLs' : 'file ids'} are not supported for this model (served by ${PROVIDER}, which takes image bytes): send '${param}' as base64 data.`, param);
  }
  const mediaType = source.mediaType.toLowerCase() === 'image/jpg' ? 'image/jpeg' : source.mediaType.toLowerCase();
  if (!(IMAGE_MEDIA_TYPES as readonly string[]).includes(mediaType)) {
    throw invalidRequest(`Unsupported image type '${source.mediaType}' in '${param}': use ${IMAGE_MEDIA_TYPES.join(', ')}.`, param);
  }
  return { format: IMAGE_FORMATS[mediaType as ImageMediaType], source: { bytes: Buffer.from(source.data, 'base64') } };
}

function converseDocument(part: DocumentPart, param: string, documents: { count: number }): DocumentBlock {
  documents.count++;
  // Converse names every document (letters, digits, single spaces, hyphens, parentheses, brackets).
  const name = (part.title ?? '').replace(/[^A-Za-z0-9\s\-()[\]]/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200) || `document-${documents.count}`;
  const source = part.source;
  if (source.kind === 'text') return { name, format: 'txt', source: { text: source.text } };
  if (source.kind !== 'base64') {
    throw invalidRequest(`Document ${source.kind === 'url' ? 'URLs' : 'file ids'} are not supported for this model (served by ${PROVIDER}, which takes document bytes): send '${param}' as base64 data.`, param);
  }
  const format = DOCUMENT_FORMATS[source.mediaType.toLowerCase()];
  if (!format) throw invalidRequest(`Unsupported document type '${source.mediaType}' in '${param}': use ${Object.keys(DOCUMENT_FORMATS).join(', ')}.`, param);
  return { name, format, source: { bytes: Buffer.from(source.data, 'base64') } };
}

/** Anthropic's models on Bedrock: `anthropic.claude-…` and system inference profiles (`us.anthropic.claude-…`); an application inference profile's ARN does not say, and is treated as another model. */
function isClaude(modelId: string): boolean {
  return modelId.includes('anthropic.');
}

function bedrockToolConfig(plan: ToolPlan, historyHasTools: boolean, cacheMarks: ReadonlyMap<string, CacheMark> = new Map()): ToolConfiguration | undefined {
  if (plan.tools.length === 0) return undefined;
  if (plan.choice?.type === 'none') {
    // Converse has no "none" choice, and insists on toolConfig once the history holds tool calls.
    if (historyHasTools) {
      throw invalidRequest(
        "tool_choice 'none' is not supported for this model (served by Amazon Bedrock) once the conversation contains tool calls; use 'auto'.",
        'tool_choice',
        'unsupported_parameter',
      );
    }
    return undefined;
  }
  const tools = plan.tools.flatMap((t): Tool[] => {
    const tool: Tool = {
      toolSpec: {
        name: t.name,
        ...(t.description !== undefined ? { description: t.description } : {}),
        inputSchema: { json: t.schema as DocumentType },
      },
    };
    const mark = cacheMarks.get(t.name);
    return mark ? [tool, { cachePoint: cachePoint(mark) }] : [tool];
  });
  return { tools, ...(plan.choice ? { toolChoice: bedrockToolChoice(plan.choice) } : {}) };
}

function bedrockToolChoice(choice: Exclude<ToolPlan['choice'], undefined | { type: 'none' }>): ToolChoice {
  switch (choice.type) {
    case 'auto':
      return { auto: {} };
    case 'any':
      return { any: {} };
    case 'tool':
      return { tool: { name: choice.name } };
  }
}

