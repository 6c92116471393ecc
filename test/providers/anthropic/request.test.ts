import { GatewayError } from '../../../lambda/contract/errors';
import { parseChatCompletionRequest } from '../../../lambda/contract/request';
import { decodeChatRequest } from '../../../lambda/codecs/openai-chat';
import { callFor, heldOutputLimit } from '../../../lambda/core/call';
import type { ChatCompletionRequest } from '../../../lambda/contract/request';
import { messagesBody, refuseWhatAnthropicCannotTake } from '../../../lambda/providers/anthropic';

/** The body the Anthropic provider sends for a Chat request on a route, through the Chat codec, as the pipeline calls it. */
function anthropicRequest(request: ChatCompletionRequest, model: string, maxOutputTokens: number, stream: boolean) {
  refuseWhatAnthropicCannotTake(request);
  const limit = heldOutputLimit(request.max_completion_tokens ?? request.max_tokens ?? maxOutputTokens);
  return messagesBody({ request: callFor(decodeChatRequest({ ...request, stream }), limit), route: { provider: 'anthropic', model } });
}

const MODEL = 'claude-3-5-sonnet-20241022';
const WEATHER_TOOL = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
};

function map(body: Record<string, unknown>, maxOutputTokens = 8192) {
  return anthropicRequest(parseChatCompletionRequest({ model: 'gw', ...body }), MODEL, maxOutputTokens, false);
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

const user = (content: unknown) => ({ role: 'user', content });

describe('OpenAI request → Anthropic Messages body', () => {
  it('moves system and developer messages into system, in order', () => {
    const { body } = map({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
        user('Hello'),
      ],
    });
    expect(body.system).toEqual([
      { type: 'text', text: 'Be brief.' },
      { type: 'text', text: 'Answer in French.' },
    ]);
    expect(body.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }]);
    expect(body.model).toBe(MODEL);
  });

  it('maps text parts, http image URLs and base64 data URLs', () => {
    const { body } = map({
      messages: [
        user([
          { type: 'text', text: 'What is in these?' },
          { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
          { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,/9j/4AAQ' } },
        ]),
      ],
    });
    expect(body.messages[0].content).toEqual([
      { type: 'text', text: 'What is in these?' },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.png' } },
      { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: '/9j/4AAQ' } },
    ]);
  });

  it('answers 400 naming the part for an image type the provider cannot read', () => {
    const err = badRequest({ messages: [user([{ type: 'image_url', image_url: { url: 'data:image/tiff;base64,AAAA' } }])] });
    expect(err.status).toBe(400);
    expect(err.param).toBe('messages[0].content[0].image_url.url');
  });

  it('turns assistant tool_calls into tool_use blocks with parsed input, and tool messages into tool_result', () => {
    const { body } = map({
      messages: [
        user('Weather in Paris and Rome?'),
        {
          role: 'assistant',
          content: 'Checking.',
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '18°C' },
        { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: '24°C' }, { type: 'text', text: 'sunny' }] },
        user('Thanks; which is warmer?'),
      ],
      tools: [WEATHER_TOOL],
    });
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris and Rome?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking.' },
          { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_2', name: 'get_weather', input: { city: 'Rome' } },
        ],
      },
      {
        // Consecutive tool results and the user message after them: one user turn.
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: '18°C' },
          { type: 'tool_result', tool_use_id: 'call_2', content: [{ type: 'text', text: '24°C' }, { type: 'text', text: 'sunny' }] },
          { type: 'text', text: 'Thanks; which is warmer?' },
        ],
      },
    ]);
  });

  it('maps a tool call with empty arguments to an empty input', () => {
    const { body } = map({
      messages: [user('x'), { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'now', arguments: '' } }] }],
    });
    expect(body.messages[1].content).toEqual([{ type: 'tool_use', id: 'c', name: 'now', input: {} }]);
  });

  it('answers 400 naming the arguments when a tool call holds invalid JSON', () => {
    const err = badRequest({
      messages: [user('x'), { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"city":' } }] }],
    });
    expect(err.status).toBe(400);
    expect(err.param).toBe('messages[1].tool_calls[0].function.arguments');
  });

  it('merges adjacent messages of the same role into one turn', () => {
    const { body } = map({
      messages: [user('one'), user([{ type: 'text', text: 'two' }]), { role: 'assistant', content: 'a' }, { role: 'assistant', content: 'b' }, user('three')],
    });
    expect(body.messages.map((m) => [m.role, m.content.length])).toEqual([
      ['user', 2],
      ['assistant', 2],
      ['user', 1],
    ]);
  });

  it('maps tools with their schemas', () => {
    const { body } = map({ messages: [user('x')], tools: [WEATHER_TOOL, { type: 'function', function: { name: 'now' } }] });
    expect(body.tools).toEqual([
      { name: 'get_weather', description: 'Weather in a city', input_schema: WEATHER_TOOL.function.parameters },
      { name: 'now', input_schema: { type: 'object', properties: {} } },
    ]);
    expect(body.tool_choice).toBeUndefined();
  });

  it.each([
    ['none', { type: 'none' }],
    ['auto', { type: 'auto' }],
    ['required', { type: 'any' }],
    [{ type: 'function', function: { name: 'get_weather' } }, { type: 'tool', name: 'get_weather' }],
  ])('maps tool_choice %j to %j', (choice, expected) => {
    const { body } = map({ messages: [user('x')], tools: [WEATHER_TOOL], tool_choice: choice });
    expect(body.tool_choice).toEqual(expected);
    expect(body.tools).toHaveLength(1);
  });

  it('maps parallel_tool_calls: false to disable_parallel_tool_use', () => {
    expect(map({ messages: [user('x')], tools: [WEATHER_TOOL], parallel_tool_calls: false }).body.tool_choice).toEqual({
      type: 'auto',
      disable_parallel_tool_use: true,
    });
    expect(map({ messages: [user('x')], tools: [WEATHER_TOOL], tool_choice: 'required', parallel_tool_calls: false }).body.tool_choice).toEqual({
      type: 'any',
      disable_parallel_tool_use: true,
    });
    expect(map({ messages: [user('x')], tools: [WEATHER_TOOL], parallel_tool_calls: true }).body.tool_choice).toBeUndefined();
  });

  it('maps stop to stop_sequences', () => {
    expect(map({ messages: [user('x')], stop: 'END' }).body.stop_sequences).toEqual(['END']);
    expect(map({ messages: [user('x')], stop: ['a', 'b'] }).body.stop_sequences).toEqual(['a', 'b']);
    expect(map({ messages: [user('x')] }).body.stop_sequences).toBeUndefined();
  });

  it("clamps temperature to Anthropic's documented 0–1 and passes top_p", () => {
    expect(map({ messages: [user('x')], temperature: 1.7 }).body.temperature).toBe(1);
    expect(map({ messages: [user('x')], temperature: 0.3, top_p: 0.9 }).body).toMatchObject({ temperature: 0.3, top_p: 0.9 });
    expect(map({ messages: [user('x')] }).body.temperature).toBeUndefined();
  });

  it('fills max_tokens from max_completion_tokens, then max_tokens, then the catalog', () => {
    expect(map({ messages: [user('x')], max_completion_tokens: 100, max_tokens: 200 }).body.max_tokens).toBe(100);
    expect(map({ messages: [user('x')], max_tokens: 200 }).body.max_tokens).toBe(200);
    expect(map({ messages: [user('x')] }, 8192).body.max_tokens).toBe(8192);
  });

  it('maps user to metadata.user_id', () => {
    expect(map({ messages: [user('x')], user: 'user-123' }).body.metadata).toEqual({ user_id: 'user-123' });
  });

  it('guarantees JSON for json_object with a forced tool whose input is the answer', () => {
    const plan = map({ messages: [user('Give JSON')], response_format: { type: 'json_object' } });
    expect(plan.jsonToolName).toBe('json_object');
    expect(plan.body.tools).toEqual([{ name: 'json_object', description: expect.any(String), input_schema: { type: 'object' } }]);
    expect(plan.body.tool_choice).toEqual({ type: 'tool', name: 'json_object' });
  });

  it('guarantees JSON for json_schema with a forced tool named after the schema', () => {
    const schema = { type: 'object', properties: { answer: { type: 'number' } }, required: ['answer'] };
    const plan = map({ messages: [user('x')], response_format: { type: 'json_schema', json_schema: { name: 'math_answer', schema } } });
    expect(plan.jsonToolName).toBe('math_answer');
    expect(plan.body.tools).toEqual([{ name: 'math_answer', description: expect.any(String), input_schema: schema }]);
    expect(plan.body.tool_choice).toEqual({ type: 'tool', name: 'math_answer' });
  });

  it('lets the model choose between real tools and the JSON answer when both are asked for', () => {
    const plan = map({ messages: [user('x')], tools: [WEATHER_TOOL], response_format: { type: 'json_object' } });
    expect(plan.body.tools?.map((t) => (t as { name: string }).name)).toEqual(['get_weather', 'json_object']);
    expect(plan.body.tool_choice).toEqual({ type: 'any' });
  });

  it('answers 400 when the JSON schema is not an object or its name clashes with a tool', () => {
    expect(badRequest({ messages: [user('x')], response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'array' } } } }).param).toBe(
      'response_format.json_schema.schema',
    );
    expect(
      badRequest({ messages: [user('x')], tools: [WEATHER_TOOL], response_format: { type: 'json_schema', json_schema: { name: 'get_weather', schema: { type: 'object' } } } })
        .param,
    ).toBe('response_format.json_schema.name');
  });

  it.each([
    ['logprobs', { logprobs: true }],
    ['top_logprobs', { logprobs: false, top_logprobs: 3 }],
    ['n', { n: 2 }],
    ['seed', { seed: 42 }],
    ['frequency_penalty', { frequency_penalty: 0.5 }],
    ['presence_penalty', { presence_penalty: -1 }],
  ])('answers 400 naming %s, which Anthropic cannot honour', (param, extra) => {
    let err: GatewayError | undefined;
    try {
      map({ messages: [user('x')], ...extra });
    } catch (e) {
      err = e as GatewayError;
    }
    expect(err).toBeInstanceOf(GatewayError);
    expect(err?.status).toBe(400);
    expect(err?.param).toBe(param);
  });

  it('accepts the neutral values of those parameters', () => {
    expect(() => map({ messages: [user('x')], logprobs: false, n: 1, frequency_penalty: 0, presence_penalty: 0 })).not.toThrow();
  });

  it('answers 400 for deprecated function messages', () => {
    expect(badRequest({ messages: [user('x'), { role: 'function', name: 'f', content: 'r' }] }).param).toBe('messages[1].role');
  });
});

describe('reasoning_effort → extended thinking', () => {
  it('asks for a thinking budget by effort, within max_tokens', () => {
    expect(map({ messages: [user('Hi')], reasoning_effort: 'low' }).body.thinking).toEqual({ type: 'enabled', budget_tokens: 1024 });
    expect(map({ messages: [user('Hi')], reasoning_effort: 'medium' }).body.thinking).toEqual({ type: 'enabled', budget_tokens: 4096 });
    // high wants 16,384, but the answer may only take 8,192 (the model's ceiling here): the budget stays under it.
    const high = map({ messages: [user('Hi')], reasoning_effort: 'high' }).body;
    expect(high.thinking).toEqual({ type: 'enabled', budget_tokens: 8191 });
    expect(high.max_tokens).toBe(8192);
    expect(map({ messages: [user('Hi')], reasoning_effort: 'xhigh', max_tokens: 40_000 }, 64_000).body.thinking).toEqual({ type: 'enabled', budget_tokens: 32_000 });
  });

  it('does not think for none, minimal, no effort, or a max_tokens under the minimum budget', () => {
    for (const extra of [{ reasoning_effort: 'none' }, { reasoning_effort: 'minimal' }, {}, { reasoning_effort: 'high', max_tokens: 1000 }]) {
      expect(map({ messages: [user('Hi')], ...extra }).body).not.toHaveProperty('thinking');
    }
  });

  it('does not think where Anthropic refuses thinking: forced tools, JSON mode, a sampling temperature, a low top_p', () => {
    for (const extra of [
      { tools: [WEATHER_TOOL], tool_choice: 'required' },
      { tools: [WEATHER_TOOL], tool_choice: { type: 'function', function: { name: 'get_weather' } } },
      { response_format: { type: 'json_object' } },
      { temperature: 0.2 },
      { top_p: 0.5 },
    ]) {
      expect(map({ messages: [user('Hi')], reasoning_effort: 'medium', ...extra }).body).not.toHaveProperty('thinking');
    }
    // temperature 1 and a high top_p are what thinking runs with: allowed.
    expect(map({ messages: [user('Hi')], reasoning_effort: 'medium', temperature: 1, top_p: 0.95 }).body.thinking).toBeDefined();
  });

  it('does not think when the last assistant turn called tools (its thinking block would have to come back)', () => {
    const toolTurn = [
      user('Weather in Paris?'),
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '18 °C' },
    ];
    expect(map({ messages: toolTurn, tools: [WEATHER_TOOL], reasoning_effort: 'medium' }).body).not.toHaveProperty('thinking');
    // A later question, after a text answer, thinks again.
    const later = [...toolTurn, { role: 'assistant', content: 'It is 18 °C.' }, user('And tomorrow?')];
    expect(map({ messages: later, tools: [WEATHER_TOOL], reasoning_effort: 'medium' }).body.thinking).toEqual({ type: 'enabled', budget_tokens: 4096 });
  });
});
