import type {
  ContentBlock,
  ConverseRequest,
  ImageFormat,
  InferenceConfiguration,
  Message,
  SystemContentBlock,
  Tool,
  ToolChoice,
  ToolConfiguration,
  ToolUseBlock,
} from '@aws-sdk/client-bedrock-runtime';
import { invalidRequest } from '../../contract/errors';
import type { ChatCompletionRequest } from '../../contract/request';
import {
  claudeTemperature,
  outputTokenLimit,
  planTools,
  rejectUnsupportedParameters,
  stopSequences,
  thinkingBudget,
  toConversation,
  type ImageMediaType,
  type ToolPlan,
  type TurnPart,
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

/**
 * OpenAI Chat Completions request → Bedrock Converse / ConverseStream input.
 *
 * Same rules as the Anthropic map, in Converse's shapes, except: images must be data URLs
 * (Converse takes bytes, not URLs), `parallel_tool_calls: false` and `tool_choice: "none"` with
 * tool calls in the history cannot be expressed (400), `user` is not forwarded, and temperature is
 * clamped to 0–1 only for Anthropic models (other Bedrock models document other ranges).
 */
export function bedrockRequest(request: ChatCompletionRequest, modelId: string, maxOutputTokens: number): BedrockRequestPlan {
  rejectUnsupportedParameters(request, 'Amazon Bedrock');
  if (request.parallel_tool_calls === false) {
    throw invalidRequest(
      "'parallel_tool_calls' is not supported for this model (served by Amazon Bedrock): Converse cannot disable parallel tool calls.",
      'parallel_tool_calls',
      'unsupported_parameter',
    );
  }
  const conversation = toConversation(request.messages);
  const plan = planTools(request);

  const inferenceConfig: InferenceConfiguration = { maxTokens: outputTokenLimit(request, maxOutputTokens) };
  const temperature = isClaude(modelId) ? claudeTemperature(request.temperature) : request.temperature ?? undefined;
  if (temperature !== undefined) inferenceConfig.temperature = temperature;
  if (request.top_p != null) inferenceConfig.topP = request.top_p;
  const stop = stopSequences(request);
  if (stop) inferenceConfig.stopSequences = stop;

  const messages: Message[] = conversation.turns.map((turn) => ({ role: turn.role, content: turn.parts.map(bedrockBlock) }));
  const input: ConverseRequest = { modelId, messages, inferenceConfig };
  if (conversation.system.length > 0) input.system = conversation.system.map((text): SystemContentBlock => ({ text }));
  const toolConfig = bedrockToolConfig(plan, conversation.turns.some((t) => t.parts.some((p) => p.type === 'tool_call' || p.type === 'tool_result')));
  if (toolConfig) input.toolConfig = toolConfig;
  // Claude on Bedrock thinks as on Anthropic's API, asked through the model's own request fields.
  const budget = isClaude(modelId)
    ? thinkingBudget(request, conversation, plan, { maxTokens: inferenceConfig.maxTokens!, temperature: inferenceConfig.temperature, topP: inferenceConfig.topP })
    : undefined;
  if (budget !== undefined) input.additionalModelRequestFields = { thinking: { type: 'enabled', budget_tokens: budget } };
  return { input, jsonToolName: plan.json?.name };
}

/** Anthropic's models on Bedrock: `anthropic.claude-…` and system inference profiles (`us.anthropic.claude-…`); an application inference profile's ARN does not say, and is treated as another model. */
function isClaude(modelId: string): boolean {
  return modelId.includes('anthropic.');
}

function bedrockToolConfig(plan: ToolPlan, historyHasTools: boolean): ToolConfiguration | undefined {
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
  const tools = plan.tools.map(
    (t): Tool => ({
      toolSpec: {
        name: t.name,
        ...(t.description !== undefined ? { description: t.description } : {}),
        inputSchema: { json: t.schema as DocumentType },
      },
    }),
  );
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

function bedrockBlock(part: TurnPart): ContentBlock {
  switch (part.type) {
    case 'text':
      return { text: part.text };
    case 'image':
      if (part.source.kind === 'url') {
        throw invalidRequest(
          `Image URLs are not supported for this model (served by Amazon Bedrock, which takes image bytes): send '${part.param}' as a base64 data URL.`,
          part.param,
        );
      }
      return { image: { format: IMAGE_FORMATS[part.source.mediaType], source: { bytes: Buffer.from(part.source.data, 'base64') } } };
    case 'tool_call':
      return { toolUse: { toolUseId: part.id, name: part.name, input: part.input as DocumentType } };
    case 'tool_result':
      return { toolResult: { toolUseId: part.toolCallId, content: part.text.map((text) => ({ text })) } };
  }
}
