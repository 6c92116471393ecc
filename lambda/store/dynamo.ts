import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { postSigner, type AwsCredentials, type CredentialsProvider, type PostSigner } from './sigv4';

/**
 * The gateway's DynamoDB client: the JSON protocol of DynamoDB (one POST per operation, `X-Amz-Target`
 * naming it, the input as its JSON body), signed with SigV4 (./sigv4.ts, checked against the SDK's) and sent over
 * a `node:http` keep-alive agent. The same signed bytes the SDK sends, at a fraction of its CPU per
 * call and with none of its load time (docs/BENCHMARKS.md, "A lean DynamoDB client").
 *
 * Errors come back as DynamoError, named as the SDK names its exception classes
 * (`ConditionalCheckFailedException`, `TransactionCanceledException` with `CancellationReasons`, …).
 */
export interface Dynamo {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the outputs are DynamoDB's JSON, typed where read
  call<O = any>(operation: DynamoOperation, input: object, options?: CallOptions): Promise<O>;
  /** Adds a step around every call (tests: counting, fault injection, consumed capacity). */
  intercept(step: DynamoStep): void;
  destroy(): void;
}

export interface CallOptions {
  /**
   * Send the call again when no answer came (reset, timeout). @default true. Admission turns it off:
   * it resends such a write itself, keeping track of the hold it may have taken.
   */
  resendWithoutAnswer?: boolean;
}

export type DynamoOperation =
  | 'GetItem'
  | 'PutItem'
  | 'UpdateItem'
  | 'DeleteItem'
  | 'Query'
  | 'Scan'
  | 'BatchWriteItem'
  | 'BatchGetItem'
  | 'TransactWriteItems'
  | 'CreateTable'
  | 'DescribeTable'
  | 'DeleteTable'
  | 'ListTables'
  | 'UpdateTimeToLive';

export type DynamoStep = (operation: DynamoOperation, input: Record<string, unknown>, next: () => Promise<Record<string, unknown>>) => Promise<Record<string, unknown>>;

/** A DynamoDB error, with the fields the SDK's exception classes carry. */
export class DynamoError extends Error {
  readonly $metadata: { httpStatusCode?: number; attempts: number };
  /** TransactionCanceledException: one reason per item of the transaction (`Code`, and `Item` where asked). */
  readonly CancellationReasons?: Array<{ Code?: string; Message?: string; Item?: Record<string, any> }>;
  /** ConditionalCheckFailedException with `ReturnValuesOnConditionCheckFailure`: the item as it was. */
  readonly Item?: Record<string, any>;

  /** A failure with no answer: the socket's error code (`ECONNREFUSED`, `ECONNRESET`, …). */
  readonly code?: string;

  constructor(name: string, message: string, httpStatusCode: number | undefined, attempts: number, body: Record<string, any> = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = name;
    this.$metadata = { httpStatusCode, attempts };
    const code = (cause as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string') this.code = code;
    if (Array.isArray(body.CancellationReasons)) this.CancellationReasons = body.CancellationReasons;
    if (body.Item) this.Item = body.Item;
  }
}

/** True when `err` is the DynamoDB error of that name (the SDK's class name). */
export function isDynamoError(err: unknown, name: string): err is DynamoError {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === name;
}

export interface DynamoOptions {
  /** e.g. `http://127.0.0.1:8000`; default: DynamoDB's regional endpoint. */
  endpoint?: string;
  region?: string;
  /** Static credentials or a provider; default: the environment (Lambda's own), else the SDK's default chain. */
  credentials?: AwsCredentials | CredentialsProvider;
  /** Attempts for throttling, 5xx and network errors (a write is sent again as it was). @default 3 */
  maxAttempts?: number;
  /** Silence after which a call is abandoned. @default 10000 */
  timeoutMs?: number;
  /** Sockets per endpoint. @default 256 */
  maxSockets?: number;
  /** Another SigV4 implementation (the bench compares the SDK's own). @default ./sigv4.ts */
  signer?: (credentials: CredentialsProvider, region: string) => PostSigner;
}

const RETRYABLE = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'InternalServerError',
  'ServiceUnavailable',
  'TransactionInProgressException',
]);

/** Credentials from Lambda's environment; anything else goes to the SDK's default chain, loaded only then. */
function defaultCredentials(): CredentialsProvider {
  let chain: CredentialsProvider | undefined;
  return async () => {
    const env = process.env;
    if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
      return { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN };
    }
    chain ??= (await import('@aws-sdk/credential-provider-node')).defaultProvider();
    return chain();
  };
}

export function leanDynamo(options: DynamoOptions = {}): Dynamo {
  const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
  const endpoint = new URL(options.endpoint ?? `https://dynamodb.${region}.amazonaws.com`);
  const secure = endpoint.protocol === 'https:';
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 256 };
  const agent = secure ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  const send = secure ? httpsRequest : httpRequest;
  const given = options.credentials;
  const credentials: CredentialsProvider = typeof given === 'function' ? given : given ? async () => given : defaultCredentials();
  const sign = options.signer ? options.signer(credentials, region) : postSigner(credentials, region, 'dynamodb');
  const maxAttempts = options.maxAttempts ?? 3;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const steps: DynamoStep[] = [];

  function once(operation: DynamoOperation, headers: Record<string, string>, body: string): Promise<{ status: number; text: string; fromDynamo: boolean }> {
    return new Promise((resolve, reject) => {
      const req = send({ method: 'POST', host: endpoint.hostname, port: endpoint.port || undefined, path: '/', headers, agent }, (res: IncomingMessage) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => {
          const bytes = Buffer.concat(parts);
          resolve({ status: res.statusCode ?? 0, text: bytes.toString('utf8'), fromDynamo: dynamoAnswered(res.headers, bytes) });
        });
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`DynamoDB ${operation} took longer than ${timeoutMs} ms`), { name: 'TimeoutError' })));
      // Whether the socket was a kept-alive one: a reset on it is the server having closed it while idle.
      req.on('error', (err) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })));
      req.end(body);
    });
  }

  async function attempt(operation: DynamoOperation, input: Record<string, unknown>, options: CallOptions): Promise<Record<string, unknown>> {
    // The replacer only when there are bytes to encode: with one, V8 calls back into JS for every value.
    const body = hasBinary(input) ? JSON.stringify(input, binaryAsBase64) : JSON.stringify(input);
    const target = { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `DynamoDB_20120810.${operation}`, 'content-length': String(Buffer.byteLength(body)) };
    let staleSocketRetried = false;
    for (let n = 1; ; n++) {
      // Signed outside the try below: a credentials failure is not a lost answer.
      const headers = await sign(endpoint.host, target, body);
      let answer: { status: number; text: string; fromDynamo: boolean };
      try {
        answer = await once(operation, headers, body);
      } catch (err) {
        // A kept-alive socket the server had closed (idle, or a Lambda frozen between invocations):
        // the request (almost always) never reached DynamoDB. Sent again at once on a new socket, once, not counted.
        const e = err as { reusedSocket?: boolean; code?: string };
        if (e.reusedSocket && e.code === 'ECONNRESET' && !staleSocketRetried) {
          staleSocketRetried = true;
          n--;
          continue;
        }
        // No answer: sent again as it was (a transaction with its ClientRequestToken is applied once).
        // Given up: one of our own errors, with the socket's code (callers tell "refused" from "may have landed").
        if (n >= maxAttempts || options.resendWithoutAnswer === false) throw noAnswer(operation, err, n);
        await backoff(n);
        continue;
      }
      if (!answer.fromDynamo) {
        // Not DynamoDB's answer (no request id, or a body its CRC32 does not match: another server on
        // the endpoint's port, a damaged answer): an unknown outcome, as for no answer, never an applied write.
        const error = new DynamoError('SerializationError', `DynamoDB ${operation}: an answer (${answer.status}) without DynamoDB's request id, or whose body does not match its x-amz-crc32`, undefined, n, {});
        if (n >= maxAttempts || options.resendWithoutAnswer === false) throw error;
        await backoff(n);
        continue;
      }
      let parsed: Record<string, any>;
      try {
        parsed = parseAnswer(answer.text);
      } catch (err) {
        // Not DynamoDB's JSON (a proxy's page, a cut answer): an unknown outcome, as for no answer.
        // A 5xx page is sent again; anything else is not (a 2xx means the write was applied).
        if (n >= maxAttempts || answer.status < 500) throw new DynamoError('SerializationError', `DynamoDB ${operation} answered ${answer.status} with a body that is not JSON`, undefined, n, {}, err);
        await backoff(n);
        continue;
      }
      if (answer.status >= 200 && answer.status < 300) return parsed;
      const type = String(parsed.__type ?? 'UnknownError');
      const name = type.slice(type.lastIndexOf('#') + 1);
      const error = new DynamoError(name, String(parsed.message ?? parsed.Message ?? name), answer.status, n, parsed);
      if (n >= maxAttempts || !(answer.status >= 500 || RETRYABLE.has(name))) throw error;
      await backoff(n);
    }
  }

  return {
    call<O>(operation: DynamoOperation, input: object, options: CallOptions = {}): Promise<O> {
      const run = (i: number): Promise<Record<string, unknown>> =>
        i < steps.length ? steps[i](operation, input as Record<string, unknown>, () => run(i + 1)) : attempt(operation, input as Record<string, unknown>, options);
      return run(0) as Promise<O>;
    },
    intercept(step) {
      steps.push(step);
    },
    destroy() {
      agent.destroy();
    },
  };
}

/** The error for a call that got no answer at all (refused, reset, timed out). */
function noAnswer(operation: DynamoOperation, err: unknown, attempts: number): DynamoError {
  const e = err as { name?: string; message?: string };
  const name = e?.name === 'TimeoutError' ? 'TimeoutError' : 'NetworkingError';
  return new DynamoError(name, `DynamoDB ${operation}: ${e?.message ?? String(err)}`, undefined, attempts, {}, err);
}

/**
 * Whether an answer is DynamoDB's: DynamoDB (and DynamoDB Local) send a request id with every
 * answer, and the body's CRC32 with (at least) every success, which the AWS SDK checks too. A CRC32
 * that does not match the body (damaged on the way), or neither header (some other server on the
 * endpoint's port, as a test's stand-in given DynamoDB Local's port while it was down), is not an
 * answer to trust.
 */
function dynamoAnswered(headers: IncomingMessage['headers'], body: Buffer): boolean {
  const crc = headers['x-amz-crc32'];
  if (typeof crc === 'string') {
    const sum = crc32();
    if (sum) return Number(crc) === sum(body);
  }
  return headers['x-amzn-requestid'] !== undefined || crc !== undefined;
}

let zlibCrc32: ((data: Buffer) => number) | null | undefined;
/** zlib's CRC32 (Node 20.15 and later), loaded at the first answer rather than at start (cold start). */
function crc32(): ((data: Buffer) => number) | null {
  if (zlibCrc32 === undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fn = (require('node:zlib') as { crc32?: (data: Buffer) => number }).crc32;
    zlibCrc32 = typeof fn === 'function' ? fn : null;
  }
  return zlibCrc32;
}

/** True when a Uint8Array (a `B` or `BS` value) is anywhere in the input. */
function hasBinary(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (value instanceof Uint8Array) return true;
  if (Array.isArray(value)) {
    for (const v of value) if (hasBinary(v)) return true;
    return false;
  }
  for (const k in value) if (hasBinary((value as Record<string, unknown>)[k])) return true;
  return false;
}

/** Binary attribute values travel as base64, as the SDK sends them (`B`, `BS`). */
function binaryAsBase64(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  return raw instanceof Uint8Array ? Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') : value;
}

/** The answer's JSON, with binary attribute values back as bytes (the reviver only when there are some). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function parseAnswer(text: string): Record<string, any> {
  if (!text) return {};
  if (!text.includes('"B":') && !text.includes('"BS":')) return JSON.parse(text);
  return JSON.parse(text, (key, value) => {
    if (key === 'B' && typeof value === 'string') return Buffer.from(value, 'base64');
    if (key === 'BS' && Array.isArray(value) && value.every((v) => typeof v === 'string')) return value.map((v: string) => Buffer.from(v, 'base64'));
    return value;
  });
}

/** 25, 50, 100 ms…, jittered: throttling and conflicts clear in milliseconds. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.min(1000, 25 * 2 ** (attempt - 1)) * (0.5 + Math.random());
  return new Promise((resolve) => setTimeout(resolve, ms));
}
