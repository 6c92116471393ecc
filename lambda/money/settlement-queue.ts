import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SettleWrite } from '../store/accounts';
import type { SettlementQueue, Settlements } from './settlement';

/**
 * Local mode's durable queue: one JSON line per settlement that kept failing, appended to a
 * file in the data folder (synced to disk before `send` returns), and applied again by the sweeper loop.
 */
export class FileSettlementQueue implements SettlementQueue {
  constructor(readonly path: string) {}

  async send(write: SettleWrite): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    const fd = openSync(this.path, 'a', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(write)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Applies every queued settlement; those that fail again stay queued. Returns how many were applied. */
  async drain(apply: (write: SettleWrite) => Promise<boolean>): Promise<number> {
    if (!existsSync(this.path)) return 0;
    // Moved aside first, so that settlements queued while this runs are not lost or applied twice.
    const draining = `${this.path}.draining`;
    if (!existsSync(draining)) renameSync(this.path, draining);
    const lines = readFileSync(draining, 'utf8').split('\n').filter(Boolean);
    let applied = 0;
    for (const line of lines) {
      let write: SettleWrite;
      try {
        write = JSON.parse(line) as SettleWrite;
      } catch {
        continue;
      }
      if (await apply(write).catch(() => false)) applied++;
      else await this.send(write);
    }
    rmSync(draining, { force: true });
    return applied;
  }
}

/**
 * Applies what the local queue holds through `replays` (a `Settlements` without a queue of its
 * own): a settlement that still fails stays in the file once, for the next sweep.
 */
export function replayQueued(queue: FileSettlementQueue, replays: Pick<Settlements, 'apply'>): Promise<number> {
  return queue.drain(async (write) => (await replays.apply(write)) !== 'lost');
}

/**
 * A task run on demand and on a timer, one run at a time, where a call means "run from now": a
 * call while a run is in progress waits for it and then starts one more (shared by every call
 * that came meanwhile), so what was queued before a call is always seen by the run it gets. (A
 * run already in progress may have read the queue before the call's settlement was put in it.)
 */
export function runsFromNow<T>(task: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  let next: Promise<T> | undefined;
  const run = (): Promise<T> => {
    if (!running) {
      running = task().finally(() => (running = undefined));
      return running;
    }
    // `running`'s own `finally` has cleared it by the time this follows it.
    next ??= running
      .catch(() => undefined)
      .then(() => {
        next = undefined;
        return run();
      });
    return next;
  };
  return run;
}

/** AWS's durable queue: an SQS queue (with a dead-letter queue and an alarm) the sweeper function consumes. */
export function sqsSettlementQueue(queueUrl: string): SettlementQueue {
  let client: Promise<{ send(write: SettleWrite): Promise<void> }> | undefined;
  return {
    async send(write) {
      client ??= import('@aws-sdk/client-sqs').then(({ SQSClient, SendMessageCommand }) => {
        const sqs = new SQSClient({});
        return {
          async send(w: SettleWrite) {
            await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(w) }));
          },
        };
      });
      await (await client).send(write);
    },
  };
}
