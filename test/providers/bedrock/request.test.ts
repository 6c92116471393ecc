import { GatewayError } from '../../../lambda/contract/errors';
import { parseChatCompletionRequest } from '../../../lambda/contract/request';
import { decodeChatRequest } from '../../../lambda/codecs/openai-chat';
import { callFor, heldOutputLimit } from '../../../lambda/core/call';
import { converseRequest } from '../../../lambda/providers/bedrock/request';

const CLAUDE = 'anthropic.claude-3-5-sonnet-20241022-v2:0';
const WEATHER_TOOL = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
};
const user = (content: unknown) => ({ role: 'user', content });

function map(body: Record<string, unknown>, modelId = CLAUDE, maxOutputTokens = 8192) {
  // As the chat endpoint sends it: decoded with the Chat codec, the output limit the hold paid for (the client's, else the ceiling).
  const request = parseChatCompletionRequest({ model: 'gw', ...body });
  return converseRequest(callFor(decodeChatRequest(request), heldOutputLimit(request.max_completion_tokens ?? request.max_tokens ?? maxOutputTokens)), modelId);
}

function badRequest(body: Record<string, unknown>): GatewayError {
  try {
    map(body);
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected a 400');
}

describe('OpenAI request → Bedrock Converse input', () => {
  it('moves system and developer messages into system and keeps the model id', () => {
    const { input } = map({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'developer', content: 'French.' }, user('Hello')] });
    expect(input.modelId).toBe(CLAUDE);
    expect(input.system).toEqual([{ text: 'Be brief.' }, { text: 'French.' }]);
    expect(input.messages).toEqual([{ role: 'user', content: [{ text: 'Hello' }] }]);
  });

  it('sends data-URL images as bytes with their format', () => {
    const { input } = map({ messages: [user([{ type: 'text', text: 'What?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }])] });
    const content = input.messages?.[0].content ?? [];
    expect(content[0]).toEqual({ text: 'What?' });
    expect(content[1].image?.format).toBe('png');
    expect(Buffer.from(content[1].image?.source?.bytes ?? new Uint8Array()).toString('base64')).toBe('iVBORw0KGgo=');
  });

  it('answers 400 naming the part for an http image URL, since Converse needs bytes', () => {
    const err = badRequest({ messages: [user([{ type: 'text', text: 'x' }, { type: 'image_url', image_url: { url: 'https://example.com/a.png' } }])] });
    expect(err.status).toBe(400);
    // The canonical prompt names the part (the Converse encoder no longer sees Chat's field names).
    expect(err.param).toBe('messages[0].content[1]');
  });

  it('turns tool_calls into toolUse and tool messages into one user turn of toolResult', () => {
    const { input } = map({
      messages: [
        user('Top songs?'),
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'tooluse_1', type: 'function', function: { name: 'top_song', arguments: '{"sign":"WZPZ"}' } },
            { id: 'tooluse_2', type: 'function', function: { name: 'top_song', arguments: '{"sign":"WKRP"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'tooluse_1', content: 'Elemental Hotel' },
        { role: 'tool', tool_call_id: 'tooluse_2', content: 'Stairway' },
      ],
      tools: [{ type: 'function', function: { name: 'top_song', parameters: { type: 'object', properties: { sign: { type: 'string' } } } } }],
    });
    expect(input.messages).toEqual([
      { role: 'user', content: [{ text: 'Top songs?' }] },
      {
        role: 'assistant',
        content: [{ toolUse: { toolUseId: 'tooluse_1', name: 'top_song', input: { sign: 'WZPZ' } } }, { toolUse: { toolUseId: 'tooluse_2', name: 'top_song', input: { sign: 'WKRP' } } }],
      },
      {
        role: 'user',
        content: [
          { toolResult: { toolUseId: 'tooluse_1', content: [{ text: 'Elemental Hotel' }] } },
          { toolResult: { toolUseId: 'tooluse_2', content: [{ text: 'Stairway' }] } },
        ],
      },
    ]);
  });

  it('sends a tool call whose arguments are not a JSON object as {arguments: text}, as the Anthropic codec does', () => {
    const { input } = map({ messages: [user('x'), { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: 'nope' } }] }] });
    expect(input.messages![1].content).toEqual([{ toolUse: { toolUseId: 'c', name: 'f', input: { arguments: 'nope' } } }]);
  });

  it('merges adjacent messages of the same role', () => {
    const { input } = map({ messages: [user('a'), user('b'), { role: 'assistant', content: 'c' }] });
    expect(input.messages).toEqual([
      { role: 'user', content: [{ text: 'a' }, { text: 'b' }] },
      { role: 'assistant', content: [{ text: 'c' }] },
    ]);
  });

  it('sends tools as toolConfig.tools with their JSON schemas', () => {
    const { input } = map({ messages: [user('x')], tools: [WEATHER_TOOL] });
    expect(input.toolConfig).toEqual({
      tools: [{ toolSpec: { name: 'get_weather', description: 'Weather in a city', inputSchema: { json: WEATHER_TOOL.function.parameters } } }],
    });
  });

  it.each([
    ['auto', { auto: {} }],
    ['required', { any: {} }],
    [{ type: 'function', function: { name: 'get_weather' } }, { tool: { name: 'get_weather' } }],
  ])('maps tool_choice %j to toolChoice %j', (choice, expected) => {
    expect(map({ messages: [user('x')], tools: [WEATHER_TOOL], tool_choice: choice }).input.toolConfig?.toolChoice).toEqual(expected);
  });

  it("maps tool_choice 'none' to no toolConfig, and answers 400 when the history holds tool calls", () => {
    expect(map({ messages: [user('x')], tools: [WEATHER_TOOL], tool_choice: 'none' }).input.toolConfig).toBeUndefined();
    const err = badRequest({
      messages: [
        user('x'),
        { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c', content: 'sunny' },
      ],
      tools: [WEATHER_TOOL],
      tool_choice: 'none',
    });
    expect(err.param).toBe('tool_choice');
  });

  it('answers 400 for parallel_tool_calls: false, which Converse cannot express', () => {
    expect(badRequest({ messages: [user('x')], tools: [WEATHER_TOOL], parallel_tool_calls: false }).param).toBe('parallel_tool_calls');
    expect(map({ messages: [user('x')], tools: [WEATHER_TOOL], parallel_tool_calls: true }).input.toolConfig).toBeDefined();
  });

  it('maps stop, top_p and the output limit into inferenceConfig', () => {
    expect(map({ messages: [user('x')], stop: 'END', top_p: 0.5, max_completion_tokens: 64 }).input.inferenceConfig).toEqual({
      maxTokens: 64,
      topP: 0.5,
      stopSequences: ['END'],
    });
    expect(map({ messages: [user('x')], max_tokens: 32 }).input.inferenceConfig?.maxTokens).toBe(32);
    expect(map({ messages: [user('x')] }, CLAUDE, 4096).input.inferenceConfig?.maxTokens).toBe(4096);
  });

  it('clamps temperature to 0–1 for Anthropic models only', () => {
    expect(map({ messages: [user('x')], temperature: 1.6 }).input.inferenceConfig?.temperature).toBe(1);
    expect(map({ messages: [user('x')], temperature: 1.6 }, 'us.anthropic.claude-3-5-sonnet-20241022-v2:0').input.inferenceConfig?.temperature).toBe(1);
    expect(map({ messages: [user('x')], temperature: 1.6 }, 'mistral.mistral-large-2407-v1:0').input.inferenceConfig?.temperature).toBe(1.6);
  });

  it('guarantees JSON with a forced tool whose input is the answer', () => {
    const schema = { type: 'object', properties: { answer: { type: 'number' } } };
    const plan = map({ messages: [user('x')], response_format: { type: 'json_schema', json_schema: { name: 'math_answer', schema } } });
    expect(plan.jsonToolName).toBe('math_answer');
    expect(plan.input.toolConfig).toEqual({
      tools: [{ toolSpec: { name: 'math_answer', description: expect.any(String), inputSchema: { json: schema } } }],
      toolChoice: { tool: { name: 'math_answer' } },
    });
    expect(map({ messages: [user('x')], response_format: { type: 'json_object' } }).input.toolConfig?.toolChoice).toEqual({ tool: { name: 'json_object' } });
  });

  it.each([
    ['logprobs', { logprobs: true }],
    ['n', { n: 3 }],
    ['seed', { seed: 1 }],
    ['frequency_penalty', { frequency_penalty: 1 }],
    ['presence_penalty', { presence_penalty: 1 }],
  ])('answers 400 naming %s, which Bedrock cannot honour', (param, extra) => {
    const err = badRequest({ messages: [user('x')], ...extra });
    expect(err.status).toBe(400);
    expect(err.param).toBe(param);
  });
});

describe('a prompt made into Converse blocks once', () => {
  const decodedOf = (body: Record<string, unknown>) => decodeChatRequest(parseChatCompletionRequest({ model: 'gw', ...body }));
  const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } };

  it('gives every call on one prompt (the probe, thinkingBilling, the call, a fallback) the same blocks, whatever its settings', () => {
    const decoded = decodedOf({ messages: [{ role: 'system', content: 'Be brief.' }, user([{ type: 'text', text: 'What?' }, image])] });
    const probe = converseRequest(callFor(decoded, heldOutputLimit(8192)), CLAUDE);
    const call = converseRequest(callFor(decoded, heldOutputLimit(100)), 'meta.llama3-70b-instruct-v1:0');
    // The image decoded once: the very same blocks, not a copy made again.
    expect(call.input.messages).toBe(probe.input.messages);
    expect(call.input.system).toBe(probe.input.system);
    expect(call.input.inferenceConfig?.maxTokens).toBe(100);
    expect(probe.input.inferenceConfig?.maxTokens).toBe(8192);
    expect(call.input.modelId).not.toBe(probe.input.modelId);
    // Another request with the same text is another prompt: its own blocks.
    const other = converseRequest(callFor(decodedOf({ messages: [{ role: 'system', content: 'Be brief.' }, user([{ type: 'text', text: 'What?' }, image])] }), heldOutputLimit(100)), CLAUDE);
    expect(other.input.messages).not.toBe(probe.input.messages);
    expect(other.input.messages).toEqual(probe.input.messages);
  });

  it('refuses a prompt Converse cannot take on every call, keeping nothing', () => {
    const decoded = decodedOf({ messages: [user([{ type: 'text', text: 'x' }, { type: 'image_url', image_url: { url: 'https://example.com/a.png' } }])] });
    for (let i = 0; i < 2; i++) expect(() => converseRequest(callFor(decoded, heldOutputLimit(100)), CLAUDE)).toThrow(GatewayError);
  });
});

describe('reasoning_effort → Claude thinking on Bedrock', () => {
  it('asks Claude models for a thinking budget through additionalModelRequestFields, within maxTokens', () => {
    expect(map({ messages: [user('Hi')], reasoning_effort: 'medium' }).input.additionalModelRequestFields).toEqual({ thinking: { type: 'enabled', budget_tokens: 4096 } });
    expect(map({ messages: [user('Hi')], reasoning_effort: 'high' }, 'us.anthropic.claude-sonnet-4-5-20250929-v1:0').input.additionalModelRequestFields).toEqual({
      thinking: { type: 'enabled', budget_tokens: 8191 },
    });
  });

  it('leaves other models, and the cases Claude refuses, without thinking', () => {
    expect(map({ messages: [user('Hi')], reasoning_effort: 'high' }, 'amazon.nova-pro-v1:0').input).not.toHaveProperty('additionalModelRequestFields');
    for (const extra of [{ temperature: 0.3 }, { tools: [WEATHER_TOOL], tool_choice: 'required' }, { response_format: { type: 'json_object' } }, { reasoning_effort: 'minimal' }]) {
      expect(map({ messages: [user('Hi')], reasoning_effort: 'high', ...extra }).input).not.toHaveProperty('additionalModelRequestFields');
    }
    const continuing = [
      user('Weather?'),
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
    ];
    expect(map({ messages: continuing, tools: [WEATHER_TOOL], reasoning_effort: 'high' }).input).not.toHaveProperty('additionalModelRequestFields');
  });
});
