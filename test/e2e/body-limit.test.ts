import { request } from 'node:http';
import { connect } from 'node:net';
import { MAX_BODY_BYTES } from '../../lambda/app';
import { createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';

/**
 * A body over the limit gets its 413, every time: the gateway reads the rest of the body (up to
 * a bound) before it answers and closes, so the client is never reset while still sending.
 */

const LIMIT = MAX_BODY_BYTES;
const ATTEMPTS = 25;

let gw: TestGateway;
let acct: TestAccount;
beforeAll(async () => {
  gw = await startTestGateway();
  acct = await createAccount(gw);
});
afterAll(() => gw.stop());

interface Answer {
  status?: number;
  body?: string;
  error?: string;
}

/** Sends `total` bytes in 64 KiB writes, as an SDK uploading a large prompt does, and waits for the answer. */
function postLarge(total: number, chunked: boolean): Promise<Answer> {
  const url = new URL(`${gw.baseUrl}/chat/completions`);
  return new Promise((resolve) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent: false,
        headers: {
          authorization: `Bearer ${acct.key}`,
          'content-type': 'application/json',
          ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(total) }),
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts).toString('utf8') }));
        res.on('error', (err) => resolve({ status: res.statusCode, error: err.message }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    const piece = Buffer.alloc(64 * 1024, 'a');
    let sent = 0;
    const writeMore = () => {
      while (sent < total) {
        const n = Math.min(piece.length, total - sent);
        sent += n;
        if (!req.write(piece.subarray(0, n))) return void req.once('drain', writeMore);
      }
      req.end();
    };
    writeMore();
  });
}

/**
 * A client that sends the whole body before it reads the answer, as Python's http clients do:
 * the answer waits in the socket until the last byte is out. If the server closed early, the
 * writes hit a closed socket and the reset throws the unread 413 away.
 */
function sendAllThenRead(total: number): Promise<Answer> {
  const url = new URL(`${gw.baseUrl}/chat/completions`);
  return new Promise((resolve) => {
    const socket = connect(Number(url.port), url.hostname);
    const received: Buffer[] = [];
    let done = false;
    const finish = (answer: Answer) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(answer);
    };
    socket.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message }));
    socket.on('data', (d: Buffer) => received.push(d));
    socket.on('end', () => {
      const text = Buffer.concat(received).toString('utf8');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
      finish({ status: status ? Number(status) : undefined, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    socket.once('connect', async () => {
      socket.pause();
      socket.write(
        `POST ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${acct.key}\r\n` +
          `content-type: application/json\r\ncontent-length: ${total}\r\nconnection: close\r\n\r\n`,
      );
      const piece = Buffer.alloc(64 * 1024, 'a');
      for (let sent = 0; sent < total && !done; sent += piece.length) {
        if (!socket.write(piece.subarray(0, Math.min(piece.length, total - sent)))) {
          await new Promise((r) => socket.once('drain', r));
        }
      }
      // A reset arriving now still throws the unread answer away: give it the time it takes.
      await new Promise((r) => setTimeout(r, 50));
      socket.resume();
    });
  });
}

it(`answers a client that sends everything before reading with 413 on each of ${ATTEMPTS} tries`, async () => {
  const answers: Answer[] = [];
  for (let i = 0; i < ATTEMPTS; i++) answers.push(await sendAllThenRead(LIMIT + 2 * 1024 * 1024));
  expect(answers.filter((a) => a.status !== 413 || !a.body?.includes('request_too_large'))).toEqual([]);
}, 120_000);

/** The same with fetch (undici), as the openai SDK sends it: one buffered body with a content-length. */
async function fetchLarge(total: number): Promise<Answer> {
  try {
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acct.key}`, 'content-type': 'application/json' },
      body: Buffer.alloc(total, 'a'),
    });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    return { error: e.cause?.code ?? e.cause?.message ?? e.message };
  }
}

it(`answers fetch 413 on each of ${ATTEMPTS} tries`, async () => {
  const answers: Answer[] = [];
  for (let i = 0; i < ATTEMPTS; i++) answers.push(await fetchLarge(LIMIT + 2 * 1024 * 1024));
  expect(answers.filter((a) => a.status !== 413 || !a.body)).toEqual([]);
}, 120_000);

describe.each([
  ['with a content-length', false],
  ['chunked', true],
])('a body over the limit, %s', (_name, chunked) => {
  it(`is answered 413 request_too_large on each of ${ATTEMPTS} tries, never with a reset`, async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < ATTEMPTS; i++) answers.push(await postLarge(LIMIT + 2 * 1024 * 1024, chunked));
    const failures = answers.filter((a) => a.status !== 413 || !a.body);
    expect(failures).toEqual([]);
    for (const a of answers) expect(JSON.parse(a.body!).error.code).toBe('request_too_large');
  }, 120_000);
});

it('still answers 413, and closes, when the body goes on past the bound of what is read', async () => {
  const answer = await postLarge(80 * 1024 * 1024, false);
  // Past the bound the gateway stops reading: the client may see the 413 or a reset, never a hang.
  expect(answer.status === 413 || answer.error !== undefined).toBe(true);
}, 60_000);
