// Upstream transcripts in the Messages API's documented wire format (anthropic-version 2023-06-01,
// "Streaming Messages"): `event: <type>` + `data: <json>` SSE frames, in the order Anthropic sends them.

export type SseFrame = [event: string, data: Record<string, unknown>];

/** Encodes frames as Anthropic writes them: one `event:` and one `data:` line, then a blank line. */
export function sse(frames: SseFrame[]): string[] {
  return frames.map(([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

const messageStart = (usage: Record<string, number>, id = 'msg_014p7gG3wDgGV9EUtLvnow3U'): SseFrame => [
  'message_start',
  {
    type: 'message_start',
    message: {
      id,
      type: 'message',
      role: 'assistant',
      model: 'claude-3-5-sonnet-20241022',
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage,
    },
  },
];

/** Plain text, with a ping, as in the docs' basic streaming example. */
export const TEXT_STREAM: SseFrame[] = [
  messageStart({ input_tokens: 25, output_tokens: 1 }),
  ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
  ['ping', { type: 'ping' }],
  ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } }],
  ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: '!' } }],
  ['content_block_stop', { type: 'content_block_stop', index: 0 }],
  ['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 15 } }],
  ['message_stop', { type: 'message_stop' }],
];

/** Text, then two tool calls (content blocks 1 and 2), as in the docs' "streaming request with tool use". */
export const TOOL_STREAM: SseFrame[] = [
  messageStart({ input_tokens: 472, output_tokens: 2, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }),
  ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
  ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: "Okay, let's check the weather" } }],
  ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' for both cities:' } }],
  ['content_block_stop', { type: 'content_block_stop', index: 0 }],
  [
    'content_block_start',
    { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather', input: {} } },
  ],
  ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } }],
  ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"location":' } }],
  ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: ' "San Francisco, CA"}' } }],
  ['content_block_stop', { type: 'content_block_stop', index: 1 }],
  [
    'content_block_start',
    { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'toolu_02Ab9QbN8m6yUq2sKUMPvxzD', name: 'get_time', input: {} } },
  ],
  ['content_block_delta', { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{"timezone": "America/New_York"}' } }],
  ['content_block_stop', { type: 'content_block_stop', index: 2 }],
  ['message_delta', { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 89 } }],
  ['message_stop', { type: 'message_stop' }],
];

/** A prompt-cache hit: cache reads and writes in message_start, cumulative output in message_delta. */
export const CACHED_STREAM: SseFrame[] = [
  messageStart({ input_tokens: 10, output_tokens: 1, cache_creation_input_tokens: 200, cache_read_input_tokens: 1800 }),
  ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
  ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Cached.' } }],
  ['content_block_stop', { type: 'content_block_stop', index: 0 }],
  ['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 7 } }],
  ['message_stop', { type: 'message_stop' }],
];

/** A stream that starts, then fails with the documented mid-stream error event. */
export const OVERLOADED_MID_STREAM: SseFrame[] = [
  messageStart({ input_tokens: 25, output_tokens: 1 }),
  ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
  ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hel' } }],
  ['error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }],
];

export const OVERLOADED_FIRST: SseFrame[] = [['error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }]];

/** One text block ending with the given stop_reason. */
export function stopStream(stopReason: string): SseFrame[] {
  return [
    messageStart({ input_tokens: 5, output_tokens: 1 }),
    ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'x' } }],
    ['content_block_stop', { type: 'content_block_stop', index: 0 }],
    ['message_delta', { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: 2 } }],
    ['message_stop', { type: 'message_stop' }],
  ];
}

/** JSON mode: the forced tool's input streams as the answer. */
export function jsonModeStream(toolName: string): SseFrame[] {
  return [
    messageStart({ input_tokens: 30, output_tokens: 1 }),
    ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_json', name: toolName, input: {} } }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"answer": ' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '42}' } }],
    ['content_block_stop', { type: 'content_block_stop', index: 0 }],
    ['message_delta', { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 12 } }],
    ['message_stop', { type: 'message_stop' }],
  ];
}

/** Non-streaming answers, as in the docs' Messages examples. */
export const TEXT_MESSAGE = {
  id: 'msg_013Zva2CMHLNnXjNJJKqJ2EF',
  type: 'message',
  role: 'assistant',
  model: 'claude-3-5-sonnet-20241022',
  content: [{ type: 'text', text: 'Hi! My name is Claude.' }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 2095, output_tokens: 503, cache_creation_input_tokens: 100, cache_read_input_tokens: 1000 },
};

export const TOOL_MESSAGE = {
  id: 'msg_01Aq9w938a90dw8q',
  type: 'message',
  role: 'assistant',
  model: 'claude-3-5-sonnet-20241022',
  content: [
    { type: 'text', text: "I'll check the current weather in San Francisco for you." },
    { type: 'tool_use', id: 'toolu_01A09q90qw90lq917835lq9', name: 'get_weather', input: { location: 'San Francisco, CA', unit: 'celsius' } },
  ],
  stop_reason: 'tool_use',
  stop_sequence: null,
  usage: { input_tokens: 384, output_tokens: 86 },
};

export const ERROR_BODIES = {
  invalid_request_error: { type: 'error', error: { type: 'invalid_request_error', message: 'messages: roles must alternate between "user" and "assistant"' } },
  authentication_error: { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } },
  permission_error: { type: 'error', error: { type: 'permission_error', message: 'Your API key does not have permission to use the specified resource.' } },
  not_found_error: { type: 'error', error: { type: 'not_found_error', message: 'model: claude-9' } },
  rate_limit_error: { type: 'error', error: { type: 'rate_limit_error', message: 'Number of request tokens has exceeded your per-minute rate limit' } },
  api_error: { type: 'error', error: { type: 'api_error', message: 'Internal server error' } },
  overloaded_error: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } },
};

/** Blocks of an Anthropic answer that `streamOfMessage` can stream. */
type StreamableBlock =
  | { type: 'thinking'; thinking: string; signature: string }
  | { type: 'redacted_thinking'; data: string }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> }
  | { type: 'text'; text: string };

/**
 * The stream Anthropic sends for a whole message, block by block as its API does: thinking in two
 * deltas then its signature, redacted thinking whole, tool input as one JSON delta, text as one
 * delta; `message_start` carries the input usage and one output token, `message_delta` the output.
 */
export function streamOfMessage(message: {
  id: string;
  model: string;
  content: ReadonlyArray<{ readonly type: string }>;
  stop_reason: string;
  usage: { output_tokens: number; [field: string]: number };
}): SseFrame[] {
  const { output_tokens, ...input } = message.usage;
  const frames: SseFrame[] = [
    ['message_start', { type: 'message_start', message: { id: message.id, type: 'message', role: 'assistant', model: message.model, content: [], stop_reason: null, stop_sequence: null, usage: { ...input, output_tokens: 1 } } }],
  ];
  (message.content as ReadonlyArray<StreamableBlock>).forEach((block, index) => {
    const delta = (d: Record<string, unknown>): SseFrame => ['content_block_delta', { type: 'content_block_delta', index, delta: d }];
    switch (block.type) {
      case 'thinking':
        frames.push(['content_block_start', { type: 'content_block_start', index, content_block: { type: 'thinking', thinking: '' } }]);
        frames.push(delta({ type: 'thinking_delta', thinking: block.thinking.slice(0, 20) }), delta({ type: 'thinking_delta', thinking: block.thinking.slice(20) }));
        frames.push(delta({ type: 'signature_delta', signature: block.signature }));
        break;
      case 'redacted_thinking':
        frames.push(['content_block_start', { type: 'content_block_start', index, content_block: block }]);
        break;
      case 'tool_use':
        frames.push(['content_block_start', { type: 'content_block_start', index, content_block: { ...block, input: {} } }]);
        frames.push(delta({ type: 'input_json_delta', partial_json: JSON.stringify(block.input) }));
        break;
      case 'text':
        frames.push(['content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }]);
        frames.push(delta({ type: 'text_delta', text: block.text }));
        break;
    }
    frames.push(['content_block_stop', { type: 'content_block_stop', index }]);
  });
  frames.push(['message_delta', { type: 'message_delta', delta: { stop_reason: message.stop_reason, stop_sequence: null }, usage: { output_tokens } }]);
  frames.push(['message_stop', { type: 'message_stop' }]);
  return frames;
}
