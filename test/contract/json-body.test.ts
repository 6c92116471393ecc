import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readJsonBody } from '../../lambda/contract/json-body';
import { GatewayError } from '../../lambda/contract/errors';

/** A Web Request as the Lambda entry builds one: the whole body in memory, headers as the client sent them. */
const request = (body: string, headers: Record<string, string>) => new Request('http://gateway.test/v1/chat/completions', { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

describe('readJsonBody (issue 22: a body of declared length is read whole)', () => {
  it('reads a body whose declared length is within the limit', async () => {
    const text = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'héllo' }] });
    await expect(readJsonBody(request(text, { 'content-length': String(Buffer.byteLength(text)) }), 1024)).resolves.toEqual(JSON.parse(text));
  });

  it('refuses with 413 (and closes) a body larger than the limit whose declared length says otherwise', async () => {
    const text = JSON.stringify({ pad: 'x'.repeat(2000) });
    const err = await readJsonBody(request(text, { 'content-length': '10' }), 1024).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(413);
    expect((err as GatewayError).headers.connection).toBe('close');
  });

  it('still reads an undeclared length through the stream, and refuses it past the limit', async () => {
    const small = '{"a":1}';
    await expect(readJsonBody(request(small, {}), 1024)).resolves.toEqual({ a: 1 });
    const err = await readJsonBody(request(JSON.stringify({ pad: 'x'.repeat(2000) }), {}), 1024).catch((e: unknown) => e);
    expect((err as GatewayError).status).toBe(413);
  });
});

describe('readJsonBody in local mode (issue 22: a body already in whole is taken at once)', () => {
  /** Serves one request: its JSON body as readJsonBody reads it with the Node request under it, and how often the Web request's own read was used. */
  async function serveOne(send: (req: ReturnType<typeof httpRequest>) => Promise<void>, body: string, readAfter: 'a macrotask' | 'microtasks' = 'a macrotask') {
    let seen!: { value: unknown; webReads: number; ended: boolean };
    const server = createServer(async (req: IncomingMessage, res) => {
      // As in the gateway, the body is read after other work: a macrotask later when the key's
      // check reads DynamoDB, or only a few microtasks later when the key is cached.
      if (readAfter === 'a macrotask') await new Promise((resolve) => setImmediate(resolve));
      else for (let i = 0; i < 8; i++) await Promise.resolve();
      let webReads = 0;
      const web = {
        headers: new Headers({ 'content-type': 'application/json', 'content-length': req.headers['content-length']! }),
        body: null,
        arrayBuffer: async () => {
          webReads++;
          const parts: Buffer[] = [];
          for await (const part of req) parts.push(part as Buffer);
          return new Uint8Array(Buffer.concat(parts)).buffer;
        },
      } as unknown as Request;
      const value = await readJsonBody(web, 1024, req);
      // A request that never ends fails here (false), not by hanging the test.
      const ended =
        req.readableEnded ||
        (await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), 2000);
          req.once('end', () => (clearTimeout(timer), resolve(true)));
        }));
      seen = { value, webReads, ended };
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        void send(req);
      });
    } finally {
      server.close();
    }
    return seen;
  }

  const text = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'héllo ✓' }] });

  it('takes a body that came whole with its head without the Web request’s read, and the request still ends', async () => {
    const seen = await serveOne(async (req) => void req.end(text), text);
    expect(seen).toEqual({ value: JSON.parse(text), webReads: 0, ended: true });
  });

  it('takes it so too when read a few microtasks after the head (a cached key), before Node marks the message complete', async () => {
    // Node's parser pushes the body in the head's packet, and completes the message in a later
    // callback: a read in microtasks finds every declared byte buffered, the message not complete.
    const seen = await serveOne(async (req) => void req.end(text), text, 'microtasks');
    expect(seen).toEqual({ value: JSON.parse(text), webReads: 0, ended: true });
  });

  it('reads a body still arriving through the Web request, as before', async () => {
    const bytes = Buffer.from(text);
    const seen = await serveOne(async (req) => {
      req.write(bytes.subarray(0, 10));
      await new Promise((resolve) => setTimeout(resolve, 100));
      req.end(bytes.subarray(10));
    }, text);
    expect(seen).toEqual({ value: JSON.parse(text), webReads: 1, ended: true });
  });
});
