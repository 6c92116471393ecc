import { tableEnv } from '../../lambda/store/tables';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createStores } from '../../lambda/runtime';
import { emfMetrics } from '../../lambda/observability/metrics';
import { DEFAULT_METRICS_NAMESPACE, SERVICE_DIMENSION, type ItapiCatalog } from '../../lib';
import { bundleChat } from '../../scripts/bundle';
import { cdkJsonContext, synthesizeItapi } from '../infra/synth-itapi';
import { errorReply, route as bedrockRoute } from '../providers/bedrock/stand-in';
import { StandIn } from '../providers/stand-in';
import { functionUrlEvent, installAwsLambdaGlobal, ResponseStreamRecorder } from '../support/awslambda-standin';
import { fundedAccount, mintKey } from '../support/accounts';
import { createTestTables } from '../support/dynamo';
import { DynamoFaults } from '../support/dynamo-faults';
import { emfDataPoints, pointsOf, type EmfDataPoint } from '../support/emf';
import { completionBody, startUpstream, streamEvents } from '../support/upstream';

/**
 * Metrics that alarms can see (issue 11, item 8): the bundled chat handler, under a stand-in for
 * the Lambda runtime, driven through each kind of failure; its EMF lines parsed as CloudWatch
 * would, and every alarm the stack synthesizes on runtime metrics shown to receive data points.
 */

type Handler = (event: unknown, stream: ResponseStreamRecorder, context: unknown) => Promise<void>;

const NS = DEFAULT_METRICS_NAMESPACE;
const PRICING = { input_per_mtok: 1, output_per_mtok: 2 };
const LIMITS = { context_window: 100_000, max_output_tokens: 1000 };

let handler: Handler;
let faults: DynamoFaults;
let openai: Awaited<ReturnType<typeof startUpstream>>;
let anthropic: Awaited<ReturnType<typeof startUpstream>>;
const bedrock = new StandIn('h2c');
let catalog: ItapiCatalog;
const keys: Record<'rich' | 'poor' | 'capped' | 'limited' | 'thin', string> = { rich: '', poor: '', capped: '', limited: '', thin: '' };
let stores: ReturnType<typeof createStores>;
let tableNames: Awaited<ReturnType<typeof createTestTables>>['tables'];
let dynamo: Awaited<ReturnType<typeof createTestTables>>['client'];

beforeAll(async () => {
  openai = await startUpstream((req, body, res) => {
    if (body.model === 'broken') {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'boom', type: 'server_error' } }));
    } else if (body.model === 'overrun') {
      // A provider that ignores the output limit it was sent.
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, 'long', { prompt_tokens: 10, completion_tokens: 1_000_000, total_tokens: 1_000_010 })));
    } else if (body.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (const event of streamEvents(body.model, ['one ', 'two'])) res.write(event);
      res.end();
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, 'fine')));
    }
  });
  anthropic = await startUpstream((_req, _body, res) => {
    res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'error', error: { type: 'api_error', message: 'Internal server error' } }));
  });
  const bedrockUrl = await bedrock.start();
  bedrockRoute(bedrock, { converse: errorReply(500, 'InternalServerException', 'The server encountered an error.'), stream: errorReply(500, 'InternalServerException', 'The server encountered an error.') });

  const model = (routes: ItapiCatalog['models'][string]['routes']) => ({ owned_by: 'test', pricing: PRICING, ...LIMITS, routes });
  catalog = {
    models: {
      'works': model([{ provider: 'openai-compatible', base_url: openai.url, model: 'works' }]),
      // Shuts down in 10 days: the daily catalog check counts it near its shutdown.
      'retiring': model([{ provider: 'openai-compatible', base_url: openai.url, model: 'retiring', shutdown_date: new Date(Date.now() + 10 * 86_400_000).toISOString().slice(0, 10), successor: 'works' }]),
      'overrun': model([{ provider: 'openai-compatible', base_url: openai.url, model: 'overrun' }]),
      'openai-down': model([{ provider: 'openai-compatible', base_url: openai.url, model: 'broken' }]),
      'anthropic-down': model([{ provider: 'anthropic', base_url: anthropic.url.replace(/\/v1$/, ''), model: 'claude-sonnet-4-5' }]),
      'bedrock-down': model([{ provider: 'bedrock', base_url: bedrockUrl, region: 'us-east-1', model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0' }]),
    },
  };

  const { client, tables } = await createTestTables();
  dynamo = client;
  tableNames = tables;
  stores = createStores(client, tables);
  await stores.tiers.seed();
  const funded = async (accountId: string, creditsMicroUsd: number, limits: { rpm?: number; tpm?: number } = {}) =>
    (await fundedAccount(stores, { accountId, creditsMicroUsd, ...limits })).key;
  keys.rich = await funded('rich', 5_000_000);
  keys.poor = await funded('poor', 0);
  keys.capped = (await mintKey(stores, 'rich', { fields: { models: ['works'] } })).key;
  keys.limited = await funded('limited', 5_000_000, { rpm: 1, tpm: 1_000_000 });
  keys.thin = await funded('thin', 50_000);

  faults = new DynamoFaults(process.env.ITAPI_TEST_DYNAMODB_ENDPOINT!);
  const dir = mkdtempSync(join(tmpdir(), 'itapi-metrics-'));
  const catalogFile = join(dir, 'catalog.json');
  writeFileSync(catalogFile, JSON.stringify(catalog));
  Object.assign(process.env, {
    ITAPI_DYNAMODB_ENDPOINT: await faults.start(),
    ...tableEnv(tables),
    ITAPI_SWEEP_GRACE_S: '0.01',
    ITAPI_MODELS: catalogFile,
    ITAPI_METRICS_NAMESPACE: NS,
    POWERTOOLS_METRICS_DISABLED: 'false',
    // The Bedrock client's default credential chain reads these, and never probes instance metadata.
    AWS_ACCESS_KEY_ID: 'AKIDMETRICSTEST',
    AWS_SECRET_ACCESS_KEY: 'metrics-test-secret',
    AWS_REGION: 'us-east-1',
  });
  installAwsLambdaGlobal();
  const built = await bundleChat(join(dir, 'bundle'));
  process.env.ITAPI_TOKENIZER_MODULE = built.tokenizerFile;
  handler = require(join(dirname(built.handlerFile), 'index.js')).handler;
}, 120_000);

afterAll(async () => {
  await Promise.all([faults.stop(), openai.close(), anthropic.close(), bedrock.stop()]);
});

/** Invokes the handler and returns the answer's status and the EMF data points its invocation wrote. */
async function invoke(key: string | undefined, body: unknown): Promise<{ status: number; points: EmfDataPoint[]; order: string[] }> {
  const lines: string[] = [];
  /** What was written, in order: each EMF line's metric names, and `body` for each write of the answer's SSE bytes. */
  const order: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    const written = String(chunk).split('\n').filter(Boolean);
    lines.push(...written);
    for (const line of written) order.push(emfDataPoints([line]).map((p) => p.metric).join(','));
    return true;
  });
  try {
    const stream = new ResponseStreamRecorder();
    const write = stream._write.bind(stream);
    stream._write = (chunk, encoding, callback) => {
      if (Buffer.from(chunk).includes('data:')) order.push('body');
      write(chunk, encoding, callback);
    };
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) };
    await handler(functionUrlEvent('POST', '/v1/chat/completions', headers, typeof body === 'string' ? body : JSON.stringify(body)), stream, { awsRequestId: 'metrics' });
    await stream.finished;
    return { status: stream.parse().prelude.statusCode, points: emfDataPoints(lines), order };
  } finally {
    spy.mockRestore();
  }
}

const ask = (model: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 10, ...extra });
const service = SERVICE_DIMENSION;
const value = (points: EmfDataPoint[], metric: string, dimensions: Record<string, string>) => pointsOf(points, NS, metric, { ...service, ...dimensions }).map((p) => p.value);

/** Everything every invocation wrote, for the cross-check against the synthesized alarms. */
const allPoints: EmfDataPoint[] = [];

type Case = readonly [name: string, key: () => string, body: unknown, status: number, errorType: string, serverError: boolean];
describe.each<Case>([
  ['400 invalid_request_error', () => keys.rich, ask('works', { temperature: 7 }), 400, 'invalid_request_error', false],
  ['400 for bad JSON', () => keys.rich, '{"model":', 400, 'invalid_request_error', false],
  ['401 authentication_error', () => 'it_00000000000000000000000000000000000000ZZ', ask('works'), 401, 'authentication_error', false],
  ['402 insufficient_quota', () => keys.poor, ask('works'), 402, 'insufficient_quota', false],
  ['403 permission_error', () => keys.capped, ask('openai-down'), 403, 'permission_error', false],
  ['404 model_not_found', () => keys.rich, ask('no-such-model'), 404, 'invalid_request_error', false],
  ['502 from an upstream failure', () => keys.rich, ask('openai-down'), 502, 'api_error', true],
])('a %s', (_name, key, body, status, errorType, serverError) => {
  it('emits one request record with its error type and 5xx flag', async () => {
    const { status: got, points } = await invoke(key(), body);
    allPoints.push(...points);
    expect(got).toBe(status);
    expect(value(points, 'Requests', {})).toEqual([1]);
    expect(value(points, 'Http5xx', {})).toEqual([serverError ? 1 : 0]);
    expect(value(points, 'Latency', {})).toHaveLength(1);
    expect(value(points, 'Errors', { ErrorType: errorType })).toEqual([1]);
  });
});

it('a 429 from the rate limit emits Errors{rate_limit_exceeded}', async () => {
  const first = await invoke(keys.limited, ask('works'));
  expect(first.status).toBe(200);
  const second = await invoke(keys.limited, ask('works'));
  allPoints.push(...first.points, ...second.points);
  expect(second.status).toBe(429);
  expect(value(second.points, 'Requests', {})).toEqual([1]);
  expect(value(second.points, 'Errors', { ErrorType: 'rate_limit_exceeded' })).toEqual([1]);
  expect(value(second.points, 'Http5xx', {})).toEqual([0]);
});

it('a 503 raised during admission (DynamoDB throttling) counts as a 5xx and as server_overloaded', async () => {
  faults.failing = new Set(['UpdateItem', 'TransactWriteItems']);
  let answer: Awaited<ReturnType<typeof invoke>>;
  try {
    answer = await invoke(keys.rich, ask('works'));
  } finally {
    faults.failing = new Set();
  }
  allPoints.push(...answer.points);
  expect(faults.refused).toBeGreaterThan(0);
  expect(answer.status).toBe(503);
  expect(value(answer.points, 'Http5xx', {})).toEqual([1]);
  expect(value(answer.points, 'Errors', { ErrorType: 'server_overloaded' })).toEqual([1]);
  // Refused before any upstream was called.
  expect(answer.points.filter((p) => p.metric === 'UpstreamRequests')).toEqual([]);
});

describe.each([
  ['openai-compatible', 'openai-down', false],
  ['anthropic', 'anthropic-down', false],
  ['bedrock', 'bedrock-down', false],
  ['bedrock', 'bedrock-down', true],
] as const)('an upstream failure on %s (%s, stream %s)', (provider, model, stream) => {
  it('emits UpstreamRequests and UpstreamErrors under its own Provider, and a 5xx request', async () => {
    const { status, points } = await invoke(keys.rich, ask(model, { stream }));
    allPoints.push(...points);
    expect(status).toBe(502);
    expect(value(points, 'UpstreamRequests', { Provider: provider })).toEqual([1]);
    expect(value(points, 'UpstreamErrors', { Provider: provider })).toEqual([1]);
    expect(value(points, 'UpstreamLatency', { Provider: provider })).toHaveLength(1);
    expect(points.filter((p) => p.dimensions.Provider === 'none')).toEqual([]);
    expect(value(points, 'Http5xx', {})).toEqual([1]);
  });
});

it("writes an answered upstream call's metric after the stream's first bytes, not on the way to them (issue 22)", async () => {
  const { status, order } = await invoke(keys.rich, ask('works', { stream: true }));
  expect(status).toBe(200);
  const attempt = order.findIndex((metrics) => metrics.includes('UpstreamRequests'));
  expect(attempt).toBeGreaterThan(-1);
  expect(order.indexOf('body')).toBeGreaterThan(-1);
  expect(order.indexOf('body')).toBeLessThan(attempt);
});

it('a served stream emits a healthy upstream call, tokens, time to first token and cost', async () => {
  const { status, points } = await invoke(keys.rich, ask('works', { stream: true }));
  allPoints.push(...points);
  expect(status).toBe(200);
  expect(value(points, 'UpstreamRequests', { Provider: 'openai-compatible' })).toEqual([1]);
  expect(value(points, 'UpstreamErrors', { Provider: 'openai-compatible' })).toEqual([0]);
  expect(value(points, 'Http5xx', {})).toEqual([0]);
  expect(value(points, 'TimeToFirstToken', {})).toHaveLength(1);
  expect(value(points, 'PromptTokens', { Model: 'works', Provider: 'openai-compatible' })).toEqual([10]);
  expect(value(points, 'CostMicroUsd', { Model: 'works', Provider: 'openai-compatible' })).toHaveLength(1);
});

/** Captures the EMF lines `run` writes to stdout. */
async function emfOf(run: () => Promise<unknown>): Promise<EmfDataPoint[]> {
  const lines: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    return true;
  });
  try {
    await run();
  } finally {
    spy.mockRestore();
  }
  return emfDataPoints(lines);
}

it('usage beyond the hold that the balance cannot pay emits UnchargedMicroUsd', async () => {
  const { status, points } = await invoke(keys.thin, ask('overrun'));
  allPoints.push(...points);
  expect(status).toBe(200);
  const uncharged = value(points, 'UnchargedMicroUsd', {});
  expect(uncharged).toHaveLength(1);
  expect(uncharged[0]).toBeGreaterThan(0);
});

it('a hold the sweeper function settles as abandoned emits AbandonedHolds', async () => {
  // A hold left past its deadline, as by a chat function killed mid-stream.
  const { moneyOver, chatAdmission } = await import('../support/money');
  const { parseCatalog } = await import('../../lambda/catalog');
  const { parseChatCompletionRequest } = await import('../../lambda/contract/request');
  const entry = parseCatalog(catalog, 'metrics').get('works')!;
  const owner = (await stores.keys.listByAccount('rich'))[0];
  await moneyOver(stores, tableNames, Date.now, { maxRequestMs: 1 }).admission.admit(
    chatAdmission('req_metrics_abandoned', owner, entry, parseChatCompletionRequest(ask('works')), Date.now() - 1000),
  );
  let sweeper: { handler(event: unknown): Promise<unknown> } | undefined;
  jest.isolateModules(() => {
    sweeper = require('../../lambda/entry/sweeper-lambda');
  });
  const hold = (await stores.holds.ofAccount('rich')).find((h) => h.requestId === 'req_metrics_abandoned')!;
  const points = await emfOf(() => sweeper!.handler({ source: 'aws.events' }));
  allPoints.push(...points);
  expect(value(points, 'AbandonedHolds', {})).toEqual([1]);

  // Its own settlement, queued, arrives after the sweep: applied late, once.
  const { requestSettlement } = await import('../../lambda/money/settlement');
  const usage = { prompt_tokens: 10, completion_tokens: 50, total_tokens: 60 };
  const write = requestSettlement(hold, entry, { status: 'completed', httpStatus: 200, usage, completionText: '', latencyMs: 1, stream: false }, tableNames.keys);
  const late = await emfOf(() => sweeper!.handler({ Records: [{ eventSource: 'aws:sqs', messageId: 'late', body: JSON.stringify(write) }] }));
  allPoints.push(...late);
  expect(value(late, 'LateSettlements', {})).toEqual([1]);

  // A hold whose TTL removal's stream record was lost: the daily reconciliation reports its account.
  await moneyOver(stores, tableNames).admission.admit(chatAdmission('req_metrics_lost', owner, entry, parseChatCompletionRequest(ask('works')), Date.now()));
  expect((await stores.holds.ofAccount('rich')).map((h) => h.requestId)).toContain('req_metrics_lost');
  await dynamo.call('DeleteItem', { TableName: tableNames.holds, Key: { request_id: { S: 'req_metrics_lost' } } });
  const reconciled = await emfOf(() => sweeper!.handler({ action: 'reconcile' }));
  allPoints.push(...reconciled);
  expect(value(reconciled, 'HoldsMismatchedAccounts', {})).toEqual([1]);
});

it('writes one EMF line per request, every dimension set in it (TTFT, error, tokens), and none when disabled', async () => {
  const observation = {
    requestId: 'req_one_line', method: 'POST', path: '/v1/chat/completions', status: 400, errorType: 'invalid_request_error', errorCode: 'invalid_value',
    serverError: false, latencyMs: 12, admitted: true, model: 'm "quoted"', route: 'anthropic:0', timeToFirstTokenMs: 7,
    usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
  };
  const lines: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (lines.push(String(chunk)), true));
  try {
    emfMetrics(NS).request(observation);
  } finally {
    spy.mockRestore();
  }
  expect(lines).toHaveLength(1);
  const points = emfDataPoints(lines);
  expect(value(points, 'Requests', {})).toEqual([1]);
  expect(value(points, 'Latency', {})).toEqual([12]);
  expect(value(points, 'TimeToFirstToken', {})).toEqual([7]);
  expect(value(points, 'Errors', { ErrorType: 'invalid_request_error' })).toEqual([1]);
  expect(value(points, 'PromptTokens', { Model: 'm "quoted"', Provider: 'anthropic' })).toEqual([3]);
  expect(value(points, 'CompletionTokens', { Model: 'm "quoted"', Provider: 'anthropic' })).toEqual([4]);
  expect(JSON.parse(lines[0])).toMatchObject({ request_id: 'req_one_line', status: '400', error_code: 'invalid_value' });

  const before = process.env.POWERTOOLS_METRICS_DISABLED;
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  try {
    expect(await emfOf(async () => emfMetrics(NS).request(observation))).toEqual([]);
  } finally {
    if (before === undefined) delete process.env.POWERTOOLS_METRICS_DISABLED;
    else process.env.POWERTOOLS_METRICS_DISABLED = before;
  }
});

it('counts a paid Stripe event that credited nothing (the sink the console is given)', async () => {
  const points = await emfOf(async () => emfMetrics(NS).stripeEventIgnored!('currency eur'));
  allPoints.push(...points);
  expect(value(points, 'StripeEventsIgnored', {})).toEqual([1]);
});

it('the daily catalog check emits RoutesNearShutdown for a route 10 days from its shutdown', async () => {
  let sweeper: { handler(event: unknown): Promise<unknown> } | undefined;
  jest.isolateModules(() => {
    sweeper = require('../../lambda/entry/sweeper-lambda');
  });
  const points = await emfOf(() => sweeper!.handler({ itapi: 'catalog-check' }));
  allPoints.push(...points);
  expect(value(points, 'RoutesNearShutdown', {})).toEqual([1]);
  expect(value(points, 'RoutesPastShutdown', {})).toEqual([0]);
});

describe('every alarm the stack puts on runtime metrics', () => {
  it('reads metric names and dimensions the runtime emits, and its error metrics took non-zero values above', () => {
    const { json } = synthesizeItapi({ props: { catalog }, context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } });
    const alarms = Object.entries(json.Resources).filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm');
    type Stat = { Namespace: string; MetricName: string; Dimensions?: Array<{ Name: string; Value: string }> };
    const runtimeMetrics = alarms.flatMap(([id, r]) => {
      const p = r.Properties as { Namespace?: string; MetricName?: string; Dimensions?: Stat['Dimensions']; Metrics?: Array<{ MetricStat?: { Metric: Stat } }> };
      const stats: Stat[] = p.Metrics ? p.Metrics.flatMap((m) => (m.MetricStat ? [m.MetricStat.Metric] : [])) : [{ Namespace: p.Namespace!, MetricName: p.MetricName!, Dimensions: p.Dimensions }];
      return stats.filter((s) => s.Namespace === NS).map((s) => ({ alarm: id, ...s }));
    });
    // The gateway 5xx rate, one upstream error rate per provider of the catalog, abandoned holds, uncharged usage,
    // ignored Stripe events, routes near their shutdown, late settlements and the reconciliation's mismatched accounts.
    expect(new Set(runtimeMetrics.map((m) => m.alarm)).size).toBe(10);
    for (const m of runtimeMetrics) {
      const dimensions = Object.fromEntries((m.Dimensions ?? []).map((d) => [d.Name, d.Value]));
      const points = pointsOf(allPoints, m.Namespace, m.MetricName, dimensions);
      expect({ alarm: m.alarm, metric: m.MetricName, dimensions, points: points.length > 0 }).toEqual({ alarm: m.alarm, metric: m.MetricName, dimensions, points: true });
      if (/Errors|5xx|Abandoned|Uncharged|StripeEventsIgnored|NearShutdown|Late|Mismatched/.test(m.MetricName)) expect({ alarm: m.alarm, fired: points.some((p) => p.value > 0) }).toEqual({ alarm: m.alarm, fired: true });
    }
  }, 60_000);
});
