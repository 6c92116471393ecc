import OpenAI from 'openai';
import {
  decodeResponsesRequest,
  encodeResponse,
  responseShell,
  responsesStreamTerminals,
  ResponsesEventEncoder,
  type DecodedResponsesRequest,
} from '../../lambda/codecs/openai-responses';
import { collectAnswer, type AnswerEvent } from '../../lambda/core/answer';
import { sseBytes } from '../../lambda/core/sse';
import { parseCreateResponseRequest } from '../../lambda/contract/responses';
import { startUpstream } from '../support/upstream';

/**
 * The codec behind a loopback server, the official `openai` package as the client: the SDK's
 * stream helper accumulates the events into its own response (it throws on an event for an item it
 * has not seen), and the output it got goes back as the next request's input.
 */
const SCRIPT: AnswerEvent[] = [
  { type: 'start', id: 'up_1', model: 'claude-standin' },
  { type: 'reasoning', index: 0, text: 'The user wants a listing; ' },
  { type: 'reasoning', index: 0, text: 'run ls.' },
  { type: 'reasoning_signature', index: 0, signature: 'EqQBCkYIBxgCKkA' },
  { type: 'text', index: 1, text: 'Listing ' },
  { type: 'text', index: 1, text: 'files.' },
  { type: 'tool_call_start', index: 2, id: 'toolu_1', name: 'exec_command' },
  { type: 'tool_call_delta', index: 2, arguments: '{"cmd":' },
  { type: 'tool_call_delta', index: 2, arguments: '"ls"}' },
  { type: 'finish', reason: 'tool_calls' },
  { type: 'usage', usage: { inputTokens: 12, cacheReadTokens: 30, cacheWriteTokens: 100, cacheWrite1hTokens: 0, outputTokens: 40, reasoningTokens: 20 } },
];

const decodedRequests: DecodedResponsesRequest[] = [];
let upstream: Awaited<ReturnType<typeof startUpstream>>;
let client: OpenAI;
let sequence = 0;

beforeAll(async () => {
  upstream = await startUpstream(async (_req, body, res) => {
    const request = parseCreateResponseRequest(body);
    const decoded = decodeResponsesRequest(request);
    decodedRequests.push(decoded);
    const n = sequence++;
    const shell = responseShell(request, decoded, { id: `resp_${n}`, model: request.model, createdAtMs: Date.now() });
    const options = { idFor: (prefix: string, i: number) => `${prefix}_${n}_${i}`, includeEncrypted: decoded.includeEncrypted };
    if (!decoded.options.stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(encodeResponse(collectAnswer(SCRIPT), { ...options, shell })));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const encoder = new ResponsesEventEncoder(shell, options);
    for (const event of SCRIPT) res.write(sseBytes(encoder.push(event)));
    encoder.stored(encoder.finalResponse());
    res.end(sseBytes(responsesStreamTerminals(encoder).ended()));
  });
  client = new OpenAI({ baseURL: upstream.url, apiKey: 'it_test_key', maxRetries: 0 });
});

afterAll(() => upstream.close());

const REQUEST = {
  model: 'claude-test',
  input: 'list the files',
  reasoning: { effort: 'high' as const, summary: 'auto' as const },
  include: ['reasoning.encrypted_content' as const],
  store: false,
  tools: [{ type: 'function' as const, name: 'exec_command', parameters: { type: 'object', properties: { cmd: { type: 'string' } } }, strict: false }],
};

describe('the Responses codec with the openai SDK as the client', () => {
  it("streams events the SDK's stream helper follows to the end, its final response with reasoning, message, call and usage", async () => {
    const stream = client.responses.stream(REQUEST);
    const types: string[] = [];
    let summary = '';
    stream.on('event', (event) => types.push(event.type));
    stream.on('response.reasoning_summary_text.delta', (event) => (summary += event.delta));
    const final = await stream.finalResponse();
    expect(types[0]).toBe('response.created');
    expect(types[types.length - 1]).toBe('response.completed');
    expect(summary).toBe('The user wants a listing; run ls.');
    expect(final.output.map((item) => item.type)).toEqual(['reasoning', 'message', 'function_call']);
    expect(final.output_text).toBe('Listing files.');
    expect(final.output[2]).toMatchObject({ type: 'function_call', call_id: 'toolu_1', name: 'exec_command', arguments: '{"cmd":"ls"}', status: 'completed' });
    expect(final.output[0]).toMatchObject({ type: 'reasoning', summary: [{ type: 'summary_text', text: 'The user wants a listing; run ls.' }], encrypted_content: expect.stringMatching(/^itapi\.v1:/) });
    expect(final.usage).toEqual({ input_tokens: 142, input_tokens_details: { cached_tokens: 30, cache_write_tokens: 100 }, output_tokens: 40, output_tokens_details: { reasoning_tokens: 20 }, total_tokens: 182 });
  });

  it('answers JSON the SDK reads, whose output sent back as input restores the thinking ahead of the call', async () => {
    const first = await client.responses.create(REQUEST);
    expect(first.output_text).toBe('Listing files.');
    const call = first.output.find((item) => item.type === 'function_call');
    await client.responses.create({ ...REQUEST, input: [{ role: 'user', content: 'list the files' }, ...first.output, { type: 'function_call_output', call_id: call!.call_id, output: 'a.txt' }] as never });
    const again = decodedRequests[decodedRequests.length - 1];
    expect(again.prompt.turns[1]).toEqual({
      role: 'assistant',
      parts: [
        { type: 'reasoning', text: 'The user wants a listing; run ls.', signature: 'EqQBCkYIBxgCKkA' },
        { type: 'text', text: 'Listing files.' },
        { type: 'tool_call', id: 'toolu_1', name: 'exec_command', arguments: '{"cmd":"ls"}' },
      ],
    });
    expect(again.options.reasoning).toEqual({ mode: 'enabled', effort: 'high', summary: 'auto' });
  });
});
