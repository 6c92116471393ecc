import { GatewayError } from '../../../lambda/contract/errors';
import type { ChatCompletionChunk } from '../../../lambda/contract/openai';
import type { ProviderCall } from '../../../lambda/providers/types';
import { validateChunk, validateCompletion } from '../../support/openai-schema';
import { chatView, collect, providerCall, StandIn, thrown } from '../stand-in';
import { errorReply, eventStreamReply, exceptionFrame, jsonReply, route, testBedrockProvider } from './stand-in';
import { CACHED_STREAM, jsonModeStream, stopStream, TEXT_RESPONSE, TEXT_STREAM, TOOL_RESPONSE, TOOL_STREAM } from './transcripts';

const MODEL_ID = 'anthropic.claude-3-5-sonnet-20241022-v2:0';
// The SDK's Bedrock client speaks HTTP/2, so the stand-in does too.
const standIn = new StandIn('h2c');
let endpoint = '';
const provider = chatView(testBedrockProvider());
const TOOLS = [{ type: 'function', function: { name: 'top_song', parameters: { type: 'object', properties: { sign: { type: 'string' } }, required: ['sign'] } } }];

beforeAll(async () => {
  endpoint = await standIn.start();
});
afterAll(() => standIn.stop());

function call(body: Record<string, unknown>, options: Parameters<typeof providerCall>[2] = {}): ProviderCall {
  return providerCall(
    { messages: [{ role: 'user', content: 'Hi' }], ...body },
    { provider: 'bedrock', base_url: endpoint, model: MODEL_ID, region: 'us-east-1' },
    options,
  );
}

async function streamChunks(body: Record<string, unknown> = {}): Promise<ChatCompletionChunk[]> {
  const chunks = await collect(await provider.stream(call({ stream: true, ...body })));
  for (const chunk of chunks) validateChunk(chunk);
  return chunks;
}

const deltas = (chunks: ChatCompletionChunk[]) => chunks.filter((c) => c.choices.length > 0).map((c) => c.choices[0].delta);
const toolDeltas = (chunks: ChatCompletionChunk[]) => deltas(chunks).flatMap((d) => d.tool_calls ?? []);

describe('bedrock provider: the upstream call', () => {
  it('calls Converse at /model/{modelId}/converse, signed with SigV4, in the route’s region', async () => {
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    await provider.complete(call({ max_tokens: 40 }));
    const request = standIn.requests[standIn.requests.length - 1];
    expect(request.method).toBe('POST');
    expect(decodeURIComponent(request.path)).toBe(`/model/${MODEL_ID}/converse`);
    expect(request.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDTESTSTANDIN\/\d{8}\/us-east-1\/bedrock\/aws4_request/);
    expect(standIn.lastJson()).toEqual({ messages: [{ role: 'user', content: [{ text: 'Hi' }] }], inferenceConfig: { maxTokens: 40 } });
  });

  it('calls ConverseStream at /model/{modelId}/converse-stream', async () => {
    route(standIn, { stream: eventStreamReply(TEXT_STREAM) });
    await streamChunks();
    expect(decodeURIComponent(standIn.requests[standIn.requests.length - 1].path)).toBe(`/model/${MODEL_ID}/converse-stream`);
  });

  it('bug: tools never sent to Bedrock — tools and tool choice reach the upstream as toolConfig', async () => {
    route(standIn, { converse: jsonReply(TOOL_RESPONSE), stream: eventStreamReply(TOOL_STREAM) });
    const expected = {
      tools: [{ toolSpec: { name: 'top_song', inputSchema: { json: TOOLS[0].function.parameters } } }],
      toolChoice: { any: {} },
    };
    await provider.complete(call({ tools: TOOLS, tool_choice: 'required' }));
    expect(standIn.lastJson().toolConfig).toEqual(expected);
    await streamChunks({ tools: TOOLS, tool_choice: 'required' });
    expect(standIn.lastJson().toolConfig).toEqual(expected);
  });
});

describe('bedrock provider: Converse answers → ChatCompletion', () => {
  it('maps a text answer with usage including cache reads and writes', async () => {
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    const completion = await provider.complete(call({}));
    validateCompletion(completion);
    expect(completion.choices[0]).toMatchObject({ finish_reason: 'stop', message: { role: 'assistant', content: 'Hi! I am Claude on Bedrock.' } });
    expect(completion.model).toBe(MODEL_ID);
    expect(completion.usage).toEqual({ prompt_tokens: 3195, completion_tokens: 503, total_tokens: 3698, prompt_tokens_details: { cached_tokens: 1000 } });
  });

  it('maps toolUse blocks to tool_calls', async () => {
    route(standIn, { converse: jsonReply(TOOL_RESPONSE) });
    const completion = await provider.complete(call({ tools: TOOLS }));
    validateCompletion(completion);
    expect(completion.choices[0].finish_reason).toBe('tool_calls');
    expect(completion.choices[0].message.content).toBe('Checking the charts.');
    expect(completion.choices[0].message.tool_calls).toEqual([
      { id: 'tooluse_hbTgdi0CSLq_hM4P8csZJA', type: 'function', function: { name: 'top_song', arguments: '{"sign":"WZPZ"}' } },
    ]);
  });

  it('returns the forced JSON tool input as the message content in JSON mode', async () => {
    route(standIn, {
      converse: jsonReply({ ...TOOL_RESPONSE, output: { message: { role: 'assistant', content: [{ toolUse: { toolUseId: 't', name: 'json_object', input: { answer: 42 } } }] } } }),
    });
    const completion = await provider.complete(call({ response_format: { type: 'json_object' } }));
    validateCompletion(completion);
    expect(completion.choices[0].message.content).toBe('{"answer":42}');
    expect(completion.choices[0].finish_reason).toBe('stop');
  });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['content_filtered', 'content_filter'],
    ['guardrail_intervened', 'content_filter'],
  ])('maps stopReason %s to finish_reason %s', async (stopReason, finishReason) => {
    route(standIn, { converse: jsonReply({ ...TEXT_RESPONSE, stopReason }) });
    const completion = await provider.complete(call({}));
    validateCompletion(completion);
    expect(completion.choices[0].finish_reason).toBe(finishReason);
  });
});

describe('bedrock provider: Claude thinking from reasoning_effort', () => {
  it('answers with the text in content and the thinking in reasoning_content', async () => {
    route(standIn, {
      converse: jsonReply({ ...TEXT_RESPONSE, output: { message: { role: 'assistant', content: [{ reasoningContent: { reasoningText: { text: 'Let me think.', signature: 'sig' } } }, { text: 'Hi! I am Claude on Bedrock.' }] } } }),
    });
    const completion = await provider.complete(call({ reasoning_effort: 'low', max_tokens: 4000 }));
    expect(standIn.lastJson()).toMatchObject({ additionalModelRequestFields: { thinking: { type: 'enabled', budget_tokens: 1024 } } });
    validateCompletion(completion);
    expect(completion.choices[0].message.content).toBe('Hi! I am Claude on Bedrock.');

    route(standIn, {
      stream: eventStreamReply([
        TEXT_STREAM[0],
        ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: 'Let me think.' } } }],
        ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { signature: 'sig' } } }],
        ['contentBlockStop', { contentBlockIndex: 0 }],
        ...TEXT_STREAM.slice(1).map(([event, payload]) => [event, 'contentBlockIndex' in payload ? { ...payload, contentBlockIndex: 1 } : payload] as (typeof TEXT_STREAM)[number]),
      ]),
    });
    const chunks = await streamChunks({ reasoning_effort: 'low', max_tokens: 4000 });
    expect(deltas(chunks).map((d) => d.content ?? '').join('')).toBe('Hello!');
    // The thinking reaches a Chat client in the extension fields (issue 18: nothing lost), never in `content`.
    expect(deltas(chunks).map((d) => (d as { reasoning_content?: string }).reasoning_content ?? '').join('')).toBe('Let me think.');
  });
});

describe('bedrock provider: ConverseStream events → chunks', () => {
  it('maps a text stream chunk by chunk', async () => {
    route(standIn, { stream: eventStreamReply(TEXT_STREAM) });
    const chunks = await streamChunks();
    expect(chunks.map((c) => [c.choices[0]?.delta ?? null, c.choices[0]?.finish_reason ?? null, c.usage ?? null])).toEqual([
      [{ role: 'assistant', content: '' }, null, null],
      [{ content: 'Hello' }, null, null],
      [{ content: '!' }, null, null],
      [{}, 'stop', null],
      [null, null, { prompt_tokens: 25, completion_tokens: 15, total_tokens: 40, prompt_tokens_details: { cached_tokens: 0 } }],
    ]);
    expect(chunks[0].id).toBe('chatcmpl-b7f1c6a2-0000-4000-8000-000000000001');
  });

  it('maps text then two tool calls chunk by chunk', async () => {
    route(standIn, { stream: eventStreamReply(TOOL_STREAM) });
    const chunks = await streamChunks({ tools: TOOLS });
    expect(chunks.map((c) => c.choices[0]?.delta ?? c.usage)).toEqual([
      { role: 'assistant', content: '' },
      { content: 'Let me look up both.' },
      { tool_calls: [{ index: 0, id: 'tooluse_kZJMlvQmRJ6eAyJE5GIl7Q', type: 'function', function: { name: 'top_song', arguments: '' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"sign": ' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '"WZPZ"}' } }] },
      { tool_calls: [{ index: 1, id: 'tooluse_Qa1B2c3D4e5F6g7H8i9J0k', type: 'function', function: { name: 'top_song', arguments: '' } }] },
      { tool_calls: [{ index: 1, function: { arguments: '{"sign": "WKRP"}' } }] },
      {},
      { prompt_tokens: 375, completion_tokens: 65, total_tokens: 440, prompt_tokens_details: { cached_tokens: 0 } },
    ]);
    expect(chunks[chunks.length - 2].choices[0].finish_reason).toBe('tool_calls');
  });

  it('streams JSON mode as content and ends with stop', async () => {
    route(standIn, { stream: eventStreamReply(jsonModeStream('json_object')) });
    const chunks = await streamChunks({ response_format: { type: 'json_object' } });
    expect(toolDeltas(chunks)).toEqual([]);
    expect(deltas(chunks).map((d) => d.content ?? '').join('')).toBe('{"answer": 42}');
    expect(chunks[chunks.length - 2].choices[0].finish_reason).toBe('stop');
  });

  it('puts cache reads in cached_tokens and counts cache writes as prompt tokens', async () => {
    route(standIn, { stream: eventStreamReply(CACHED_STREAM) });
    const chunks = await streamChunks();
    expect(chunks[chunks.length - 1].usage).toEqual({ prompt_tokens: 2010, completion_tokens: 7, total_tokens: 2017, prompt_tokens_details: { cached_tokens: 1800 } });
  });
});

describe('bedrock provider: the bugs other gateways ship', () => {
  it('bug: tool-call chunks without id or name — each call’s first chunk carries id, type and name', async () => {
    route(standIn, { stream: eventStreamReply(TOOL_STREAM) });
    const calls = toolDeltas(await streamChunks({ tools: TOOLS }));
    for (const index of [0, 1]) {
      expect(calls.find((t) => t.index === index)).toMatchObject({ id: expect.stringMatching(/^tooluse_/), type: 'function', function: { name: 'top_song' } });
    }
  });

  it('bug: wrong index — tool calls are numbered 0, 1 in order, not by contentBlockIndex', async () => {
    route(standIn, { stream: eventStreamReply(TOOL_STREAM) });
    expect(toolDeltas(await streamChunks({ tools: TOOLS })).map((t) => t.index)).toEqual([0, 0, 0, 1, 1]);
  });

  it('bug: tool name lost when text and a tool call arrive together — the name survives right after text', async () => {
    route(standIn, {
      stream: eventStreamReply([
        ['messageStart', { role: 'assistant' }],
        ['contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'One sec.' } }],
        ['contentBlockStart', { contentBlockIndex: 1, start: { toolUse: { toolUseId: 'tooluse_x', name: 'top_song' } } }],
        ['contentBlockStop', { contentBlockIndex: 0 }],
        ['contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '{"sign":"KEXP"}' } } }],
        ['contentBlockStop', { contentBlockIndex: 1 }],
        ['messageStop', { stopReason: 'tool_use' }],
        ['metadata', { usage: { inputTokens: 1, outputTokens: 1, totalTokens: 2 }, metrics: { latencyMs: 1 } }],
      ]),
    });
    const chunks = await streamChunks({ tools: TOOLS });
    expect(deltas(chunks).map((d) => d.content ?? '').join('')).toBe('One sec.');
    expect(toolDeltas(chunks)[0]).toEqual({ index: 0, id: 'tooluse_x', type: 'function', function: { name: 'top_song', arguments: '' } });
  });

  it('bug: role missing from the first chunk — the first chunk is the assistant role', async () => {
    route(standIn, { stream: eventStreamReply(TOOL_STREAM) });
    const chunks = await streamChunks({ tools: TOOLS });
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.slice(1).filter((c) => c.choices[0]?.delta.role !== undefined)).toEqual([]);
  });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['content_filtered', 'content_filter'],
    ['guardrail_intervened', 'content_filter'],
  ])("bug: finish_reason 'end_turn' leaking — stopReason %s streams as %s", async (stopReason, finishReason) => {
    route(standIn, { stream: eventStreamReply(stopStream(stopReason)) });
    const reasons = (await streamChunks()).map((c) => c.choices[0]?.finish_reason).filter((r) => r != null);
    expect(reasons).toEqual([finishReason]);
  });

  it('bug: usage summed twice — one usage chunk, from the metadata event', async () => {
    route(standIn, { stream: eventStreamReply(TEXT_STREAM) });
    const usages = (await streamChunks()).filter((c) => c.usage);
    expect(usages).toHaveLength(1);
    expect(usages[0].usage).toMatchObject({ prompt_tokens: 25, completion_tokens: 15, total_tokens: 40 });
  });
});

describe('bedrock provider: errors', () => {
  it.each([
    [429, 'ThrottlingException', 503, 'server_overloaded', true],
    [503, 'ServiceUnavailableException', 503, 'server_overloaded', true],
    [429, 'ModelNotReadyException', 503, 'server_overloaded', true],
    [400, 'ValidationException', 400, 'invalid_value', false],
    [403, 'AccessDeniedException', 502, 'upstream_error', true],
    [404, 'ResourceNotFoundException', 502, 'upstream_error', true],
    [500, 'InternalServerException', 502, 'upstream_error', true],
    [408, 'ModelTimeoutException', 504, 'upstream_timeout', true],
  ] as const)('maps HTTP %i %s to %i %s, fallback %s', async (status, errorType, expected, code, fallback) => {
    const reply = errorReply(status, errorType, `${errorType} from the stand-in`);
    route(standIn, { converse: reply, stream: reply });
    for (const attempt of [() => provider.complete(call({})), () => provider.stream(call({ stream: true }))]) {
      const err = await thrown(attempt);
      expect(err).toBeInstanceOf(GatewayError);
      expect(err).toMatchObject({ status: expected, code, fallback });
    }
  });

  // Bedrock's own words for an account that has not set a model up (docs/DEPLOY.md, "Amazon Bedrock models").
  it.each([
    [
      'the AWS Marketplace subscription failed',
      403,
      'AccessDeniedException',
      'Model access is denied due to IAM user or service role is not authorized to perform the required AWS Marketplace actions (aws-marketplace:ViewSubscriptions, aws-marketplace:Subscribe) to enable access to this model. Refer to the Amazon Bedrock documentation for further details. Your AWS Marketplace subscription for this model cannot be completed at this time. If you recently fixed this issue, try again after 15 minutes.',
      /has not enabled 'anthropic\.claude-3-5-sonnet-20241022-v2:0' in us-east-1 for the gateway's AWS account yet.*first use.*AWS Marketplace subscription.*use case form.*docs\/DEPLOY\.md/,
    ],
    [
      "Anthropic's use case form is missing",
      404,
      'ResourceNotFoundException',
      'Model use case details have not been submitted for this account. Fill out the Anthropic use case details form before using the model. If you have already filled out the form, try again in 15 minutes.',
      /has not enabled .* first use .*use case form.*docs\/DEPLOY\.md.*retry after about 15 minutes/,
    ],
    [
      'the model needs an inference profile',
      400,
      'ValidationException',
      'Invocation of model ID anthropic.claude-3-5-sonnet-20241022-v2:0 with on-demand throughput isn\u2019t supported. Retry your request with the ID or ARN of an inference profile that contains this model.',
      /only through an inference profile.*'us\.anthropic\.claude-3-5-sonnet-20241022-v2:0'/,
    ],
    [
      'the model is legacy',
      404,
      'ResourceNotFoundException',
      'Access denied. This Model is marked by provider as Legacy and you have not been actively using the model in the last 15 days. Please upgrade to an active model on Amazon Bedrock',
      /no longer serves .*current one in the catalog/,
    ],
    [
      "the function's role lacks the grant",
      403,
      'AccessDeniedException',
      'User: arn:aws:sts::111122223333:assumed-role/Itapi-Chat/fn is not authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/x because no identity-based policy allows the bedrock:InvokeModel action',
      /IAM role may not invoke .*grant/,
    ],
  ] as const)('tells the client what the operator must do when %s: 502, and the next route is tried', async (_case, status, errorType, bedrockMessage, said) => {
    const reply = errorReply(status, errorType, bedrockMessage);
    route(standIn, { converse: reply, stream: reply });
    for (const attempt of [() => provider.complete(call({})), () => provider.stream(call({ stream: true }))]) {
      const err = await thrown(attempt);
      expect(err).toMatchObject({ status: 502, code: 'upstream_error', fallback: true });
      expect((err as GatewayError).message).toMatch(said);
      // Bedrock's own words follow, for the operator reading the client's report.
      expect((err as GatewayError).message).toContain(bedrockMessage.slice(0, 40));
    }
  });

  it("passes Bedrock's message on a ValidationException", async () => {
    route(standIn, { converse: errorReply(400, 'ValidationException', 'The model returned the following errors: temperature: range: 0..1') });
    const err = await thrown(() => provider.complete(call({})));
    expect((err as GatewayError).message).toBe('The model returned the following errors: temperature: range: 0..1');
  });

  it('falls back when a throttling exception is the first stream event', async () => {
    route(standIn, { stream: eventStreamReply([], [exceptionFrame('throttlingException', 'Too many requests, please wait before trying again.')]) });
    const err = await thrown(() => provider.stream(call({ stream: true })));
    expect(err).toMatchObject({ status: 503, code: 'server_overloaded', fallback: true });
  });

  it('throws a GatewayError when an exception event arrives mid-stream', async () => {
    route(standIn, {
      stream: eventStreamReply(TEXT_STREAM.slice(0, 2), [exceptionFrame('modelStreamErrorException', 'The model stream broke.')]),
    });
    const seen: ChatCompletionChunk[] = [];
    const err = await thrown(async () => {
      for await (const chunk of await provider.stream(call({ stream: true }))) seen.push(chunk);
    });
    expect(seen.map((c) => c.choices[0].delta.content)).toEqual(['', 'Hello']);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(502);
  });

  it('throws when the stream ends before messageStop', async () => {
    route(standIn, { stream: eventStreamReply(TEXT_STREAM.slice(0, 3)) });
    const stream = await provider.stream(call({ stream: true }));
    const err = await thrown(() => collect(stream));
    expect(err).toMatchObject({ status: 502 });
  });

  it('answers 504 with fallback when Bedrock sends no headers in time', async () => {
    standIn.handler = () => ({ hang: 'before_headers' });
    const err = await thrown(() => provider.stream(call({ stream: true }, { timeouts: { firstByteMs: 150 } })));
    expect(err).toMatchObject({ status: 504, code: 'upstream_timeout', fallback: true });
    const errJson = await thrown(() => provider.complete(call({}, { timeouts: { totalMs: 150 } })));
    expect(errJson).toMatchObject({ status: 504, code: 'upstream_timeout', fallback: true });
  });

  it('throws 504 when the stream goes silent for longer than the idle timeout', async () => {
    standIn.handler = () => ({ ...eventStreamReply(TEXT_STREAM.slice(0, 2)), hang: 'after_parts' });
    const stream = await provider.stream(call({ stream: true }, { timeouts: { idleMs: 150 } }));
    const err = await thrown(() => collect(stream));
    expect(err).toMatchObject({ status: 504, code: 'upstream_timeout' });
  });

  it('does not cut a stream that outlives the first-byte timeout', async () => {
    route(standIn, { stream: eventStreamReply(TEXT_STREAM, [], 40) });
    const chunks = await collect(await provider.stream(call({ stream: true }, { timeouts: { firstByteMs: 100, idleMs: 1000 } })));
    expect(chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean)).toEqual(['stop']);
  });

  it('answers 400 before calling Bedrock for an http image URL', async () => {
    const before = standIn.requests.length;
    const err = await thrown(() => provider.complete(call({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x.test/a.png' } }] }] })));
    expect(err).toMatchObject({ status: 400, param: 'messages[0].content[0]' });
    expect(standIn.requests.length).toBe(before);
  });
});

describe('bedrock provider: clients', () => {
  it('reuses one client per region and endpoint, and takes the region from AWS_REGION when the route names none', async () => {
    const created: string[] = [];
    const { bedrockAnswerProvider } = await import('../../../lambda/providers/bedrock');
    const { testBedrockClient } = await import('./stand-in');
    const counting = chatView(bedrockAnswerProvider({
      createClient: (settings) => {
        created.push(`${settings.region} ${settings.endpoint}`);
        return testBedrockClient(settings);
      },
    }));
    route(standIn, { converse: jsonReply(TEXT_RESPONSE) });
    const previous = process.env.AWS_REGION;
    process.env.AWS_REGION = 'eu-west-3';
    try {
      await counting.complete(call({}));
      await counting.complete(call({}));
      await counting.complete(providerCall({ messages: [{ role: 'user', content: 'Hi' }] }, { provider: 'bedrock', base_url: endpoint, model: MODEL_ID }));
    } finally {
      if (previous === undefined) delete process.env.AWS_REGION;
      else process.env.AWS_REGION = previous;
    }
    expect(created).toEqual([`us-east-1 ${endpoint}`, `eu-west-3 ${endpoint}`]);
    expect(standIn.requests[standIn.requests.length - 1].headers.authorization).toContain('/eu-west-3/bedrock/');
  });
});
