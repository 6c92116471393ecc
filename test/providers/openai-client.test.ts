import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import type { RouteConfig } from '../../lambda/catalog';
import { GatewayError } from '../../lambda/contract/errors';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { anthropicChatProvider as anthropicProvider } from '../../lambda/providers/anthropic';
import { DEFAULT_TIMEOUTS, type Provider } from '../../lambda/providers/types';
import { sse, TOOL_STREAM as ANTHROPIC_TOOL_STREAM, TOOL_MESSAGE } from './anthropic/transcripts';
import { eventStreamReply, jsonReply, route as bedrockRoute, testBedrockProvider } from './bedrock/stand-in';
import { TOOL_RESPONSE, TOOL_STREAM as BEDROCK_TOOL_STREAM } from './bedrock/transcripts';
import { StandIn } from './stand-in';

/**
 * The official `openai` client against each adapter, through a bare relay that does what the
 * pipeline does with a provider's output (JSON as is; chunks as SSE, then [DONE]). The full
 * gateway is tested end to end elsewhere; this pins that the adapters' shapes satisfy the client.
 */
async function relay(provider: Provider, routeConfig: RouteConfig): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', async () => {
      const call = {
        request: parseChatCompletionRequest(JSON.parse(Buffer.concat(parts).toString('utf8'))),
        route: routeConfig,
        apiKey: 'upstream-key',
        maxOutputTokens: 1024,
        signal: new AbortController().signal,
        timeouts: DEFAULT_TIMEOUTS,
        requestId: 'req_relay',
      };
      try {
        if (call.request.stream) {
          const chunks = await provider.stream(call);
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          for await (const chunk of chunks) res.write(`data: ${JSON.stringify({ ...chunk, model: call.request.model })}\n\n`);
          res.end('data: [DONE]\n\n');
        } else {
          const completion = await provider.complete(call);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ...completion, model: call.request.model }));
        }
      } catch (err) {
        const status = err instanceof GatewayError ? err.status : 500;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(err instanceof GatewayError ? err.toBody() : { error: { message: String(err) } }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, server };
}

const TOOLS: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { timezone: { type: 'string' } } } } },
  { type: 'function', function: { name: 'top_song', parameters: { type: 'object', properties: { sign: { type: 'string' } } } } },
];

describe.each([
  {
    name: 'anthropic',
    protocol: 'http1' as const,
    provider: anthropicProvider(),
    route: (url: string): RouteConfig => ({ provider: 'anthropic', base_url: url, model: 'claude-3-5-sonnet-20241022' }),
    serve: (standIn: StandIn, stream: boolean) => {
      standIn.handler = () =>
        stream
          ? { status: 200, headers: { 'content-type': 'text/event-stream' }, parts: sse(ANTHROPIC_TOOL_STREAM) }
          : { status: 200, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify(TOOL_MESSAGE)] };
    },
    streamedCalls: [
      ['get_weather', { location: 'San Francisco, CA' }],
      ['get_time', { timezone: 'America/New_York' }],
    ],
    completedCall: ['get_weather', { location: 'San Francisco, CA', unit: 'celsius' }],
  },
  {
    name: 'bedrock',
    protocol: 'h2c' as const,
    provider: testBedrockProvider(),
    route: (url: string): RouteConfig => ({ provider: 'bedrock', base_url: url, model: 'anthropic.claude-3-5-sonnet-20241022-v2:0', region: 'us-east-1' }),
    serve: (standIn: StandIn, stream: boolean) =>
      bedrockRoute(standIn, stream ? { stream: eventStreamReply(BEDROCK_TOOL_STREAM) } : { converse: jsonReply(TOOL_RESPONSE) }),
    streamedCalls: [
      ['top_song', { sign: 'WZPZ' }],
      ['top_song', { sign: 'WKRP' }],
    ],
    completedCall: ['top_song', { sign: 'WZPZ' }],
  },
])('the openai client against the $name adapter', ({ protocol, provider, route, serve, streamedCalls, completedCall }) => {
  const standIn = new StandIn(protocol);
  let server: Server;
  let client: OpenAI;

  beforeAll(async () => {
    const upstream = await standIn.start();
    const relayed = await relay(provider, route(upstream));
    server = relayed.server;
    client = new OpenAI({ baseURL: relayed.url, apiKey: 'it_test', maxRetries: 0 });
  });
  afterAll(async () => {
    await standIn.stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('creates a completion with tool calls', async () => {
    serve(standIn, false);
    const completion = await client.chat.completions.create({ model: 'claude-3-5-sonnet-20241022', messages: [{ role: 'user', content: 'Weather?' }], tools: TOOLS });
    const call = completion.choices[0].message.tool_calls?.[0];
    expect(completion.choices[0].finish_reason).toBe('tool_calls');
    expect(call?.type === 'function' ? [call.function.name, JSON.parse(call.function.arguments)] : undefined).toEqual(completedCall);
  });

  it('streams tool calls that the client assembles into whole calls', async () => {
    serve(standIn, true);
    const stream = client.chat.completions.stream({
      model: 'claude-3-5-sonnet-20241022',
      messages: [{ role: 'user', content: 'Weather?' }],
      tools: TOOLS,
      stream_options: { include_usage: true },
    });
    const final = await stream.finalChatCompletion();
    const calls = final.choices[0].message.tool_calls ?? [];
    expect(final.choices[0].finish_reason).toBe('tool_calls');
    expect(calls.map((c) => (c.type === 'function' ? [c.function.name, JSON.parse(c.function.arguments)] : undefined))).toEqual(streamedCalls);
    expect(calls.every((c) => c.id.length > 0)).toBe(true);
    expect(final.choices[0].message.role).toBe('assistant');
    expect(final.usage?.completion_tokens).toBeGreaterThan(0);
  });
});
