import { type Dynamo } from '../store/dynamo';
import { createAdaptorServer, type ServerType } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { IncomingMessage, ServerResponse, STATUS_CODES } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { join, resolve } from 'node:path';
import { createAdminApp } from '../admin/app';
import { displayPrefix, generateApiKey, hashApiKey } from '../auth/api-key';
import { explicitCatalogSource, loadCatalog, type Catalog } from '../catalog';
import type { Logger } from '../observability/log';
import type { ProviderRegistry } from '../providers';
import type { UpstreamTimeouts } from '../providers/types';
import { FileSettlementQueue, replayQueued, runsFromNow } from '../money/settlement-queue';
import type { SweepReport } from '../money/sweeper';
import { describeError } from '../observability/log';
import { createSignInLink } from '../auth/sign-in';
import { createGateway, type AlertOptions, type Gateway, type Stores } from '../runtime';
import { envProviderKeys, hasEnvProviderKeys } from '../secrets/provider-keys';
import { createDynamoClient } from '../store/client';
import { responsesTtlDaysFromEnv } from '../store/responses';
import { ensureTables, tableNamesFromEnv, type TableNames } from '../store/tables';
import { startDynamoLocal } from './dynamodb-local';
import { writeSseToNode } from './sse-write';
import { takeSseBody } from '../chat/sse-body';
import type { MetricsSink } from '../observability/metrics';

export { startDynamoLocal } from './dynamodb-local';

type FetchCallback = Parameters<typeof createAdaptorServer>[0]['fetch'];

export interface LocalOptions {
  /** @default 8787; 0 picks a free port */
  port?: number;
  env?: NodeJS.ProcessEnv;
  /** A running DynamoDB; else an embedded DynamoDB Local is started (and stopped with the server). */
  dynamoEndpoint?: string;
  tables?: TableNames;
  /** Where the embedded DynamoDB keeps its data and the demo key its file. @default .itapi */
  dataDir?: string;
  /** Keep the embedded database in memory only. */
  inMemory?: boolean;
  catalog?: Catalog;
  providers?: ProviderRegistry;
  timeouts?: Partial<UpstreamTimeouts>;
  authTtlMs?: number;
  log?: Logger;
  /** Where request, upstream and money metrics go. @default none */
  metrics?: MetricsSink;
  /** Seed the demo account and key. @default true */
  seedDemo?: boolean;
  /** The longest a request may run. @default ITAPI_MAX_REQUEST_S, else 900 s */
  maxRequestMs?: number;
  /** How long past its deadline a hold waits before it is swept. @default ITAPI_SWEEP_GRACE_S, else 60 s */
  sweepGraceMs?: number;
  /** How often a stream records its delivered output on its hold item. @default ITAPI_CHECKPOINT_S, else 5 s */
  checkpointMs?: number;
  /** Events a stream reads ahead of a client that does not keep up. @default 16384 */
  maxBufferedEvents?: number;
  /** How often the in-process sweeper runs (and retries queued settlements). @default ITAPI_SWEEP_INTERVAL_S, else 15 s */
  sweepIntervalMs?: number;
  /** Low-balance alerts. @default webhooks to any address (ITAPI_ALERTS_PUBLIC_ONLY=1: public https only, as in AWS) */
  alerts?: AlertOptions;
}

export interface LocalGateway {
  baseUrl: string;
  adminUrl: string;
  apiKey: string | undefined;
  /** A one-time console sign-in link for the demo account (valid 15 minutes), when it was seeded. */
  consoleLink: string | undefined;
  adminToken: string;
  /** True when the built-in catalog is served by the mock provider (no provider key set). */
  usingMock: boolean;
  /** The catalog in force, as served (after the mock replaced its routes, if it did). */
  catalog: Catalog;
  gateway: Gateway;
  dynamo: Dynamo;
  dynamoEndpoint: string;
  /** Runs the sweeper once now (it also runs on its own every `sweepIntervalMs`). */
  sweep(): Promise<SweepReport>;
  stop(): Promise<void>;
}

export const DEMO_ACCOUNT_ID = 'demo';
const DEMO_CREDITS_MICRO_USD = 10_000_000;

/** Local mode (ARCHITECTURE §7): the same app on Node's HTTP server, with DynamoDB Local. */
export async function startLocal(options: LocalOptions = {}): Promise<LocalGateway> {
  const env = options.env ?? process.env;
  const dataDir = options.dataDir ?? env.ITAPI_DATA_DIR ?? '.itapi';
  // The port first: a taken one fails at once, before DynamoDB Local starts. Requests that arrive
  // before the gateway is ready wait for it.
  let readyFetch: FetchCallback | undefined;
  let ready: (fetch: FetchCallback) => void = () => undefined;
  let notReady: (err: unknown) => void = () => undefined;
  const appFetch = new Promise<FetchCallback>((resolve, reject) => ((ready = (fetch) => resolve((readyFetch = fetch))), (notReady = reject)));
  appFetch.catch(() => undefined);
  const server = await listenOnLoopback(options.port ?? Number(env.PORT ?? 8787), async (request, bindings) => {
    const response = (await (readyFetch ?? (await appFetch))(request, bindings)) as Response;
    // An SSE answer is written to the socket as it comes (issue 22), not through a Web stream.
    const sse = takeSseBody(response);
    if (!sse) return response;
    await writeSseToNode(sse, bindings.outgoing as ServerResponse);
    return RESPONSE_ALREADY_SENT;
  });
  let java: ChildProcess | undefined;
  let dynamo: Dynamo | undefined;
  try {
    let dynamoEndpoint = options.dynamoEndpoint ?? env.ITAPI_DYNAMODB_ENDPOINT;
    if (!dynamoEndpoint) {
      // Absolute: DynamoDB Local runs with its package's folder as working directory.
      const started = await startDynamoLocal(options.inMemory ? undefined : resolve(dataDir, 'dynamodb'));
      java = started.child;
      dynamoEndpoint = started.endpoint;
    }
    return await serveGateway(options, env, dataDir, server, ready, dynamoEndpoint, (dynamo = createDynamoClient(dynamoEndpoint)), java);
  } catch (err) {
    notReady(err);
    await closeServer(server);
    dynamo?.destroy();
    await stopChild(java);
    throw err;
  }
}

/**
 * An event stream's headers leave with its first frame, in one write (issue 22). Hono's Node adapter
 * flushes a streamed answer's headers on their own before it reads the body; every endpoint answers
 * a stream only once the upstream's first event is in (its frames follow within microseconds), so
 * flushed alone they cost a socket write of their own on the way to the first byte, and the client's
 * first body byte waited for a second one. Other answers are flushed as before.
 */
class EventStreamResponse<Req extends IncomingMessage = IncomingMessage> extends ServerResponse<Req> {
  private eventStream = false;

  override writeHead(statusCode: number, ...rest: unknown[]): this {
    const headers = rest[rest.length - 1];
    if (headers && typeof headers === 'object' && !Array.isArray(headers)) {
      const given = headers as Record<string, unknown>;
      const type = given['content-type'];
      this.eventStream = typeof type === 'string' && type.startsWith('text/event-stream');
      if (this.sendDate && !('date' in given) && !('Date' in given) && !this.hasHeader('date')) rest[rest.length - 1] = { date: httpDate(), ...given };
    }
    return (super.writeHead as (code: number, ...args: unknown[]) => this)(statusCode, ...rest);
  }

  override flushHeaders(): void {
    if (!this.eventStream) super.flushHeaders();
  }
}

/**
 * The `Date` header of an answer: the current second's, made once a second. Node's own (when no
 * `Date` is given) is cached the same way, but cleared by a timer set each time it is made again:
 * after an idle second, the first answer's head paid for that timer on the way to its first byte
 * (issue 22). This one is checked against the clock instead.
 */
function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(second * 1000).toUTCString();
  }
  return dateValue;
}
let dateSecond = -1;
let dateValue = '';

/** Listens on 127.0.0.1:`port` (0: a free one); a taken port is an error that names it. */
async function listenOnLoopback(port: number, fetch: FetchCallback): Promise<ServerType> {
  const server = createAdaptorServer({ fetch, serverOptions: { ServerResponse: EventStreamResponse } });
  server.on('clientError', answerMalformedRequest);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new Error(`port ${port} on 127.0.0.1 is already in use: stop what listens there, or set PORT to another port (PORT=0 picks a free one)`) : err),
    );
    server.listen(port, '127.0.0.1');
  });
  return server;
}

function closeServer(server: ServerType): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
  });
}

async function serveGateway(
  options: LocalOptions,
  env: NodeJS.ProcessEnv,
  dataDir: string,
  server: ServerType,
  ready: (fetch: FetchCallback) => void,
  dynamoEndpoint: string,
  dynamo: Dynamo,
  java: ChildProcess | undefined,
): Promise<LocalGateway> {
  const tables = options.tables ?? tableNamesFromEnv(env);
  await ensureTables(dynamo, tables);
  // A catalog someone wrote (ITAPI_MODELS) is served as written, keys or not: its routes may
  // need none (Ollama, vLLM). Only the built-in catalog falls back to the mock.
  const usingMock = !options.catalog && !explicitCatalogSource(env) && !hasEnvProviderKeys(env);
  const baseCatalog = options.catalog ?? loadCatalog(env);
  const catalog = usingMock ? baseCatalog.withMockRoutes() : baseCatalog;
  const adminToken = env.ITAPI_ADMIN_TOKEN || `itadm_${randomBytes(24).toString('base64url')}`;
  const queue = new FileSettlementQueue(resolve(dataDir, 'settlements-queue.jsonl'));
  const gateway = createGateway({
    maxRequestMs: options.maxRequestMs ?? secondsFromEnv(env, 'ITAPI_MAX_REQUEST_S'),
    sweepGraceMs: options.sweepGraceMs ?? secondsFromEnv(env, 'ITAPI_SWEEP_GRACE_S'),
    checkpointMs: options.checkpointMs ?? secondsFromEnv(env, 'ITAPI_CHECKPOINT_S'),
    maxBufferedEvents: options.maxBufferedEvents,
    settlementQueue: queue,
    dynamo,
    tables,
    catalog,
    providerKeys: envProviderKeys(env),
    adminToken,
    createAdminApp,
    providers: options.providers,
    timeouts: options.timeouts,
    authTtlMs: options.authTtlMs,
    rollupsInline: true,
    // Group commit of admissions and settlements (lambda/money/README.md); ITAPI_GROUP_COMMIT=0 turns it off.
    groupCommit: env.ITAPI_GROUP_COMMIT !== '0',
    corsOrigins: env.ITAPI_CORS_ORIGINS?.split(',').filter(Boolean),
    log: options.log,
    metrics: options.metrics,
    loadConsole: () => import('../console'),
    env,
    responsesTtlDays: responsesTtlDaysFromEnv(env),
    // Locally a webhook may point anywhere, a receiver on 127.0.0.1 included.
    alerts: { allowPrivateWebhooks: env.ITAPI_ALERTS_PUBLIC_ONLY !== '1', ...options.alerts },
  });
  await gateway.stores.tiers.seed();
  // Ledger items not yet rolled up (a process killed between settlement and roll-up, data from before roll-ups).
  await gateway.stores.rollups.catchUp();
  const apiKey = options.seedDemo === false ? undefined : await seedDemo(gateway.stores, dataDir);

  ready(gateway.app.fetch);
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  // The sweeper in-process (AWS runs it on a schedule): holds left past their deadline, and
  // settlements that went to the queue while DynamoDB was away. One at a time; a sweep asked for
  // while one runs gets the next one (what it queued may have come after that one read the file).
  const sweepRuns = runsFromNow(async () => {
    await replayQueued(queue, gateway.replays);
    return gateway.sweeper.sweep();
  });
  let sweeping: Promise<SweepReport> | undefined;
  const sweep = () => (sweeping = sweepRuns());
  const sweepTimer = setInterval(
    () => void sweep().catch((err) => gateway.log.error('sweep_failed', describeError(err))),
    options.sweepIntervalMs ?? secondsFromEnv(env, 'ITAPI_SWEEP_INTERVAL_S') ?? 15_000,
  );
  sweepTimer.unref();
  const consoleLink = apiKey ? (await createSignInLink(gateway.stores.sessions, DEMO_ACCOUNT_ID, `${origin}/console/`, Date.now())).url : undefined;
  return {
    baseUrl: `${origin}/v1`,
    adminUrl: `${origin}/admin`,
    apiKey,
    consoleLink,
    adminToken,
    usingMock,
    catalog,
    gateway,
    dynamo,
    dynamoEndpoint,
    sweep,
    async stop() {
      clearInterval(sweepTimer);
      await sweeping?.catch(() => undefined);
      await closeServer(server);
      await gateway.background.drain();
      dynamo.destroy();
      await stopChild(java);
    },
  };
}

/** A duration setting given in seconds (fractions allowed), in ms; undefined when unset. */
function secondsFromEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`${name} must be a positive number of seconds, got '${text}'`);
  return Math.round(seconds * 1000);
}

/**
 * A request Node's parser refuses (CR or LF inside a header, a bad request line, headers too
 * large) gets OpenAI's error body like every other answer, not Node's bare `400 Bad Request`.
 */
function answerMalformedRequest(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const body = JSON.stringify({
    error: { message: 'The HTTP request is malformed.', type: 'invalid_request_error', param: null, code: 'invalid_request' },
  });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `x-request-id: req_${randomBytes(12).toString('hex')}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** The demo account and its key; the key's plaintext is kept in the data folder so restarts reuse it. */
async function seedDemo(stores: Stores, dataDir: string): Promise<string> {
  const keyFile = join(dataDir, 'demo-key');
  if (!(await stores.accounts.get(DEMO_ACCOUNT_ID))) {
    await stores.accounts.create({ id: DEMO_ACCOUNT_ID, name: 'Demo account', tier: 'starter', balanceMicroUsd: 0, status: 'active', createdAtMs: Date.now() });
    await stores.accounts.topUp(DEMO_ACCOUNT_ID, DEMO_CREDITS_MICRO_USD, 'initial');
  }
  try {
    const saved = readFileSync(keyFile, 'utf8').trim();
    const record = await stores.keys.getByHash(hashApiKey(saved));
    if (record?.status === 'active') return saved;
  } catch {
    // No saved key yet.
  }
  const key = generateApiKey();
  await stores.keys.create({
    keyHash: hashApiKey(key),
    keyId: `key_${randomBytes(8).toString('hex')}`,
    accountId: DEMO_ACCOUNT_ID,
    name: 'demo',
    prefix: displayPrefix(key),
    status: 'active',
    createdAtMs: Date.now(),
    accountTier: 'starter',
  });
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
  return key;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
  if (child.exitCode === null) child.kill('SIGKILL');
}
