// The metered stream's reader of the upstream (lambda/chat/upstream-reader.ts): every item in order
// whatever the client does, and (issue 22) the first item, read with the upstream's head, handed to
// the client before the next upstream read is set up.
import { UpstreamReader } from '../../lambda/chat/upstream-reader';

/** An upstream of these items that records each read. */
function upstream(values: string[]) {
  let i = 0;
  const reads: number[] = [];
  let returned = false;
  const iterator: AsyncIterator<string> = {
    async next() {
      reads.push(i);
      if (returned || i >= values.length) return { done: true, value: undefined };
      return { done: false, value: values[i++] };
    },
    async return() {
      returned = true;
      return { done: true, value: undefined };
    },
  };
  return { iterator, reads, first: () => iterator.next() };
}

const microtasks = async (n = 20) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};
const macrotask = () => new Promise((resolve) => setImmediate(resolve));

describe('UpstreamReader', () => {
  it('gives the first item at once and reads the upstream again only after a turn of the event loop, then every item in order', async () => {
    const up = upstream(['a', 'b', 'c']);
    const first = await up.first();
    const seen: string[] = [];
    const reader = new UpstreamReader<string, string>(up.iterator, first, { observe: (item) => (seen.push(item), item.toUpperCase()), onFailure: (err) => err });
    expect(seen).toEqual(['a']);
    expect(await reader.next()).toEqual({ done: false, value: 'A' });
    await microtasks();
    // Only the read that gave the first item so far.
    expect(up.reads).toEqual([0]);
    await macrotask();
    const rest: string[] = [];
    for (let next = await reader.next(); !next.done; next = await reader.next()) rest.push(next.value);
    expect(rest).toEqual(['B', 'C']);
    expect(seen).toEqual(['a', 'b', 'c']);
  });

  it('reads nothing more when stopped before that turn', async () => {
    const up = upstream(['a', 'b']);
    const reader = new UpstreamReader<string, string>(up.iterator, await up.first(), { observe: (item) => item, onFailure: (err) => err });
    await reader.stop();
    await macrotask();
    await macrotask();
    expect(up.reads).toEqual([0]);
    expect(await reader.next()).toEqual({ done: false, value: 'a' });
    expect(await reader.next()).toEqual({ done: true, value: undefined });
  });

  it('without a first item, reads the upstream at once', async () => {
    const up = upstream(['a']);
    const reader = new UpstreamReader<string, string>(up.iterator, undefined, { observe: (item) => item, onFailure: (err) => err });
    expect(up.reads).toEqual([0]);
    expect(await reader.next()).toEqual({ done: false, value: 'a' });
    expect(await reader.next()).toEqual({ done: true, value: undefined });
  });
});
