// ConverseStream and Converse transcripts in the documented wire format: the AWS event-stream
// binary encoding (application/vnd.amazon.eventstream), one frame per event, each with the
// :event-type, :content-type and :message-type headers and the event's JSON as payload; Bedrock
// pads payloads with a "p" field, which clients ignore.

import { EventStreamCodec } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';
import type { Answer } from '../../../lambda/core/answer';

const codec = new EventStreamCodec(toUtf8, fromUtf8);

export type BedrockEvent = [eventType: string, payload: Record<string, unknown>];

/** One event frame, as Bedrock writes it. */
export function eventFrame([eventType, payload]: BedrockEvent): Uint8Array {
  return codec.encode({
    headers: {
      ':event-type': { type: 'string', value: eventType },
      ':content-type': { type: 'string', value: 'application/json' },
      ':message-type': { type: 'string', value: 'event' },
    },
    body: fromUtf8(JSON.stringify({ ...payload, p: 'abcdefghijklmnopqrstuvwxyzABCDEFGH' })),
  });
}

/** A modeled exception inside the stream (e.g. throttlingException), as Bedrock writes it. */
export function exceptionFrame(exceptionType: string, message: string): Uint8Array {
  return codec.encode({
    headers: {
      ':exception-type': { type: 'string', value: exceptionType },
      ':content-type': { type: 'string', value: 'application/json' },
      ':message-type': { type: 'string', value: 'exception' },
    },
    body: fromUtf8(JSON.stringify({ message })),
  });
}

const metadata = (inputTokens: number, outputTokens: number, cache: Record<string, number> = {}): BedrockEvent => [
  'metadata',
  {
    usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens + (cache.cacheReadInputTokens ?? 0) + (cache.cacheWriteInputTokens ?? 0), ...cache },
    metrics: { latencyMs: 812 },
  },
];

/** Plain text: Bedrock sends no contentBlockStart for text blocks. */
export const TEXT_STREAM: BedrockEvent[] = [
  ['messageStart', { role: 'assistant' }],
  ['contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Hello' } }],
  ['contentBlockDelta', { contentBlockIndex: 0, delta: { text: '!' } }],
  ['contentBlockStop', { contentBlockIndex: 0 }],
  ['messageStop', { stopReason: 'end_turn' }],
  metadata(25, 15),
];

/** Text, then two tool uses (content blocks 1 and 2), as in the docs' tool-use streaming example. */
export const TOOL_STREAM: BedrockEvent[] = [
  ['messageStart', { role: 'assistant' }],
  ['contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Let me look up both.' } }],
  ['contentBlockStop', { contentBlockIndex: 0 }],
  ['contentBlockStart', { contentBlockIndex: 1, start: { toolUse: { toolUseId: 'tooluse_kZJMlvQmRJ6eAyJE5GIl7Q', name: 'top_song' } } }],
  ['contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '{"sign": ' } } }],
  ['contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '"WZPZ"}' } } }],
  ['contentBlockStop', { contentBlockIndex: 1 }],
  ['contentBlockStart', { contentBlockIndex: 2, start: { toolUse: { toolUseId: 'tooluse_Qa1B2c3D4e5F6g7H8i9J0k', name: 'top_song' } } }],
  ['contentBlockDelta', { contentBlockIndex: 2, delta: { toolUse: { input: '{"sign": "WKRP"}' } } }],
  ['contentBlockStop', { contentBlockIndex: 2 }],
  ['messageStop', { stopReason: 'tool_use' }],
  metadata(375, 65),
];

export const CACHED_STREAM: BedrockEvent[] = [
  ['messageStart', { role: 'assistant' }],
  ['contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Cached.' } }],
  ['contentBlockStop', { contentBlockIndex: 0 }],
  ['messageStop', { stopReason: 'end_turn' }],
  metadata(10, 7, { cacheReadInputTokens: 1800, cacheWriteInputTokens: 200 }),
];

export function stopStream(stopReason: string): BedrockEvent[] {
  return [
    ['messageStart', { role: 'assistant' }],
    ['contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'x' } }],
    ['contentBlockStop', { contentBlockIndex: 0 }],
    ['messageStop', { stopReason }],
    metadata(5, 2),
  ];
}

export function jsonModeStream(toolName: string): BedrockEvent[] {
  return [
    ['messageStart', { role: 'assistant' }],
    ['contentBlockStart', { contentBlockIndex: 0, start: { toolUse: { toolUseId: 'tooluse_json', name: toolName } } }],
    ['contentBlockDelta', { contentBlockIndex: 0, delta: { toolUse: { input: '{"answer": ' } } }],
    ['contentBlockDelta', { contentBlockIndex: 0, delta: { toolUse: { input: '42}' } } }],
    ['contentBlockStop', { contentBlockIndex: 0 }],
    ['messageStop', { stopReason: 'tool_use' }],
    metadata(30, 12),
  ];
}

/** Converse (non-streaming) answers. */
export const TEXT_RESPONSE = {
  output: { message: { role: 'assistant', content: [{ text: 'Hi! I am Claude on Bedrock.' }] } },
  stopReason: 'end_turn',
  usage: { inputTokens: 2095, outputTokens: 503, totalTokens: 3698, cacheReadInputTokens: 1000, cacheWriteInputTokens: 100 },
  metrics: { latencyMs: 1021 },
};

export const TOOL_RESPONSE = {
  output: {
    message: {
      role: 'assistant',
      content: [{ text: 'Checking the charts.' }, { toolUse: { toolUseId: 'tooluse_hbTgdi0CSLq_hM4P8csZJA', name: 'top_song', input: { sign: 'WZPZ' } } }],
    },
  },
  stopReason: 'tool_use',
  usage: { inputTokens: 375, outputTokens: 65, totalTokens: 440 },
  metrics: { latencyMs: 1400 },
};

/** Claude's thinking, signed, then the text it led to (content blocks 0 and 1), as ConverseStream writes them. */
export const THINKING_STREAM: BedrockEvent[] = [
  ['messageStart', { role: 'assistant' }],
  ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: 'The user greets; ' } } }],
  ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: 'greet back.' } } }],
  ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { signature: 'EqQBCkgIARABGAIiQL2signature' } } }],
  ['contentBlockStop', { contentBlockIndex: 0 }],
  ['contentBlockDelta', { contentBlockIndex: 1, delta: { text: 'Hello!' } }],
  ['contentBlockStop', { contentBlockIndex: 1 }],
  ['messageStop', { stopReason: 'end_turn' }],
  metadata(40, 30),
];

/**
 * The ConverseStream events Bedrock would send for an answer: each part a content block in
 * order (text and reasoning without a start event, tool uses with one; redacted thinking as its
 * bytes in base64, as the JSON protocol carries blobs), then messageStop and metadata with usage
 * (cache writes split by lifetime in cacheDetails) and the tier served.
 */
export function converseStreamOf(answer: Answer, stopReason: string): BedrockEvent[] {
  const events: BedrockEvent[] = [['messageStart', { role: 'assistant' }]];
  answer.parts.forEach((part, contentBlockIndex) => {
    const delta = (d: Record<string, unknown>): BedrockEvent => ['contentBlockDelta', { contentBlockIndex, delta: d }];
    switch (part.type) {
      case 'text':
      case 'refusal':
        events.push(delta({ text: part.text }));
        break;
      case 'reasoning':
        if (part.redactedData !== undefined) events.push(delta({ reasoningContent: { redactedContent: part.redactedData } }));
        else {
          events.push(delta({ reasoningContent: { text: part.text } }));
          if (part.signature !== undefined) events.push(delta({ reasoningContent: { signature: part.signature } }));
        }
        break;
      case 'tool_call':
        events.push(['contentBlockStart', { contentBlockIndex, start: { toolUse: { toolUseId: part.id, name: part.name } } }]);
        if (part.arguments) events.push(delta({ toolUse: { input: part.arguments } }));
        break;
    }
    events.push(['contentBlockStop', { contentBlockIndex }]);
  });
  events.push(['messageStop', { stopReason }]);
  const u = answer.usage!;
  events.push([
    'metadata',
    {
      usage: {
        inputTokens: u.inputTokens,
        outputTokens: u.outputTokens,
        totalTokens: u.inputTokens + u.cacheReadTokens + u.cacheWriteTokens + u.cacheWrite1hTokens + u.outputTokens,
        cacheReadInputTokens: u.cacheReadTokens,
        cacheWriteInputTokens: u.cacheWriteTokens + u.cacheWrite1hTokens,
        cacheDetails: [
          { ttl: '5m', inputTokens: u.cacheWriteTokens },
          { ttl: '1h', inputTokens: u.cacheWrite1hTokens },
        ],
      },
      metrics: { latencyMs: 100 },
      ...(u.serviceTier !== undefined && { serviceTier: { type: u.serviceTier } }),
    },
  ]);
  return events;
}

/** The Converse (JSON) answer Bedrock would send for an answer: the same blocks, whole. */
export function converseResponseOf(answer: Answer, stopReason: string): Record<string, unknown> {
  const content = answer.parts.map((part) => {
    switch (part.type) {
      case 'text':
      case 'refusal':
        return { text: part.text };
      case 'reasoning':
        return part.redactedData !== undefined
          ? { reasoningContent: { redactedContent: part.redactedData } }
          : { reasoningContent: { reasoningText: { text: part.text, ...(part.signature !== undefined && { signature: part.signature }) } } };
      case 'tool_call':
        return { toolUse: { toolUseId: part.id, name: part.name, input: JSON.parse(part.arguments || '{}') } };
    }
  });
  const stream = converseStreamOf(answer, stopReason);
  const [, meta] = stream[stream.length - 1];
  return { output: { message: { role: 'assistant', content } }, stopReason, ...meta };
}
