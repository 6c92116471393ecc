import { GroupCommit, type GroupCommitOps } from '../../lambda/money/group-commit';

/** GroupCommit (local mode's group commit of admissions and settlements): who goes with whom, and that every caller gets an answer. */

type W = { queue: string; n: number; kind?: string };

function harness(over: Partial<GroupCommitOps<W, string>> = {}) {
  const transactions: number[][] = [];
  let release: (() => void) | undefined;
  /** While set, every transaction waits for `open()`: the writes that come meanwhile queue up. */
  let gate: Promise<void> | undefined;
  const hold = () => (gate = new Promise<void>((resolve) => (release = resolve)));
  const open = () => {
    gate = undefined;
    release?.();
  };
  const ops: GroupCommitOps<W, string> = {
    queueOf: (w) => w.queue,
    groupable: (w) => w.kind !== 'alone',
    same: (a, b) => (a.kind ?? '') === (b.kind ?? ''),
    max: 3,
    async alone(w) {
      await gate;
      transactions.push([w.n]);
      return `alone ${w.n}`;
    },
    async together(ws) {
      await gate;
      transactions.push(ws.map((w) => w.n));
      return ws.map((w) => `together ${w.n}`);
    },
    ...over,
  };
  return { commit: new GroupCommit(ops), transactions, hold, open };
}

it('sends the first write at once and those that come meanwhile together, at most max a transaction, one kind a group', async () => {
  const h = harness();
  h.hold();
  const first = h.commit.run({ queue: 'a', n: 0 });
  const rest = [1, 2, 3, 4].map((n) => h.commit.run({ queue: 'a', n, kind: n === 2 ? 'x' : undefined }));
  const other = h.commit.run({ queue: 'b', n: 9 });
  h.open();
  expect(await Promise.all([first, ...rest, other])).toEqual(['alone 0', 'together 1', 'alone 2', 'together 3', 'together 4', 'alone 9']);
  // Queue a: 0 alone; then 1, 3, 4 (max 3, the same kind as 1); then 2 alone. Queue b on its own, at once.
  expect(h.transactions).toEqual([[0], [9], [1, 3, 4], [2]]);
});

it('a group that did not land is applied one by one; one that failed ends each caller with its error', async () => {
  let refuse = true;
  const h = harness({
    async together(ws) {
      if (refuse) return undefined;
      throw new Error(`lost ${ws.map((w) => w.n).join(',')}`);
    },
  });
  h.hold();
  const first = h.commit.run({ queue: 'a', n: 0 });
  const refused = [1, 2].map((n) => h.commit.run({ queue: 'a', n }));
  h.open();
  expect(await Promise.all([first, ...refused])).toEqual(['alone 0', 'alone 1', 'alone 2']);
  refuse = false;
  // The account's queue is done with (its flush ended): the next write starts a new one.
  await new Promise((resolve) => setImmediate(resolve));
  h.hold();
  const again = h.commit.run({ queue: 'a', n: 5 });
  const failed = [6, 7].map((n) => h.commit.run({ queue: 'a', n }).catch((e: Error) => e.message));
  h.open();
  expect(await Promise.all([again, ...failed])).toEqual(['alone 5', 'lost 6,7', 'lost 6,7']);
});

it('every caller gets an answer when a write throws at once or `same` throws, and the queue goes on', async () => {
  const h = harness({
    alone(w) {
      if (w.n === 1) throw new Error('thrown at once');
      return Promise.resolve(`alone ${w.n}`);
    },
    same(a, b) {
      if (a.n === 3 || b.n === 3) throw new Error('cannot compare');
      return a.n !== 1 && b.n !== 1;
    },
    async together(ws) {
      return ws.map((w) => `together ${w.n}`);
    },
  });
  const results = await Promise.all([0, 1, 2, 3, 4].map((n) => h.commit.run({ queue: 'a', n }).catch((e: Error) => e.message)));
  expect(results).toEqual(['alone 0', 'thrown at once', 'together 2', 'alone 3', 'together 4']);
  // Nothing left waiting: the next write goes out at once; one that goes alone by rule and throws at once rejects.
  expect(await h.commit.run({ queue: 'a', n: 8 })).toBe('alone 8');
  await expect(h.commit.run({ queue: 'a', n: 1, kind: 'alone' })).rejects.toThrow('thrown at once');
});
