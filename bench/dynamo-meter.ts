// Counts and times every DynamoDB call a gateway makes, through a step on its client
// (production code unchanged). With `capacity` on it also asks for ReturnConsumedCapacity. Off
// until `reset` and again after `off` (the step then hands each call straight on): the CPU steps
// of `npm run bench` measure the gateway without the bench's own accounting (two
// `process.cpuUsage()` calls, two timestamps and an async step per DynamoDB call), which Portkey
// does not carry either.
import { performance } from 'node:perf_hooks';
import type { Dynamo, DynamoOperation } from '../lambda/store/dynamo';

export interface CallStats {
  calls: number;
  errors: Record<string, number>;
  wallMs: number[];
  /** CPU (user + system) from the call to its result: meaningful when one request is in flight. */
  cpuMs: number[];
  capacityUnits: number;
  capacityReported: number;
  /** Write units by DynamoDB's documented rules for items under 1 KB: 1 a write (also when its condition fails), 2 an item in a transaction. */
  ruleUnits: number;
}

export type MeterSnapshot = Record<string, CallStats>;

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem']);

export class DynamoMeter {
  private stats: MeterSnapshot = {};
  private capacity = false;
  private on = false;

  constructor(client: Dynamo) {
    client.intercept((operation, input, next) => (this.on ? this.measured(operation, input, next) : next()));
  }

  private async measured(operation: DynamoOperation, input: Record<string, unknown>, next: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
    const s = (this.stats[operation] ??= { calls: 0, errors: {}, wallMs: [], cpuMs: [], capacityUnits: 0, capacityReported: 0, ruleUnits: 0 });
    s.ruleUnits += operation === 'TransactWriteItems' ? 2 * (input.TransactItems as unknown[]).length : WRITES.has(operation) ? 1 : 0;
    if (this.capacity) input.ReturnConsumedCapacity = 'TOTAL';
    const t0 = performance.now();
    const c0 = cpuNow();
    try {
      const out = await next();
      const cc = out.ConsumedCapacity as { CapacityUnits?: number } | Array<{ CapacityUnits?: number }> | undefined;
      if (cc) {
        for (const c of Array.isArray(cc) ? cc : [cc]) s.capacityUnits += c.CapacityUnits ?? 0;
        s.capacityReported++;
      }
      return out;
    } catch (err) {
      const name = (err as { name?: string }).name ?? 'Error';
      s.errors[name] = (s.errors[name] ?? 0) + 1;
      throw err;
    } finally {
      s.calls++;
      s.wallMs.push(performance.now() - t0);
      s.cpuMs.push(cpuNow() - c0);
    }
  }

  /** Clears the counts and starts counting. */
  reset(capacity: boolean): void {
    this.stats = {};
    this.capacity = capacity;
    this.on = true;
  }

  /** Stops counting (the counts so far are kept for `snapshot`). */
  off(): void {
    this.on = false;
  }

  snapshot(): MeterSnapshot {
    return this.stats;
  }
}
