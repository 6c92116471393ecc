/**
 * Group commit per account (local mode: one process serves every request of an account). A write
 * goes out at once when none of its account's is in flight; those that come meanwhile wait for it
 * and go together in the next transaction (at most `max`, those that `same` says can share it).
 * A group that does not land (`together` answers undefined: a condition, a conflict) is applied
 * one write at a time, as without grouping: all or nothing, then each on its own. A group whose
 * `together` throws ends each of its callers' promises with that error (their own retry loops
 * decide, e.g. an answer that may have been lost). One write at a time: one transaction each.
 */
export interface GroupCommitOps<W, R> {
  /** The queue a write waits in (its account). */
  queueOf(w: W): string;
  /** Whether the write may share a transaction at all; the others go alone, at once. */
  groupable(w: W): boolean;
  /** Whether two groupable writes of one queue can share a transaction. */
  same(a: W, b: W): boolean;
  max: number;
  alone(w: W): Promise<R>;
  /** The writes in one transaction: each one's result, in order, or undefined when it did not land. */
  together(ws: W[]): Promise<R[] | undefined>;
}

type Waiting<W, R> = { write: W; resolve: (r: R) => void; reject: (e: unknown) => void };

export class GroupCommit<W, R> {
  private readonly pending = new Map<string, Array<Waiting<W, R>>>();

  constructor(private readonly ops: GroupCommitOps<W, R>) {}

  run(write: W): Promise<R> {
    if (!this.ops.groupable(write)) {
      try {
        return this.ops.alone(write);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise((resolve, reject) => {
      const id = this.ops.queueOf(write);
      const waiting = { write, resolve, reject };
      const queue = this.pending.get(id);
      if (queue) queue.push(waiting);
      else {
        this.pending.set(id, [waiting]);
        void this.flush(id);
      }
    });
  }

  private async flush(id: string): Promise<void> {
    const queue = this.pending.get(id)!;
    // Never throws: a write's own failure (even one thrown at once) ends only its caller's promise.
    const alone = (w: Waiting<W, R>) =>
      Promise.resolve()
        .then(() => this.ops.alone(w.write))
        .then(w.resolve, w.reject);
    try {
      while (queue.length) {
        // The first in line always goes (alone, or with those that can share its transaction).
        const group: Array<Waiting<W, R>> = [queue[0]];
        const rest: Array<Waiting<W, R>> = [];
        for (const w of queue.slice(1)) (group.length < this.ops.max && this.same(w.write, queue[0].write) ? group : rest).push(w);
        queue.splice(0, queue.length, ...rest);
        if (group.length === 1) {
          await alone(group[0]);
          continue;
        }
        let results: R[] | undefined;
        try {
          results = await this.ops.together(group.map((w) => w.write));
        } catch (err) {
          for (const w of group) w.reject(err);
          continue;
        }
        if (results) group.forEach((w, i) => w.resolve(results[i]));
        else await Promise.all(group.map(alone));
      }
    } finally {
      this.pending.delete(id);
    }
  }

  /** `ops.same`, a throw taken as "not together" (the write then goes in a later transaction). */
  private same(a: W, b: W): boolean {
    try {
      return this.ops.same(a, b);
    } catch {
      return false;
    }
  }
}
