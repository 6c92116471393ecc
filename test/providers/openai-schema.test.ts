import { validateChunk, validateCompletion } from '../support/openai-schema';

describe('the OpenAI schema validator', () => {
  const completion = {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1700000000,
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content: 'hi', refusal: null }, finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  };
  const chunk = {
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1700000000,
    model: 'm',
    choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
  };

  it('accepts a valid completion and chunk', () => {
    expect(() => validateCompletion(completion)).not.toThrow();
    expect(() => validateChunk(chunk)).not.toThrow();
    expect(() => validateChunk({ ...chunk, choices: [], usage: completion.usage })).not.toThrow();
  });

  it("rejects a provider's own finish_reason", () => {
    const bad = { ...completion, choices: [{ ...completion.choices[0], finish_reason: 'end_turn' }] };
    expect(() => validateCompletion(bad)).toThrow(/finish_reason/);
    expect(() => validateChunk({ ...chunk, choices: [{ ...chunk.choices[0], finish_reason: 'end_turn' }] })).toThrow(/finish_reason/);
  });

  it('rejects a chunk whose tool call has no index', () => {
    const bad = { ...chunk, choices: [{ index: 0, delta: { tool_calls: [{ id: 'x', type: 'function', function: { name: 'f' } }] }, finish_reason: null }] };
    expect(() => validateChunk(bad)).toThrow(/index/);
  });

  it('rejects a completion without choices', () => {
    const { choices: _omit, ...bad } = completion;
    expect(() => validateCompletion(bad)).toThrow(/choices/);
  });
});
