// Counts and times every DynamoDB call a gateway makes, through SDK middleware on its client
// (production code unchanged). With `capacity` on it also asks for ReturnConsumedCapacity.
import { GetItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface CallStats {
  calls: number;
  errors: Record<string, number>;
  wallMs: number[];
  /** CPU (user + system) from send() to its result: meaningful when one request is in flight. */
  cpuMs: number[];
  /** CPU before the HTTP handler is called (serialise, endpoint, sign…) and after it returns. */
  preCpuMs: number[];
  postCpuMs: number[];
  httpCpuMs: number[];
  capacityUnits: number;
  capacityReported: number;
}

export type MeterSnapshot = Record<string, CallStats>;

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

export class DynamoMeter {
  private stats: MeterSnapshot = {};
  private capacity = false;
  private captured: { method: string; path: string; headers: Record<string, string>; body: string } | undefined;
  private capture = false;

  constructor(private readonly client: DynamoDBClient) {
    const stack = client.middlewareStack as any;
    stack.add(
      (next: any, context: any) => async (args: any) => {
        const name: string = context.commandName ?? 'unknown';
        const s = (this.stats[name] ??= { calls: 0, errors: {}, wallMs: [], cpuMs: [], preCpuMs: [], postCpuMs: [], httpCpuMs: [], capacityUnits: 0, capacityReported: 0 });
        if (this.capacity && args.input && typeof args.input === 'object') args.input.ReturnConsumedCapacity = 'TOTAL';
        const t0 = performance.now();
        const c0 = cpuNow();
        const marks: number[] = [];
        context.__benchMarks = marks;
        try {
          const out = await next(args);
          const cc = out.output?.ConsumedCapacity;
          if (cc) {
            const list = Array.isArray(cc) ? cc : [cc];
            for (const c of list) s.capacityUnits += c.CapacityUnits ?? c.WriteCapacityUnits ?? 0;
            s.capacityReported++;
          }
          return out;
        } catch (err: any) {
          s.errors[err?.name ?? 'Error'] = (s.errors[err?.name ?? 'Error'] ?? 0) + 1;
          throw err;
        } finally {
          const c1 = cpuNow();
          s.calls++;
          s.wallMs.push(performance.now() - t0);
          s.cpuMs.push(c1 - c0);
          if (marks.length === 2) {
            s.preCpuMs.push(marks[0] - c0);
            s.httpCpuMs.push(marks[1] - marks[0]);
            s.postCpuMs.push(c1 - marks[1]);
          }
        }
      },
      { step: 'initialize', priority: 'high', name: 'benchMeterOuter' },
    );
    stack.add(
      (next: any, context: any) => async (args: any) => {
        const marks: number[] | undefined = context.__benchMarks;
        if (this.capture && args.request) {
          const r = args.request;
          this.captured = { method: r.method, path: r.path, headers: { ...r.headers }, body: String(r.body) };
          this.capture = false;
        }
        marks?.push(cpuNow());
        try {
          return await next(args);
        } finally {
          marks?.push(cpuNow());
        }
      },
      { step: 'deserialize', priority: 'low', name: 'benchMeterInner' },
    );
    // With cacheMiddleware the client keeps each command's resolved stack: drop what it resolved
    // before the meter was added.
    delete (client as any).handlers;
  }

  reset(capacity: boolean): void {
    this.stats = {};
    this.capacity = capacity;
  }

  snapshot(): MeterSnapshot {
    return this.stats;
  }

  /**
   * The same GetItem n times through the SDK and n times as a bare HTTP request with the bytes
   * the SDK sent (one keep-alive socket each way): CPU and wall time per call.
   */
  async sdkVsHttp(table: string, n: number) {
    const command = () => new GetItemCommand({ TableName: table, Key: { account_id: { S: 'bench-probe' } } });
    for (let i = 0; i < 50; i++) await this.client.send(command());
    this.capture = true;
    await this.client.send(command());
    const captured = this.captured!;
    const saved = this.stats;
    this.stats = {};
    const c0 = cpuNow();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await this.client.send(command());
    const sdk = { cpuMs: (cpuNow() - c0) / n, wallMs: (performance.now() - t0) / n };
    const phases = this.stats.GetItemCommand;
    this.stats = saved;

    const host = captured.headers.host ?? captured.headers.Host;
    const [hostname, port] = host.split(':');
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const once = () =>
      new Promise<void>((resolve, reject) => {
        const req = request({ hostname, port: Number(port), method: captured.method, path: captured.path, headers: captured.headers, agent }, (res) => {
          res.on('data', () => undefined);
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`raw replay answered ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end(captured.body);
      });
    for (let i = 0; i < 50; i++) await once();
    const c1 = cpuNow();
    const t1 = performance.now();
    for (let i = 0; i < n; i++) await once();
    const http = { cpuMs: (cpuNow() - c1) / n, wallMs: (performance.now() - t1) / n };
    agent.destroy();
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    return {
      n,
      sdk,
      http,
      ratio: sdk.cpuMs / http.cpuMs,
      sdkPhasesMedianCpuMs: phases ? { beforeHttp: med(phases.preCpuMs), http: med(phases.httpCpuMs), afterHttp: med(phases.postCpuMs) } : undefined,
    };
  }
}
