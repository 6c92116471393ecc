import { decodeChatRequest } from '../../lambda/codecs/openai-chat';
import { collectAnswer, type AnswerEvent } from '../../lambda/core/answer';
import { callFor, heldOutputLimit } from '../../lambda/core/call';
import { mockProvider } from '../../lambda/providers/mock';
import { providerCall } from './stand-in';

const tool = (name: string) => ({ type: 'function', function: { name, parameters: { type: 'object', properties: { q: { type: 'string' } } } } });
const route = { provider: 'mock' as const, model: 'mock' };
const answer = (body: Record<string, unknown>) => mockProvider().complete(providerCall(body, route));

describe('the mock provider’s tool calls', () => {
  it('calls the only tool offered, or the one tool_choice forces', async () => {
    expect((await answer({ messages: [{ role: 'user', content: 'Weather?' }], tools: [tool('lookup')] })).choices[0].message.tool_calls?.[0]).toMatchObject({ function: { name: 'lookup' } });
    const forced = await answer({ messages: [{ role: 'user', content: 'x' }], tools: [tool('a'), tool('b')], tool_choice: { type: 'function', function: { name: 'b' } } });
    expect(forced.choices[0].message.tool_calls?.[0]).toMatchObject({ function: { name: 'b' } });
  });

  it('calls the tool the user’s last words name, else answers an agent’s toolbox in words instead of calling its first tool', async () => {
    const toolbox = ['Agent', 'Bash', 'Read', 'Write'].map(tool);
    const named = await answer({ messages: [{ role: 'user', content: [{ type: 'text', text: 'reminder: Agent types…' }, { type: 'text', text: 'use Bash to run ls' }] }], tools: toolbox });
    expect(named.choices[0].message.tool_calls?.[0]).toMatchObject({ function: { name: 'Bash', arguments: '{"q":"example"}' } });
    const unnamed = await answer({ messages: [{ role: 'user', content: 'say OK' }, { role: 'system', content: 'Available agent types: …' }], tools: toolbox });
    expect(unnamed.choices[0].finish_reason).toBe('stop');
    expect(unnamed.choices[0].message.content).toBe('This is a mock answer from itapi to: say OK');
  });

  it('answers in words once a tool result is in', async () => {
    const done = await answer({
      messages: [
        { role: 'user', content: 'use lookup' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '42' },
      ],
      tools: [tool('lookup')],
    });
    expect(done.choices[0].message.content).toBe('This is a mock answer from itapi to: 42');
  });
});

describe('the mock provider in the canonical model (issue 18)', () => {
  const call = (body: Record<string, unknown>, limit: number) => {
    const chat = providerCall(body, route);
    return { ...chat, request: callFor(decodeChatRequest(chat.request), heldOutputLimit(limit)) };
  };

  it('answers a Call, cut at the held output limit, the same whole or streamed', async () => {
    const provider = mockProvider();
    const whole = await provider.answer(call({ messages: [{ role: 'user', content: 'tell me about the sea' }] }, 4));
    expect(whole.parts).toEqual([{ type: 'text', text: 'This is a mock' }]);
    expect(whole.finishReason).toBe('length');
    expect(whole.usage).toMatchObject({ outputTokens: 4 });
    const events: AnswerEvent[] = [];
    for await (const e of await provider.answerStream(call({ messages: [{ role: 'user', content: 'tell me about the sea' }], stream: true }, 4))) events.push(e);
    const streamed = collectAnswer(events);
    expect(streamed.parts).toEqual(whole.parts);
    expect(streamed.finishReason).toBe('length');
  });

  it('calls the tool of a Call as a tool-call part', async () => {
    const answer = await mockProvider().answer(call({ messages: [{ role: 'user', content: 'Weather?' }], tools: [tool('lookup')] }, 100));
    expect(answer.parts).toEqual([{ type: 'tool_call', id: expect.stringMatching(/^call_mock_/), name: 'lookup', arguments: '{"q":"example"}' }]);
    expect(answer.finishReason).toBe('tool_calls');
  });
});
