// The upstream's SSE read from the body's data events (lambda/providers/http.ts `sseEvents`, issue
// 22): events in order across any chunking, a bounded read-ahead, the idle timeout only while the
// caller waits, and a body that breaks or is cut.
import { PassThrough } from 'node:stream';
import { GatewayError } from '../../lambda/contract/errors';
import { sseEvents } from '../../lambda/providers/http';

const frame = (i: number) => `data: {"i":${i},"text":"é✓${i}"}\n\n`;
const tick = () => new Promise((r) => setImmediate(r));

async function drain(events: AsyncIterableIterator<{ data: string }>, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const next = await events.next();
    if (next.done) break;
    out.push(next.value.data);
  }
  return out;
}

describe('sseEvents', () => {
  it('gives the events in order however the bytes are cut (multi-byte characters split across chunks)', async () => {
    const body = new PassThrough();
    const events = sseEvents(body, 5_000);
    const bytes = Buffer.from(Array.from({ length: 50 }, (_, i) => frame(i)).join(''));
    for (let at = 0; at < bytes.length; at += 7) body.write(bytes.subarray(at, at + 7));
    body.end();
    const got = await drain(events, 100);
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => `{"i":${i},"text":"é✓${i}"}`));
    await expect(events.next()).resolves.toEqual({ done: true, value: undefined });
  });

  it('decodes as a TextDecoder does: a leading BOM dropped even when split across chunks, an invalid byte as U+FFFD, a character split at the end', async () => {
    const body = new PassThrough();
    const events = sseEvents(body, 5_000);
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const bytes = Buffer.concat([bom, Buffer.from('data: a'), Buffer.from([0xff]), Buffer.from('b\n\ndata: \ufeffkept\n\ndata: ✓')]);
    // The BOM cut in two, then the rest with the last character's bytes cut before its end.
    body.write(bytes.subarray(0, 2));
    body.write(bytes.subarray(2, bytes.length - 2));
    body.write(bytes.subarray(bytes.length - 2));
    body.end(Buffer.from('\n\n'));
    const expected = new TextDecoder().decode(bytes);
    expect(expected.startsWith('data: a\ufffdb')).toBe(true);
    expect(await drain(events, 10)).toEqual(['a\ufffdb', '\ufeffkept', '✓']);
  });

  it('has the bytes already in when it starts (the first event with the head) ready for the first read, not a tick later', async () => {
    const body = new PassThrough();
    body.write(frame(0) + frame(1));
    await tick();
    expect(body.readableLength).toBeGreaterThan(0);
    const events = sseEvents(body, 5_000);
    let first: IteratorResult<{ data: string }> | undefined;
    void events.next().then((next) => (first = next));
    // Microtasks only: a body left to start flowing would give its bytes in a process.nextTick, after these.
    for (let i = 0; i < 3; i++) await Promise.resolve();
    expect(first).toEqual({ done: false, value: expect.objectContaining({ data: '{"i":0,"text":"é✓0"}' }) });
    body.write(frame(2));
    body.end();
    expect(await drain(events, 10)).toEqual([1, 2].map((i) => `{"i":${i},"text":"é✓${i}"}`));
  });

  it('pauses the body while 256 events wait for the caller, and takes the rest as it reads', async () => {
    const body = new PassThrough({ highWaterMark: 1024 });
    const events = sseEvents(body, 5_000);
    let written = 0;
    const total = 2_000;
    // The upstream writes as long as the body takes it.
    const writeAll = async () => {
      while (written < total) {
        if (!body.write(frame(written++))) await new Promise((r) => body.once('drain', r));
      }
      body.end();
    };
    const writing = writeAll();
    await tick();
    await tick();
    // The caller has read nothing: the body stopped well short of the whole stream.
    expect(body.isPaused()).toBe(true);
    expect(written).toBeLessThan(total);
    const got = await drain(events, total + 1);
    await writing;
    expect(got).toHaveLength(total);
    expect(JSON.parse(got[total - 1]).i).toBe(total - 1);
  });

  it('times out a silence only while the caller waits', async () => {
    const body = new PassThrough();
    const events = sseEvents(body, 50);
    body.write(frame(1));
    // The caller away for longer than the idle time: the event waits, no timeout.
    await new Promise((r) => setTimeout(r, 120));
    await expect(events.next()).resolves.toMatchObject({ done: false });
    // Now it waits, and the upstream says nothing.
    await expect(events.next()).rejects.toMatchObject({ code: 'upstream_timeout', message: 'The upstream stream stalled.' });
  });

  it('counts the idle time from the last bytes, not the last event: keep-alive comments and an event sent in pieces are not silence', async () => {
    const body = new PassThrough();
    const events = sseEvents(body, 80);
    const pending = events.next();
    // 300 ms without an event, but never 80 ms without a byte (as OpenRouter's `: PROCESSING` comments).
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 40));
      body.write(': keep-alive\n\n');
    }
    const piece = frame(7);
    body.write(piece.slice(0, 10));
    await new Promise((r) => setTimeout(r, 40));
    body.write(piece.slice(10));
    await expect(pending).resolves.toMatchObject({ done: false, value: { data: '{"i":7,"text":"é✓7"}' } });
  });

  it('gives the events that came before a break, then the break as an upstream error', async () => {
    const body = new PassThrough();
    const events = sseEvents(body, 5_000);
    body.write(frame(1) + frame(2));
    body.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    await expect(drain(events, 2)).resolves.toHaveLength(2);
    const failure = await events.next().catch((err) => err);
    expect(failure).toBeInstanceOf(GatewayError);
    expect(failure.message).toBe('The upstream stream broke off.');
  });

  it('a body cut without an error of its own breaks off; return() stops listening and leaves the body to its owner', async () => {
    const cut = new PassThrough();
    const a = sseEvents(cut, 5_000);
    const pending = a.next();
    cut.destroy();
    await expect(pending).rejects.toMatchObject({ message: 'The upstream stream broke off.' });

    const body = new PassThrough();
    const b = sseEvents(body, 5_000);
    await expect(b.return()).resolves.toEqual({ done: true, value: undefined });
    expect(body.listenerCount('data')).toBe(0);
    expect(body.destroyed).toBe(false);
    // An error after that is the owner's, never an unhandled one.
    body.destroy(new Error('cut by its owner'));
    await tick();
    await expect(b.next()).resolves.toEqual({ done: true, value: undefined });
  });
});
