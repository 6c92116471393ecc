import { DynamoDBClient, GetItemCommand, TransactWriteItemsCommand } from '@aws-sdk/client-dynamodb';
import { createHash, createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { SignatureV4 } from '@smithy/signature-v4';
import { DynamoError, leanDynamo } from '../../lambda/store/dynamo';
import { postSigner } from '../../lambda/store/sigv4';
import { NodeSha256 } from '../../lambda/cli/sigv4';
import { freePort } from '../../lambda/entry/local-server';
import { testDynamoEndpoint } from '../support/dynamo';

/**
 * The lean DynamoDB client (lambda/store/dynamo.ts) against the AWS SDK, on a loopback stand-in
 * that records what each sends: the same signed request for the same input and clock, the same
 * error names and fields, and retries where the SDK retries.
 */

const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'session-token-example' };
const region = 'eu-west-3';

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

type Answer = { status: number; body: string } | 'hang';

async function standIn(answer: (n: number, req: Received) => Answer): Promise<{ endpoint: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const r = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(parts).toString('utf8') };
      received.push(r);
      const a = answer(received.length, r);
      if (a === 'hang') return;
      res.writeHead(a.status, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': `req-${received.length}` }).end(a.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, server };
}

const close = (server: Server) => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())));

/** SigV4 as AWS documents it, written out here so the check does not reuse the signer under test. */
function canonical(r: Received): { canonicalRequest: string; signedHeaders: string[]; valid: boolean } {
  const auth = String(r.headers.authorization);
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) throw new Error(`not a SigV4 authorization: ${auth}`);
  const [, , day, reg, service, signed, signature] = m;
  const signedHeaders = signed.split(';');
  const headerLines = signedHeaders.map((h) => `${h}:${String(r.headers[h]).trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonicalRequest = [r.method, '/', '', headerLines, signed, createHash('sha256').update(r.body).digest('hex')].join('\n');
  const amzDate = String(r.headers['x-amz-date']);
  const scope = `${day}/${reg}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
  const key = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), reg), service), 'aws4_request');
  return { canonicalRequest, signedHeaders, valid: createHmac('sha256', key).update(toSign).digest('hex') === signature };
}

/** Only Date is frozen: sockets and timers run as usual (the SDK reads its clock its own way). */
function freezeDate(at: string): void {
  jest.useFakeTimers({
    now: new Date(at),
    doNotFake: ['hrtime', 'nextTick', 'performance', 'queueMicrotask', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'],
  });
}

afterEach(() => jest.useRealTimers());

const transaction = {
  ClientRequestToken: 'adm-req_0123456789abcdef',
  TransactItems: [
    {
      Update: {
        TableName: 'accounts',
        Key: { pk: { S: 'acct_1' } },
        UpdateExpression: 'SET balance = balance - :h, rpm_used = rpm_used + :one',
        ConditionExpression: 'balance >= :h',
        ExpressionAttributeValues: { ':h': { N: '1200' }, ':one': { N: '1' } },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      },
    },
    { Put: { TableName: 'holds', Item: { pk: { S: 'hold#req_1' }, blob: { B: new Uint8Array([0, 1, 2, 250, 255]) }, text: { S: 'é "quoted" \u2028' } } } },
  ],
};

describe('the lean DynamoDB client against the AWS SDK', () => {
  it('sends the same body and the same signed request as the SDK for the same input and clock', async () => {
    const s = await standIn(() => ({ status: 200, body: '{}' }));
    const sdk = new DynamoDBClient({ endpoint: s.endpoint, region, credentials, maxAttempts: 1 });
    const lean = leanDynamo({ endpoint: s.endpoint, region, credentials, maxAttempts: 1 });
    try {
      for (const [operation, input, Command] of [
        ['TransactWriteItems', transaction, TransactWriteItemsCommand],
        ['GetItem', { TableName: 'keys', Key: { pk: { S: 'key#abc' } }, ConsistentRead: false }, GetItemCommand],
      ] as const) {
        await sdk.send(new (Command as any)(input));
        // The lean client's clock set to the second the SDK signed at.
        const signedAt = String(s.received.at(-1)!.headers['x-amz-date']);
        freezeDate(signedAt.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6.000Z'));
        await lean.call(operation, input);
        const [fromSdk, asGiven] = s.received.slice(-2);
        // The same document (the SDK orders the keys by its schema, the lean client as given)…
        expect(JSON.parse(asGiven.body)).toEqual(JSON.parse(fromSdk.body));
        // …and, given in the SDK's order, the very same bytes (binary values back as bytes).
        const inSdkOrder = JSON.parse(fromSdk.body, (key, value) => (key === 'B' ? Buffer.from(value, 'base64') : value));
        await lean.call(operation, inSdkOrder);
        jest.useRealTimers();
        const fromLean = s.received.at(-1)!;
        expect(fromLean.body).toBe(fromSdk.body);
        expect(JSON.parse(fromLean.body)).toMatchObject(operation === 'GetItem' ? input : { ClientRequestToken: transaction.ClientRequestToken });
        for (const name of ['x-amz-target', 'content-type', 'content-length', 'host', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256']) {
          expect([name, fromLean.headers[name]]).toEqual([name, fromSdk.headers[name]]);
        }
        const a = canonical(fromSdk);
        const b = canonical(fromLean);
        expect(a.valid).toBe(true);
        expect(b.valid).toBe(true);
        // The SDK also signs its own bookkeeping headers (invocation id, attempt count); everything
        // else, line for line, is the same canonical request.
        const sdkOnly = a.signedHeaders.filter((h) => !b.signedHeaders.includes(h));
        expect(sdkOnly.filter((h) => !h.startsWith('amz-sdk-') && h !== 'x-amz-user-agent')).toEqual([]);
        expect(b.signedHeaders.filter((h) => !a.signedHeaders.includes(h))).toEqual([]);
        const without = (text: string, headers: string[]) =>
          text
            .split('\n')
            .filter((line) => !headers.some((h) => line.startsWith(`${h}:`)))
            .join('\n')
            .replace(a.signedHeaders.join(';'), a.signedHeaders.filter((h) => !headers.includes(h)).join(';'));
        expect(without(a.canonicalRequest, sdkOnly)).toBe(b.canonicalRequest);
      }
    } finally {
      sdk.destroy();
      lean.destroy();
      await close(s.server);
    }
  });

  it("signs as the SDK's @smithy/signature-v4 does, across days, keys and with or without a session token", async () => {
    const dates = ['2026-12-01T23:59:59.999Z', '2026-12-02T00:00:00.000Z', '2027-01-01T08:00:00.000Z'];
    for (const id of [credentials, { accessKeyId: 'AKIDOTHER', secretAccessKey: 'another/secret+key' }]) {
      let i = 0;
      const ours = postSigner(async () => id, region, 'dynamodb', () => new Date(dates[i]));
      const sdk = new SignatureV4({ credentials: id, region, service: 'dynamodb', sha256: NodeSha256 });
      for (; i < dates.length; i++) {
        const body = JSON.stringify({ TableName: 't', Key: { pk: { S: `k${i}  spaced` } } });
        const headers = { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'DynamoDB_20120810.GetItem', 'content-length': String(Buffer.byteLength(body)) };
        const mine = await ours('dynamodb.eu-west-3.amazonaws.com', headers, body);
        const theirs = await sdk.sign(
          { method: 'POST', protocol: 'https:', hostname: 'dynamodb.eu-west-3.amazonaws.com', path: '/', query: {}, headers: { ...headers, host: 'dynamodb.eu-west-3.amazonaws.com' }, body },
          { signingDate: new Date(dates[i]) },
        );
        expect(mine.authorization).toBe(theirs.headers.authorization);
        expect(mine['x-amz-date']).toBe(theirs.headers['x-amz-date']);
        expect(mine['x-amz-security-token']).toBe(theirs.headers['x-amz-security-token']);
      }
    }
  });

  it('reads binary values back as bytes, as the SDK does', async () => {
    const item = { pk: { S: 'x' }, blob: { B: Buffer.from([9, 8, 7]).toString('base64') }, set: { BS: [Buffer.from('a').toString('base64')] } };
    const s = await standIn(() => ({ status: 200, body: JSON.stringify({ Item: item }) }));
    const sdk = new DynamoDBClient({ endpoint: s.endpoint, region, credentials });
    const lean = leanDynamo({ endpoint: s.endpoint, region, credentials });
    try {
      const input = { TableName: 't', Key: { pk: { S: 'x' } } };
      const fromSdk = await sdk.send(new GetItemCommand(input));
      const fromLean = await lean.call('GetItem', input);
      expect(Buffer.from(fromLean.Item.blob.B)).toEqual(Buffer.from(fromSdk.Item!.blob.B!));
      expect(fromLean.Item.set.BS.map((b: Uint8Array) => Buffer.from(b).toString())).toEqual(['a']);
    } finally {
      sdk.destroy();
      lean.destroy();
      await close(s.server);
    }
  });

  it('names errors as the SDK names its exception classes, with the cancellation reasons and the item', async () => {
    const reasons = [{ Code: 'ConditionalCheckFailed', Message: 'The conditional request failed', Item: { pk: { S: 'acct_1' }, balance: { N: '5' } } }, { Code: 'None' }];
    const answers: Record<string, object> = {
      TransactWriteItems: { __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException', message: 'Transaction cancelled', CancellationReasons: reasons },
      UpdateItem: { __type: 'com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException', message: 'The conditional request failed', Item: { pk: { S: 'k' } } },
      PutItem: { __type: 'com.amazonaws.dynamodb.v20120810#TransactionConflictException', message: 'Transaction is ongoing for the item' },
    };
    const s = await standIn((_n, r) => ({ status: 400, body: JSON.stringify(answers[String(r.headers['x-amz-target']).split('.')[1]]) }));
    const sdk = new DynamoDBClient({ endpoint: s.endpoint, region, credentials, maxAttempts: 1 });
    const lean = leanDynamo({ endpoint: s.endpoint, region, credentials, maxAttempts: 1 });
    const commands = await import('@aws-sdk/client-dynamodb');
    try {
      for (const operation of Object.keys(answers) as Array<'TransactWriteItems' | 'UpdateItem' | 'PutItem'>) {
        const input = operation === 'TransactWriteItems' ? transaction : { TableName: 't', Key: { pk: { S: 'k' } }, Item: { pk: { S: 'k' } } };
        const sdkError: any = await sdk.send(new (commands as any)[`${operation}Command`](input)).catch((e: unknown) => e);
        const leanError: any = await lean.call(operation, input).catch((e: unknown) => e);
        expect(leanError).toBeInstanceOf(DynamoError);
        expect(leanError.name).toBe(sdkError.name);
        expect(leanError.message).toBe(sdkError.message);
        expect(leanError.$metadata.httpStatusCode).toBe(400);
        if (operation === 'TransactWriteItems') expect(leanError.CancellationReasons).toEqual(sdkError.CancellationReasons);
        if (operation === 'UpdateItem') expect(leanError.Item).toEqual(sdkError.Item);
      }
    } finally {
      sdk.destroy();
      lean.destroy();
      await close(s.server);
    }
  });

  it('retries throttling and 5xx with the very same request, and gives up after its attempts', async () => {
    const throttled = JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException', message: 'slow down' });
    const s = await standIn((n) => (n === 1 ? { status: 400, body: throttled } : n === 2 ? { status: 503, body: '<html>unavailable</html>' } : { status: 200, body: '{"ok":true}' }));
    const lean = leanDynamo({ endpoint: s.endpoint, region, credentials, maxAttempts: 3 });
    try {
      await expect(lean.call('TransactWriteItems', transaction)).resolves.toEqual({ ok: true });
      expect(s.received).toHaveLength(3);
      expect(new Set(s.received.map((r) => r.body)).size).toBe(1);
      expect(JSON.parse(s.received[2].body).ClientRequestToken).toBe(transaction.ClientRequestToken);
    } finally {
      lean.destroy();
      await close(s.server);
    }
    const always = await standIn(() => ({ status: 400, body: throttled }));
    const giving = leanDynamo({ endpoint: always.endpoint, region, credentials, maxAttempts: 2 });
    try {
      const err: any = await giving.call('GetItem', { TableName: 't', Key: {} }).catch((e: unknown) => e);
      expect(err.name).toBe('ProvisionedThroughputExceededException');
      expect(err.$metadata.attempts).toBe(2);
      expect(always.received).toHaveLength(2);
    } finally {
      giving.destroy();
      await close(always.server);
    }
  });

  it('does not resend a condition failure, a validation error or a 2xx it cannot read', async () => {
    const s = await standIn((_n, r) =>
      String(r.headers['x-amz-target']).endsWith('GetItem')
        ? { status: 200, body: '{"Item": {' }
        : { status: 400, body: JSON.stringify({ __type: 'com.amazon.coral.validate#ValidationException', message: 'bad' }) },
    );
    const lean = leanDynamo({ endpoint: s.endpoint, region, credentials, maxAttempts: 3 });
    try {
      const invalid: any = await lean.call('PutItem', { TableName: 't', Item: {} }).catch((e: unknown) => e);
      expect(invalid.name).toBe('ValidationException');
      const cut: any = await lean.call('GetItem', { TableName: 't', Key: {} }).catch((e: unknown) => e);
      expect(cut).toBeInstanceOf(DynamoError);
      expect(cut.name).toBe('SerializationError');
      expect(s.received).toHaveLength(2);
    } finally {
      lean.destroy();
      await close(s.server);
    }
  });

  it('fails a refused connection and a silent one with its own errors, the socket code kept', async () => {
    const refused = leanDynamo({ endpoint: `http://127.0.0.1:${await freePort()}`, region, credentials, maxAttempts: 2 });
    const err: any = await refused.call('GetItem', { TableName: 't', Key: {} }).catch((e: unknown) => e);
    refused.destroy();
    expect(err).toBeInstanceOf(DynamoError);
    expect(err).toMatchObject({ name: 'NetworkingError', code: 'ECONNREFUSED', $metadata: { attempts: 2 } });
    expect(err.$metadata.httpStatusCode).toBeUndefined();

    const s = await standIn(() => 'hang');
    const silent = leanDynamo({ endpoint: s.endpoint, region, credentials, maxAttempts: 2, timeoutMs: 150 });
    try {
      const timedOut: any = await silent.call('TransactWriteItems', transaction).catch((e: unknown) => e);
      expect(timedOut).toBeInstanceOf(DynamoError);
      expect(timedOut.name).toBe('TimeoutError');
      // Sent twice, the same token both times: DynamoDB applies it once.
      expect(s.received.map((r) => JSON.parse(r.body).ClientRequestToken)).toEqual([transaction.ClientRequestToken, transaction.ClientRequestToken]);
      // A caller that resends lost writes itself (admission) asks for one send: no retries stacked on its own.
      const once: any = await silent.call('TransactWriteItems', transaction, { resendWithoutAnswer: false }).catch((e: unknown) => e);
      expect(once).toMatchObject({ name: 'TimeoutError', $metadata: { attempts: 1 } });
      expect(s.received).toHaveLength(3);
    } finally {
      silent.destroy();
      await close(s.server);
    }
  });
  it('sends again at once, on a new socket, a call whose kept-alive socket the server had closed', async () => {
    // The server drops every second request on a connection: the client's idle socket, closed under it.
    const perSocket = new WeakMap<object, number>();
    let received = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        received++;
        const n = (perSocket.get(req.socket) ?? 0) + 1;
        perSocket.set(req.socket, n);
        if (n === 2) return req.socket.destroy();
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': `req-${received}` }).end('{"ok":1}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const lean = leanDynamo({ endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, region, credentials, maxAttempts: 1 });
    try {
      await expect(lean.call('GetItem', { TableName: 't', Key: {} })).resolves.toEqual({ ok: 1 });
      // One attempt allowed and no resend of lost answers, yet the stale socket does not fail the call.
      await expect(lean.call('TransactWriteItems', transaction, { resendWithoutAnswer: false })).resolves.toEqual({ ok: 1 });
      expect(received).toBe(3);
    } finally {
      lean.destroy();
      await close(server);
    }
  });
});

describe('the lean DynamoDB client against DynamoDB Local: connections (issue 22)', () => {
  // DynamoDB Local reached through a loopback pass-through that counts the TCP connections made
  // to it: a connection per call (server closing keep-alive, or the agent not reusing) would show here.
  async function countingProxy(target: URL) {
    let connections = 0;
    let chunksIn = 0;
    const server = createNetServer((client) => {
      connections++;
      const upstream = connect(Number(target.port), target.hostname);
      client.on('data', () => chunksIn++);
      client.pipe(upstream).pipe(client);
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, stats: () => ({ connections, chunksIn }) };
  }

  it('makes one connection for sequential calls, and one per concurrent caller, each call one write', async () => {
    const proxy = await countingProxy(new URL(testDynamoEndpoint()));
    const lean = leanDynamo({ endpoint: proxy.url, region, credentials });
    try {
      for (let i = 0; i < 60; i++) await lean.call('ListTables', { Limit: 1 });
      expect(proxy.stats().connections).toBe(1);
      // Headers and body in one write: the proxy reads each request as one chunk (loopback keeps
      // a single write whole), so DynamoDB Local is woken once per call.
      expect(proxy.stats().chunksIn).toBe(60);

      // 8 callers at once, 3 times over: 8 sockets, kept and reused, never one per call.
      for (let round = 0; round < 3; round++) {
        await Promise.all(Array.from({ length: 8 }, async () => {
          for (let i = 0; i < 5; i++) await lean.call('ListTables', { Limit: 1 });
        }));
      }
      expect(proxy.stats().connections).toBeLessThanOrEqual(8);
      expect(proxy.stats().connections).toBeGreaterThan(1);
    } finally {
      lean.destroy();
      await new Promise((resolve) => proxy.server.close(resolve));
    }
  });
});

describe("an answer that is not DynamoDB's", () => {
  // Another server on the endpoint's port (a test's stand-in given DynamoDB Local's port while it
  // was down answered a settlement 200 with JSON, and the gateway took it for applied), or a body
  // damaged on the way: an unknown outcome, as for no answer, never an applied write.
  async function server(headers: (body: string) => Record<string, string>) {
    let received = 0;
    const s = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        received++;
        const body = '{}';
        res.writeHead(200, { 'content-type': 'application/json', ...headers(body) }).end(body);
      });
    });
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    const lean = leanDynamo({ endpoint: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, region, credentials, maxAttempts: 3 });
    return { lean, received: () => received, close: () => (lean.destroy(), close(s)) };
  }
  const transaction = { TransactItems: [{ Put: { TableName: 't', Item: { id: { S: 'a' } } } }] };

  it.each([
    ['neither a request id nor a CRC32', () => ({})],
    ['a CRC32 that does not match the body', () => ({ 'x-amzn-requestid': 'r1', 'x-amz-crc32': '12345' })],
  ])('with %s: not applied, sent again where allowed, else an error whose answer may be lost', async (_name, headers) => {
    const s = await server(headers);
    try {
      const err = await s.lean.call('TransactWriteItems', transaction, { resendWithoutAnswer: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DynamoError);
      expect((err as DynamoError).$metadata.httpStatusCode).toBeUndefined();
      expect(s.received()).toBe(1);
      await expect(s.lean.call('GetItem', { TableName: 't', Key: {} })).rejects.toThrow(/request id|crc32/);
      expect(s.received()).toBe(4);
    } finally {
      await s.close();
    }
  });

  it("takes an answer with DynamoDB's request id and a matching CRC32, or the request id alone", async () => {
    const { crc32 } = await import('node:zlib');
    for (const headers of [(b: string) => ({ 'x-amzn-requestid': 'r1', 'x-amz-crc32': String(crc32(Buffer.from(b))) }), () => ({ 'x-amzn-requestid': 'r2' })]) {
      const s = await server(headers);
      try {
        await expect(s.lean.call('TransactWriteItems', transaction, { resendWithoutAnswer: false })).resolves.toEqual({});
      } finally {
        await s.close();
      }
    }
  });
});
