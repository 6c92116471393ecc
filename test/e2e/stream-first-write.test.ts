// Issue 22: an event stream's headers leave the local server in the same socket write as its first
// frame, written by the server itself, not read from a Web stream. Hono's Node adapter flushed a streamed answer's headers alone before reading its body: a
// write of its own on the way to the first byte, and the client's first body byte came in a second.
import { startTestGateway, type TestGateway } from '../support/gateway';
import { watchSocketWrites } from '../support/socket-writes';
import { SseBody } from '../../lambda/chat/sse-body';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway();
});

afterAll(async () => {
  await gw.stop();
});

/** What this process's sockets hand to the kernel while `run` runs, one string a system call (the server's among them). */
async function socketWrites(run: () => Promise<void>): Promise<string[]> {
  const writes: string[] = [];
  const stop = watchSocketWrites((written) => writes.push(written));
  try {
    await run();
  } finally {
    stop();
  }
  return writes;
}

const post = (path: string, body: object) =>
  fetch(`${gw.baseUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${gw.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('a stream\'s first socket write', () => {
  it.each([
    ['/chat/completions', { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }, 'data: {'],
    ['/messages', { model: 'claude-3-5-sonnet-20241022', stream: true, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }, 'event: message_start'],
    ['/responses', { model: 'gpt-4o-mini', stream: true, input: 'hi' }, 'event: response.created'],
  ])('%s: the headers and the first frame in one write, no Web stream built for it', async (path, body, firstFrame) => {
    let body$ = '';
    // The local server writes the answer's bytes itself (lambda/entry/sse-write.ts).
    const webStream = jest.spyOn(SseBody.prototype, 'stream');
    const writes = await socketWrites(async () => {
      const res = await post(path, body);
      expect(res.status).toBe(200);
      body$ = await res.text();
    }).finally(() => webStream.mockRestore());
    expect(webStream).not.toHaveBeenCalled();
    expect(body$).toContain(firstFrame);
    const head = writes.filter((w) => w.startsWith('HTTP/1.1 200'));
    expect(head).toHaveLength(1);
    expect(head[0]).toMatch(/content-type: text\/event-stream/i);
    // The first frame rides with the headers (chunked: its size line, then the frame).
    expect(head[0].slice(head[0].indexOf('\r\n\r\n') + 4)).toContain(firstFrame);
  });

  it('a JSON answer is still sent whole with its headers', async () => {
    const writes = await socketWrites(async () => {
      const res = await post('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
      expect(res.status).toBe(200);
      await res.json();
    });
    const head = writes.filter((w) => w.startsWith('HTTP/1.1 200'));
    expect(head).toHaveLength(1);
    expect(head[0]).toContain('"chat.completion"');
  });

  it('every head carries one Date, the current second\'s (the server makes it, not Node)', async () => {
    const dates = async (path: string, body: object) => {
      const writes = await socketWrites(async () => {
        const res = await post(path, body);
        expect(res.status).toBe(200);
        await res.text();
      });
      const head = writes.find((w) => w.startsWith('HTTP/1.1 200'))!;
      const lines = head.slice(0, head.indexOf('\r\n\r\n')).split('\r\n');
      // Node writes its own as `Date:`; the server's goes out under the name it gave, `date:`.
      expect(lines.filter((l) => l.startsWith('Date:'))).toEqual([]);
      return lines.filter((l) => /^date:/i.test(l)).map((l) => l.slice('date: '.length));
    };
    const stream = { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] };
    const json = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };
    const first = await dates('/chat/completions', stream);
    expect(first).toHaveLength(1);
    expect(Math.abs(Date.parse(first[0]) - Date.now())).toBeLessThan(2000);
    expect(first[0]).toBe(new Date(Date.parse(first[0])).toUTCString());
    // A later second gets its own.
    await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 20));
    for (const later of [await dates('/chat/completions', stream), await dates('/chat/completions', json)]) {
      expect(later).toHaveLength(1);
      expect(Date.parse(later[0])).toBeGreaterThan(Date.parse(first[0]));
      expect(Math.abs(Date.parse(later[0]) - Date.now())).toBeLessThan(2000);
    }
  });
});
