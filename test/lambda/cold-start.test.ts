import OpenAI from 'openai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
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
  cleanUp = () => deleteTestTables(client, tables);
  const stores = createStores(client, tables);
  await stores.tiers.seed();
  await stores.accounts.create({ id: 'cold-acct', name: 'cold', tier: 'pro', balanceMicroUsd: 0, status: 'active', createdAtMs: Date.now() });
  await stores.accounts.topUp('cold-acct', 5_000_000, 'initial');
  key = generateApiKey();
  await stores.keys.create({ keyHash: hashApiKey(key), keyId: 'key_cold', accountId: 'cold-acct', name: 'cold', prefix: displayPrefix(key), status: 'active', createdAtMs: Date.now(), accountTier: 'pro' });

  const workDir = mkdtempSync(join(tmpdir(), 'itapi-cold-'));
  files = await bundleChat(join(workDir, 'bundle'));
  const catalogFile = join(workDir, 'catalog.json');
  const gpt = DEFAULT_CATALOG.models['gpt-4o'];
  writeFileSync(catalogFile, JSON.stringify({ models: { 'gpt-4o': { ...gpt, routes: [{ provider: 'openai-compatible', base_url: upstream.url, model: 'gpt-4o' }] } } }));
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
