// Counts and times every DynamoDB call a gateway makes, through a step on its client
// (production code unchanged). With `capacity` on it also asks for ReturnConsumedCapacity.
import { performance } from 'node:perf_hooks';
import type { Dynamo } from '../lambda/store/dynamo';

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

  constructor(client: Dynamo) {
    client.intercept(async (operation, input, next) => {
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
    });
  }

  reset(capacity: boolean): void {
    this.stats = {};
    this.capacity = capacity;
  }

  snapshot(): MeterSnapshot {
    return this.stats;
  }
}
