import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, Checksum, SourceData } from '@smithy/types';

/**
 * The gateway's DynamoDB client: the JSON protocol of DynamoDB (one POST per operation, `X-Amz-Target`
 * naming it, the input as its JSON body), signed with the AWS SDK's own SigV4 signer and sent over
 * a `node:http` keep-alive agent. The same signed bytes the SDK sends, at a fraction of its CPU per
 * call and with none of its load time (docs/BENCHMARKS.md, "A lean DynamoDB client").
 *
 * Errors come back as DynamoError, named as the SDK names its exception classes
 * (`ConditionalCheckFailedException`, `TransactionCanceledException` with `CancellationReasons`, …).
 */
export interface Dynamo {
  call<O = Record<string, unknown>>(operation: DynamoOperation, input: object): Promise<O>;
  /** Adds a step around every call (tests: counting, fault injection, consumed capacity). */
  intercept(step: DynamoStep): void;
  destroy(): void;
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

  constructor(name: string, message: string, httpStatusCode: number | undefined, attempts: number, body: Record<string, any> = {}) {
    super(message);
    this.name = name;
    this.$metadata = { httpStatusCode, attempts };
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
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Attempts for throttling, 5xx and network errors (a write is sent again as it was). @default 3 */
  maxAttempts?: number;
  /** Silence after which a call is abandoned. @default 10000 */
  timeoutMs?: number;
  /** Sockets per endpoint. @default 256 */
  maxSockets?: number;
}

const RETRYABLE = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'InternalServerError',
  'ServiceUnavailable',
  'TransactionInProgressException',
]);

/** node:crypto behind the signer's hash interface (the SDK's own @smithy/hash-node does the same). */
class NodeSha256 implements Checksum {
  private hash: Hash | Hmac;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: SourceData): void {
    this.hash.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
  reset(): void {
    throw new Error('not used by the signer');
  }
}

function toBuffer(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** Credentials from Lambda's environment; anything else goes to the SDK's default chain, loaded only then. */
function defaultCredentials(): AwsCredentialIdentityProvider {
  let chain: AwsCredentialIdentityProvider | undefined;
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
  const credentials = options.credentials ?? defaultCredentials();
  const signer = new SignatureV4({ credentials, region, service: 'dynamodb', sha256: NodeSha256 });
  const maxAttempts = options.maxAttempts ?? 3;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const steps: DynamoStep[] = [];

  async function once(operation: DynamoOperation, body: string): Promise<{ status: number; text: string }> {
    const signed = await signer.sign({
      method: 'POST',
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      port: endpoint.port ? Number(endpoint.port) : undefined,
      path: '/',
      query: {},
      headers: {
        host: endpoint.host,
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': `DynamoDB_20120810.${operation}`,
        'content-length': String(Buffer.byteLength(body)),
      },
      body,
    });
    return new Promise((resolve, reject) => {
      const req = send({ method: 'POST', host: endpoint.hostname, port: endpoint.port || undefined, path: '/', headers: signed.headers, agent }, (res: IncomingMessage) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`DynamoDB ${operation} took longer than ${timeoutMs} ms`), { name: 'TimeoutError' })));
      req.on('error', reject);
      req.end(body);
    });
  }

  async function attempt(operation: DynamoOperation, input: Record<string, unknown>): Promise<Record<string, unknown>> {
    const body = JSON.stringify(input);
    for (let n = 1; ; n++) {
      let answer: { status: number; text: string };
      try {
        answer = await once(operation, body);
      } catch (err) {
        // No answer: sent again as it was (a transaction with its ClientRequestToken is applied once).
        if (n >= maxAttempts) throw err;
        await backoff(n);
        continue;
      }
      const parsed = answer.text ? (JSON.parse(answer.text) as Record<string, any>) : {};
      if (answer.status >= 200 && answer.status < 300) return parsed;
      const type = String(parsed.__type ?? 'UnknownError');
      const name = type.slice(type.lastIndexOf('#') + 1);
      const error = new DynamoError(name, String(parsed.message ?? parsed.Message ?? name), answer.status, n, parsed);
      if (n >= maxAttempts || !(answer.status >= 500 || RETRYABLE.has(name))) throw error;
      await backoff(n);
    }
  }

  return {
    call<O>(operation: DynamoOperation, input: object): Promise<O> {
      const run = (i: number): Promise<Record<string, unknown>> =>
        i < steps.length ? steps[i](operation, input as Record<string, unknown>, () => run(i + 1)) : attempt(operation, input as Record<string, unknown>);
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

/** 25, 50, 100 ms…, jittered: throttling and conflicts clear in milliseconds. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.min(1000, 25 * 2 ** (attempt - 1)) * (0.5 + Math.random());
  return new Promise((resolve) => setTimeout(resolve, ms));
}
