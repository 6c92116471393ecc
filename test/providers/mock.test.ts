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
