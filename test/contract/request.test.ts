import { GatewayError } from '../../lambda/contract/errors';
import { parseChatCompletionRequest } from '../../lambda/contract/request';

const base = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] };

function rejection(body: unknown): { status: number; param: string | null; code: string } {
  try {
    parseChatCompletionRequest(body);
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return { status: err.status, param: err.param, code: err.code };
  }
  throw new Error('expected a rejection');
}

describe('request validation', () => {
  it('accepts a minimal request and keeps unknown top-level fields', () => {
    const parsed = parseChatCompletionRequest({ ...base, reasoning_effort: 'low' });
    expect(parsed).toMatchObject({ model: 'gpt-4o', reasoning_effort: 'low' });
  });

  it.each([
    ['temperature', 0, 2],
    ['top_p', 0, 1],
    ['frequency_penalty', -2, 2],
    ['presence_penalty', -2, 2],
  ])('%s accepts %d..%d and rejects just outside', (field, min, max) => {
    expect(() => parseChatCompletionRequest({ ...base, [field]: min })).not.toThrow();
    expect(() => parseChatCompletionRequest({ ...base, [field]: max })).not.toThrow();
    expect(rejection({ ...base, [field]: min - 0.01 })).toEqual({ status: 400, param: field, code: 'invalid_value' });
    expect(rejection({ ...base, [field]: max + 0.01 })).toEqual({ status: 400, param: field, code: 'invalid_value' });
    expect(rejection({ ...base, [field]: 'x' })).toEqual({ status: 400, param: field, code: 'invalid_type' });
  });

  it.each(['max_tokens', 'max_completion_tokens', 'n', 'seed', 'top_logprobs'])('%s must be an integer', (field) => {
    expect(rejection({ ...base, logprobs: true, [field]: 1.5 }).param).toBe(field);
  });

  it('bounds max_tokens, n and top_logprobs', () => {
    expect(rejection({ ...base, max_tokens: 0 }).param).toBe('max_tokens');
    expect(rejection({ ...base, max_completion_tokens: 0 }).param).toBe('max_completion_tokens');
    expect(rejection({ ...base, n: 0 }).param).toBe('n');
    expect(rejection({ ...base, n: 129 }).param).toBe('n');
    expect(rejection({ ...base, logprobs: true, top_logprobs: 21 }).param).toBe('top_logprobs');
    expect(() => parseChatCompletionRequest({ ...base, logprobs: true, top_logprobs: 20 })).not.toThrow();
  });

  it('top_logprobs needs logprobs', () => {
    expect(rejection({ ...base, top_logprobs: 2 })).toMatchObject({ param: 'top_logprobs' });
  });

  it('stop is a string or up to four strings', () => {
    expect(() => parseChatCompletionRequest({ ...base, stop: 'x' })).not.toThrow();
    expect(() => parseChatCompletionRequest({ ...base, stop: ['a', 'b', 'c', 'd'] })).not.toThrow();
    expect(rejection({ ...base, stop: ['a', 'b', 'c', 'd', 'e'] }).param).toBe('stop');
    expect(rejection({ ...base, stop: [1] }).param).toBe('stop[0]');
  });

  it('names the offending message field', () => {
    expect(rejection({ ...base, messages: [{ role: 'user', content: 'a' }, { role: 'robot', content: 'b' }] })).toEqual({
      status: 400,
      param: 'messages[1].role',
      code: 'invalid_value',
    });
    expect(rejection({ ...base, messages: [{ role: 'user', content: [{ type: 'audio' }] }] }).param).toBe('messages[0].content[0].type');
    expect(rejection({ ...base, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }).param).toBe(
      'messages[0].content[0].image_url.url',
    );
    expect(rejection({ ...base, messages: [{ role: 'tool', content: 'x' }] })).toEqual({
      status: 400,
      param: 'messages[0].tool_call_id',
      code: 'missing_required_parameter',
    });
    expect(rejection({ ...base, messages: [] }).param).toBe('messages');
  });

  it('accepts every documented role', () => {
    const messages = [
      { role: 'system', content: 's' },
      { role: 'developer', content: [{ type: 'text', text: 'd' }] },
      { role: 'user', content: [{ type: 'text', text: 'u' }, { type: 'image_url', image_url: { url: 'https://x/y.png', detail: 'low' } }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'r' },
      { role: 'function', name: 'f', content: 'r' },
    ];
    expect(parseChatCompletionRequest({ ...base, messages }).messages).toHaveLength(6);
  });

  it('reports missing model and messages as missing_required_parameter', () => {
    expect(rejection({ messages: base.messages })).toEqual({ status: 400, param: 'model', code: 'missing_required_parameter' });
    expect(rejection({ model: 'gpt-4o' })).toEqual({ status: 400, param: 'messages', code: 'missing_required_parameter' });
  });

  it('validates tools, tool_choice and response_format', () => {
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }];
    for (const choice of ['none', 'auto', 'required', { type: 'function', function: { name: 'f' } }]) {
      expect(() => parseChatCompletionRequest({ ...base, tools, tool_choice: choice })).not.toThrow();
    }
    expect(rejection({ ...base, tools, tool_choice: 'sometimes' }).param).toBe('tool_choice');
    expect(rejection({ ...base, tool_choice: 'auto' }).param).toBe('tool_choice');
    expect(rejection({ ...base, tools, tool_choice: { type: 'function', function: { name: 'g' } } }).param).toBe('tool_choice.function.name');
    expect(rejection({ ...base, tools: [{ type: 'function', function: { name: 'bad name!' } }] }).param).toBe('tools[0].function.name');
    for (const format of [{ type: 'text' }, { type: 'json_object' }, { type: 'json_schema', json_schema: { name: 's', schema: {} } }]) {
      expect(() => parseChatCompletionRequest({ ...base, response_format: format })).not.toThrow();
    }
    expect(rejection({ ...base, response_format: { type: 'xml' } }).param).toBe('response_format.type');
    expect(rejection({ ...base, response_format: { type: 'json_schema' } }).param).toBe('response_format.json_schema');
  });

  it('stream_options needs stream', () => {
    expect(rejection({ ...base, stream_options: { include_usage: true } }).param).toBe('stream_options');
    expect(() => parseChatCompletionRequest({ ...base, stream: true, stream_options: { include_usage: true } })).not.toThrow();
  });

  it('rejects a body that is not an object', () => {
    expect(rejection([1, 2])).toMatchObject({ status: 400, param: null });
    expect(rejection('x')).toMatchObject({ status: 400 });
  });
});
