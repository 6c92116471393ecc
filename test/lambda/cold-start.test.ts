import OpenAI from 'openai';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { displayPrefix, generateApiKey, hashApiKey } from '../../lambda/auth/api-key';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { createStores } from '../../lambda/runtime';
import { tableEnv } from '../../lambda/store/tables';
import { startServer, type Server } from '../../bench/procs';
import { bundleChat, type ChatBundleFiles } from '../../scripts/bundle';
import { createTestTables, deleteTestTables, testDynamoEndpoint } from '../support/dynamo';
import { completionBody, startUpstream, streamEvents } from '../support/upstream';

/**
 * What the chat bundle loads at init, and when it loads the rest: the bundle as deployed, required
 * by a plain `node` under the runtime's stand-in (bench/lambda-host.cjs), driven over HTTP by the
 * openai SDK. Structure, not speed: the figures are the bench's (docs/BENCHMARKS.md, "Cold start").
 */
interface Invocation {
  streamEndMs: number;
  handlerMs: number;
  tokenizer: { atStreamEnd: boolean; atHandlerEnd: boolean };
}

let upstream: Awaited<ReturnType<typeof startUpstream>>;
let files: ChatBundleFiles;
let host: Server;
let key: string;
let catalogFile: string;
let tableNames: Awaited<ReturnType<typeof createTestTables>>['tables'];
let cleanUp: () => Promise<void>;

beforeAll(async () => {
  upstream = await startUpstream(async (_req, body, res) => {
    if (!body.stream) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, 'hello')));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const event of streamEvents(body.model, ['one ', 'two'])) res.write(event);
    res.end();
  });
  const { client, tables } = await createTestTables();
  tableNames = tables;
  cleanUp = () => deleteTestTables(client, tables);
  const stores = createStores(client, tables);
  await stores.tiers.seed();
  await stores.accounts.create({ id: 'cold-acct', name: 'cold', tier: 'pro', balanceMicroUsd: 0, status: 'active', createdAtMs: Date.now() });
  await stores.accounts.topUp('cold-acct', 5_000_000, 'initial');
  key = generateApiKey();
  await stores.keys.create({ keyHash: hashApiKey(key), keyId: 'key_cold', accountId: 'cold-acct', name: 'cold', prefix: displayPrefix(key), status: 'active', createdAtMs: Date.now(), accountTier: 'pro' });

  const workDir = mkdtempSync(join(tmpdir(), 'itapi-cold-'));
  files = await bundleChat(join(workDir, 'bundle'));
  catalogFile = join(workDir, 'catalog.json');
  const gpt = DEFAULT_CATALOG.models['gpt-4o'];
  // A Bedrock route nobody listens on: its call fails (502), after the provider's code has loaded.
  const bedrockRoute = { provider: 'bedrock', base_url: 'http://127.0.0.1:9', region: 'us-east-1', model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0' };
  writeFileSync(
    catalogFile,
    JSON.stringify({
      models: {
        'gpt-4o': { ...gpt, routes: [{ provider: 'openai-compatible', base_url: upstream.url, model: 'gpt-4o' }] },
        'via-bedrock': { ...gpt, owned_by: 'anthropic', tokenizer: undefined, routes: [bedrockRoute] },
      },
    }),
  );
  host = await startServer('lambda-host', join(__dirname, '../../bench/lambda-host.cjs'), {
    ts: false,
    env: {
      LAMBDA_HANDLER_FILE: files.handlerFile,
      ITAPI_TOKENIZER_MODULE: files.tokenizerFile,
      ITAPI_DYNAMODB_ENDPOINT: testDynamoEndpoint(),
      ...tableEnv(tables),
      ITAPI_MODELS: catalogFile,
      // As deployed: the queues are named, their SDK client is made on first use only.
      ITAPI_SETTLEMENT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/itapi-settlements',
      ITAPI_ALERT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/itapi-alerts',
      POWERTOOLS_METRICS_DISABLED: 'true',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      NODE_OPTIONS: '',
    },
  });
}, 120_000);

afterAll(async () => {
  await host?.stop();
  await upstream?.close();
  await cleanUp?.();
});

const invocations = async () => (await host.request<{ invocations: Invocation[] }>({ type: 'invocations' })).invocations;
const names = (list: string[]) => list.map((f) => basename(f));

describe('the chat bundle at a cold start', () => {
  it('requires index.js alone: no tokenizer, no console, no AWS SDK', () => {
    const loaded = host.info.loadedAtInit as string[];
    expect(names(loaded)).toContain('index.js');
    expect(names(loaded)).not.toEqual(expect.arrayContaining(['tokenizer.js']));
    expect(loaded.filter((f) => /tokenizer|console|@aws-sdk|gpt-tokenizer/.test(f))).toEqual([]);
    expect(loaded.filter((f) => f !== files.handlerFile && !f.endsWith('lambda-host.cjs') && !f.endsWith('cpu-probe.cjs'))).toEqual([]);
  });

  it('leaves node:zlib (stored responses) unloaded at init, and loads it on the first stored response', () => {
    // A fresh node: the host above has served requests by now. moduleLoadList names every built-in loaded so far.
    const probe = `globalThis.awslambda = { streamifyResponse: (h) => h, HttpResponseStream: { from: (s) => s } };
      require(process.argv[1]);
      const atInit = process.moduleLoadList.includes('NativeModule zlib');
      process.stdout.write(JSON.stringify({ atInit }));`;
    const env = { ...process.env, AWS_REGION: 'us-east-1', NODE_OPTIONS: '', ITAPI_SETTLEMENT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/q' };
    expect(JSON.parse(execFileSync(process.execPath, ['-e', probe, files.handlerFile], { env, encoding: 'utf8' }))).toEqual({ atInit: false });
  });

  it('answers the first request before loading the tokenizer, and loads it before the invocation ends', async () => {
    await invocations();
    const openai = new OpenAI({ baseURL: `${host.url}/v1`, apiKey: key, maxRetries: 0 });
    const first = await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello there, count me.' }], max_tokens: 10 });
    expect(first.choices[0].message.content).toBe('hello');
    await host.request({ type: 'drain' });
    const [invocation] = await invocations();
    expect(invocation.tokenizer).toEqual({ atStreamEnd: false, atHandlerEnd: true });
    expect(invocation.handlerMs).toBeGreaterThanOrEqual(invocation.streamEndMs);
    const { loaded } = await host.request<{ loaded: string[] }>({ type: 'loaded' });
    // o200k_base only: cl100k_base (embeddings) is a file of its own, loaded when an embeddings request asks for it.
    expect(names(loaded)).toContain('tokenizer.js');
    expect(names(loaded)).not.toContain('tokenizer-cl100k.js');

    // The next request counts with it and streams as before.
    const stream = await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'again' }], stream: true, max_tokens: 10 });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('one two');
    await host.request({ type: 'drain' });
    const [second] = await invocations();
    expect(second.tokenizer).toEqual({ atStreamEnd: true, atHandlerEnd: true });
  }, 60_000);
});

/**
 * What the first chat request does not need, and the module whose top level it is (issue 22 item 3):
 * none may run at init, each runs on the first request that needs it. In the bundle each is kept
 * inside index.js behind a lazy `import()` / `require()`, so this reads the module graph of the
 * entry's source: importing one eagerly again fails here.
 */
const LAZY: Record<string, string[]> = {
  messages: ['lambda/messages/create.ts', 'lambda/messages/request.ts'],
  responses: ['lambda/responses/endpoints.ts', 'lambda/codecs/openai-responses.ts'],
  embeddings: ['lambda/embeddings/create-embeddings.ts'],
  bedrock: ['lambda/providers/bedrock/index.ts', 'lambda/providers/bedrock/request.ts', 'lambda/providers/bedrock/stream.ts'],
  zod: ['node_modules/zod/index.cjs'],
};
const ALL_LAZY = Object.values(LAZY).flat();

type ProbeStep = { name: string; status?: number; modules: string[]; builtins: string[] };
type ProbeRequest = { name: string; method: string; path: string; headers: Record<string, string>; body?: string };

/**
 * A fresh `node --import tsx` requiring lambda/entry/lambda.ts, then invoking its handler with each
 * request (test/lambda/init-probe.ts). Asynchronous: the upstream stand-in answers from this process.
 */
async function probeEntry(env: NodeJS.ProcessEnv, requests: ProbeRequest[] = []): Promise<ProbeStep[]> {
  const out = join(mkdtempSync(join(tmpdir(), 'itapi-init-')), 'steps.json');
  await promisify(execFile)(process.execPath, ['--import', 'tsx', join(__dirname, 'init-probe.ts')], {
    env: {
      ...process.env,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      NODE_OPTIONS: '',
      POWERTOOLS_METRICS_DISABLED: 'true',
      ITAPI_SETTLEMENT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/itapi-settlements',
      ITAPI_ALERT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/itapi-alerts',
      ITAPI_PROBE_OUT: out,
      ITAPI_PROBE_REQUESTS: JSON.stringify(requests),
      ...env,
    },
    timeout: 60_000,
  });
  return JSON.parse(readFileSync(out, 'utf8')) as ProbeStep[];
}

const lazyIn = (modules: string[]) => ALL_LAZY.filter((m) => modules.includes(m));

describe('what the chat function loads on first use, not at init', () => {
  it('requires none of the Messages, Responses and embeddings endpoints, the Bedrock provider, zod or node:dns/promises at init (built-in catalog, as the bench measures)', async () => {
    const [init] = await probeEntry({ ITAPI_MODELS: '', ITAPI_MODELS_JSON: '' });
    expect(init.name).toBe('init');
    // The probe sees the entry's modules: the pin would pass vacuously if it did not.
    expect(init.modules).toEqual(expect.arrayContaining(['lambda/entry/lambda.ts', 'lambda/app.ts', 'lambda/chat/completions.ts', 'lambda/providers/index.ts']));
    expect(lazyIn(init.modules)).toEqual([]);
    expect(init.builtins).toEqual(expect.arrayContaining(['https']));
    expect(init.builtins.filter((b) => ['dns/promises', 'zlib', 'console'].includes(b))).toEqual([]);
  }, 60_000);

  it('loads each piece on the first request that needs it, and a chat request loads none but the schemas', async () => {
    const anthropicHeaders = { 'content-type': 'application/json', 'x-api-key': key, 'anthropic-version': '2023-06-01' };
    const openaiHeaders = { 'content-type': 'application/json', authorization: `Bearer ${key}` };
    const chat = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });
    const steps = await probeEntry({ ITAPI_DYNAMODB_ENDPOINT: testDynamoEndpoint(), ...tableEnv(tableNames), ITAPI_MODELS: catalogFile }, [
      { name: 'chat', method: 'POST', path: '/v1/chat/completions', headers: openaiHeaders, body: chat('gpt-4o') },
      { name: 'count_tokens', method: 'POST', path: '/v1/messages/count_tokens', headers: anthropicHeaders, body: chat('gpt-4o') },
      { name: 'responses', method: 'GET', path: '/v1/responses/resp_nothing_here', headers: openaiHeaders },
      { name: 'embeddings', method: 'POST', path: '/v1/embeddings', headers: openaiHeaders, body: JSON.stringify({ model: 'gpt-4o', input: 'hi' }) },
      { name: 'bedrock', method: 'POST', path: '/v1/chat/completions', headers: openaiHeaders, body: chat('via-bedrock') },
    ]);
    const step = Object.fromEntries(steps.map((s) => [s.name, s]));
    // An operator's catalog is schema-checked at init, so zod comes then; nothing else of the list does.
    expect(lazyIn(step.init.modules)).toEqual(LAZY.zod);
    expect(step.chat.status).toBe(200);
    expect(lazyIn(step.chat.modules)).toEqual([]);
    expect(step.count_tokens.status).toBe(200);
    expect(lazyIn(step.count_tokens.modules)).toEqual(LAZY.messages);
    expect(step.responses.status).toBe(404);
    expect(lazyIn(step.responses.modules)).toEqual(LAZY.responses);
    expect(lazyIn(step.embeddings.modules)).toEqual(LAZY.embeddings);
    expect(step.bedrock.status).toBe(502);
    expect(lazyIn(step.bedrock.modules)).toEqual(LAZY.bedrock);
  }, 60_000);
});
