import { Writable } from 'node:stream';

/** One write the handler made, as the runtime would forward it, with when it happened. */
export interface Write {
  atMs: number;
  bytes: Buffer;
}

/**
 * A stand-in for the Lambda runtime's `awslambda` global and its response stream. The runtime's
 * wire format for a streamed HTTP response: a JSON prelude (statusCode, headers, cookies), eight
 * NUL bytes, then the body as the handler writes it.
 */
export class ResponseStreamRecorder extends Writable {
  readonly writes: Write[] = [];
  readonly finished: Promise<void>;

  constructor() {
    super();
    this.finished = new Promise((resolve) => this.once('finish', () => resolve()));
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.writes.push({ atMs: Date.now(), bytes: Buffer.from(chunk) });
    callback();
  }

  /** Splits the recorded bytes into the prelude and the body, as the runtime's front end does. */
  parse(): { prelude: { statusCode: number; headers: Record<string, string>; cookies?: string[] }; body: string; bodyWrites: Write[] } {
    const all = Buffer.concat(this.writes.map((w) => w.bytes));
    const delimiter = all.indexOf(Buffer.alloc(8));
    if (delimiter < 0) throw new Error('no 8-NUL delimiter after the prelude');
    const prelude = JSON.parse(all.subarray(0, delimiter).toString('utf8'));
    let preludeBytes = delimiter + 8;
    const bodyWrites: Write[] = [];
    for (const w of this.writes) {
      if (preludeBytes >= w.bytes.length) {
        preludeBytes -= w.bytes.length;
        continue;
      }
      bodyWrites.push({ atMs: w.atMs, bytes: w.bytes.subarray(preludeBytes) });
      preludeBytes = 0;
    }
    return { prelude, body: all.subarray(delimiter + 8).toString('utf8'), bodyWrites: bodyWrites.filter((w) => w.bytes.length) };
  }
}

type StreamingHandler = (event: unknown, stream: Writable, context: unknown) => Promise<void>;

/** Installs the global the runtime provides before the handler module loads. */
export function installAwsLambdaGlobal(): void {
  (globalThis as Record<string, unknown>).awslambda = {
    streamifyResponse: (handler: StreamingHandler) => handler,
    HttpResponseStream: {
      from(stream: Writable, metadata: unknown): Writable {
        stream.write(Buffer.from(JSON.stringify(metadata), 'utf8'));
        stream.write(Buffer.alloc(8));
        return stream;
      },
    },
  };
}

/** A Function URL (payload v2) event; a `cookie` header arrives as the event's `cookies`, as Lambda sends it. */
export function functionUrlEvent(method: string, path: string, headersIn: Record<string, string>, body?: string) {
  const { cookie, ...headers } = headersIn;
  const [rawPath, rawQueryString = ''] = path.split('?');
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    ...(cookie ? { cookies: cookie.split('; ') } : {}),
    headers: { host: 'abc.lambda-url.us-east-1.on.aws', ...headers },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc',
      domainName: 'abc.lambda-url.us-east-1.on.aws',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: 'fn-url-request',
      routeKey: '$default',
      stage: '$default',
      time: '25/Nov/2026:12:00:00 +0000',
      timeEpoch: Date.now(),
    },
    body,
    isBase64Encoded: false,
  };
}

/** An API Gateway REST (payload v1) proxy event for `/v1/{proxy+}`. */
export function restApiEvent(method: string, path: string, headers: Record<string, string>, body?: string) {
  return {
    resource: '/v1/{proxy+}',
    path,
    httpMethod: method,
    headers: { Host: 'abc.execute-api.us-east-1.amazonaws.com', ...headers },
    multiValueHeaders: Object.fromEntries(Object.entries({ Host: 'abc.execute-api.us-east-1.amazonaws.com', ...headers }).map(([k, v]) => [k, [v]])),
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: { proxy: path.replace(/^\/v1\//, '') },
    stageVariables: null,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc',
      httpMethod: method,
      path: `/prod${path}`,
      stage: 'prod',
      requestId: 'rest-request',
      resourcePath: '/v1/{proxy+}',
      identity: { sourceIp: '127.0.0.1', userAgent: 'test' },
    },
    body: body ?? null,
    isBase64Encoded: false,
  };
}
