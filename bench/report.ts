// The bench's table: each figure beside its target from issue 6, with PASS/MISS.

export interface Results {
  when: string;
  command: string;
  machine: { cpus: number; cpuModel: string; node: string; platform: string; memGb: number; loadAvgAtStart: number[] };
  settings: Record<string, unknown>;
  peer: Record<string, unknown>;
  latency: Record<string, { median: number; p99: number; failures: number }>;
  admissionWriteMs: { median: number; p99: number; count: number };
  streams: Record<string, { ttfbMedianMs: number; worstGapMedianMs: number; worstGapMaxMs: number; distinctArrivalsMedian: number; failures: number }>;
  throughput: Record<string, { rps: number; cpuMsPerRequest: number; requests: number; non2xx: number; errors: number; connections: number }>;
  dynamo: { kinds: Record<string, any>; clients?: Array<{ client: string; loadMs: number; getItem: { cpuMs: number; wallMs: number }; transactWriteItems: { cpuMs: number; wallMs: number } }> };
  coldStart: any;
  /** Write units per request with 10 and 1,000 requests of one account in flight (issue 10). */
  inFlight?: Array<{ inFlight: number; admittedTogether: number; answered200: number; admissionUnitsPerRequest: number; settlementUnitsPerRequest: number; accountItemBytes: number; seconds: number }> | { error: string };
  durationS: number;
  loadAvgAtEnd?: number[];
  verdicts?: Verdict[];
}

export interface Verdict {
  figure: string;
  value: string;
  target: string;
  pass: boolean | null;
}

/** Reference figures from the issue (this kind of machine, same stand-in). */
export const REFERENCE = {
  relay: { addedMs: 0.7, cpuMs: 0.06, rps: 16000 },
  portkey: { addedMs: 1.7, cpuMs: 0.9, rps: 1400, ttfbAddedMs: 28 },
};

export const TARGETS = { cpuMsPerRequest: 0.45, maxAddedGapMs: 1, bundleBytes: 250 * 1024, importMs: 60 };


const f = (x: number | undefined, digits = 2) => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(digits));
const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const mark = (pass: boolean | null) => (pass === null ? 'info' : pass ? 'PASS' : 'MISS');

export function verdicts(r: Results): Verdict[] {
  const out: Verdict[] = [];
  const direct = r.latency.direct;
  const added = (name: string) => (r.latency[name] ? r.latency[name].median - direct.median : NaN);
  const addedP99 = (name: string) => (r.latency[name] ? r.latency[name].p99 - direct.p99 : NaN);
  const rtt = r.admissionWriteMs.median;
  const relayAdded = added('relay');
  out.push({
    figure: 'non-stream added median: gateway',
    value: `${f(added('gateway'))} ms (p99 +${f(addedP99('gateway'))} ms)`,
    target: `≤ relay ${f(relayAdded)} + 1 DynamoDB RT ${f(rtt)} + 0.5 = ${f(relayAdded + rtt + 0.5)} ms`,
    pass: added('gateway') <= relayAdded + rtt + 0.5,
  });
  const ttfb = (name: string) => (r.streams[name] ? r.streams[name].ttfbMedianMs - r.streams.direct.ttfbMedianMs : NaN);
  const gap = (name: string) => (r.streams[name] ? r.streams[name].worstGapMedianMs - r.streams.direct.worstGapMedianMs : NaN);
  out.push({ figure: 'stream TTFB added: gateway', value: `${f(ttfb('gateway'))} ms`, target: `≤ 1 RT + 1 = ${f(rtt + 1)} ms`, pass: ttfb('gateway') <= rtt + 1 });
  out.push({ figure: 'stream worst added gap: gateway', value: `${f(gap('gateway'))} ms`, target: `≤ ${TARGETS.maxAddedGapMs} ms`, pass: gap('gateway') <= TARGETS.maxAddedGapMs });
  const cpu = r.throughput.gateway?.cpuMsPerRequest;
  const standIn = r.throughput['gateway-stand-in']?.cpuMsPerRequest;
  const peerCpu = r.throughput.portkey?.cpuMsPerRequest;
  out.push({
    figure: 'CPU per request: gateway, its DynamoDB calls answered by a Node stand-in',
    value: `${f(standIn, 3)} ms`,
    target: `< Portkey ${f(peerCpu, 3)} ms in this run (aim ${TARGETS.cpuMsPerRequest})`,
    pass: peerCpu === undefined || standIn === undefined ? null : standIn < peerCpu,
  });
  out.push({ figure: 'CPU per request: gateway on DynamoDB Local', value: `${f(cpu, 3)} ms`, target: "reported (includes waking DynamoDB Local's JVM on the same cores)", pass: null });
  out.push({ figure: 'requests/s: gateway (whole local stack)', value: f(r.throughput.gateway?.rps, 0), target: 'reported as is (DynamoDB Local on the same cores bounds it)', pass: null });
  if (r.throughput['gateway-memory']) {
    const m = r.throughput['gateway-memory'];
    out.push({ figure: 'requests/s: gateway, store in memory', value: `${f(m.rps, 0)} (${f(m.cpuMsPerRequest, 3)} CPU-ms/req)`, target: "reported as is (the gateway's own ceiling)", pass: null });
  }
  if (r.inFlight && !('error' in r.inFlight) && r.inFlight.length >= 2) {
    const [low, high] = [r.inFlight[0], r.inFlight[r.inFlight.length - 1]];
    const per = (x: typeof low) => x.admissionUnitsPerRequest + x.settlementUnitsPerRequest;
    out.push({
      figure: `write units/request at ${low.inFlight} vs ${high.inFlight} in flight`,
      value: `${f(per(low), 2)} vs ${f(per(high), 2)} (${high.admittedTogether} admitted together)`,
      target: 'within 30 %, all admitted',
      pass: Math.abs(per(high) - per(low)) / per(low) <= 0.3 && high.admittedTogether === high.inFlight,
    });
  }
  if ('bundleBytes' in (r.coldStart ?? {})) {
    const c = r.coldStart;
    out.push({ figure: 'bundle size (minified, SDK external)', value: `${f(c.bundleBytes / 1024, 1)} KiB`, target: `≤ ${TARGETS.bundleBytes / 1024} KiB`, pass: c.bundleBytes <= TARGETS.bundleBytes });
    out.push({
      figure: 'import time, fresh node (median)',
      value: `${f(c.importMsMedian, 1)} ms (@aws-sdk/client-dynamodb alone, no longer loaded: ${f(c.sdkImportMsMedian, 1)})`,
      target: `≤ ${TARGETS.importMs} ms, its DynamoDB client included`,
      pass: c.importMsMedian <= TARGETS.importMs,
    });
  } else {
    out.push({ figure: 'cold start', value: `failed: ${String(r.coldStart?.error).slice(0, 80)}`, target: '', pass: false });
  }
  return out;
}

export function report(r: Results): string {
  r.verdicts = verdicts(r);
  const lines: string[] = [];
  const names = Object.keys(r.latency);
  const direct = r.latency.direct;
  lines.push('');
  lines.push(`itapi bench — ${r.when} — ${r.machine.cpus} CPUs (${r.machine.cpuModel}), Node ${r.machine.node}, load at start ${r.machine.loadAvgAtStart.join(' ')}`);
  if (!r.latency.portkey) lines.push(`PEER NOT MEASURED: ${String(r.peer.error ?? 'unknown')}`);
  lines.push('');
  lines.push('Non-streaming latency (sequential, interleaved, keep-alive; ms)');
  lines.push(`  ${pad('target', 16)}${pad('median', 9)}${pad('p99', 9)}${pad('+median', 9)}${pad('+p99', 9)}reference +median`);
  for (const n of names) {
    const l = r.latency[n];
    const ref = n === 'relay' ? `${REFERENCE.relay.addedMs}` : n === 'portkey' ? `${REFERENCE.portkey.addedMs}` : '';
    lines.push(`  ${pad(n, 16)}${pad(f(l.median), 9)}${pad(f(l.p99), 9)}${pad(n === 'direct' ? '' : f(l.median - direct.median), 9)}${pad(n === 'direct' ? '' : f(l.p99 - direct.p99), 9)}${ref}${l.failures ? `  (${l.failures} failed)` : ''}`);
  }
  const gwAdded = r.latency.gateway.median - direct.median;
  const wait = r.admissionWriteMs.median;
  lines.push(
    `  gateway: waiting on DynamoDB (one TransactWriteItems round trip, median ${f(wait)} ms, p99 ${f(r.admissionWriteMs.p99)}) = ${f((100 * wait) / gwAdded, 0)}% of the added median; own work ≈ ${f(gwAdded - wait)} ms`,
  );
  lines.push('');
  lines.push(`Streams (20 chunks 25 ms apart; ms)`);
  lines.push(`  ${pad('target', 16)}${pad('TTFB', 9)}${pad('+TTFB', 9)}${pad('worstGap', 10)}${pad('+worstGap', 11)}${pad('maxGap', 9)}arrivals`);
  const sd = r.streams.direct;
  for (const n of Object.keys(r.streams)) {
    const s = r.streams[n];
    lines.push(
      `  ${pad(n, 16)}${pad(f(s.ttfbMedianMs), 9)}${pad(n === 'direct' ? '' : f(s.ttfbMedianMs - sd.ttfbMedianMs), 9)}${pad(f(s.worstGapMedianMs), 10)}${pad(n === 'direct' ? '' : f(s.worstGapMedianMs - sd.worstGapMedianMs), 11)}${pad(f(s.worstGapMaxMs), 9)}${s.distinctArrivalsMedian}/20${s.failures ? `  (${s.failures} failed)` : ''}${n === 'portkey' ? `   ref +TTFB ${REFERENCE.portkey.ttfbAddedMs}` : ''}`,
    );
  }
  lines.push('');
  lines.push(`Throughput and CPU (autocannon, ${r.settings.connections} connections, JSON answers)`);
  lines.push(`  ${pad('target', 16)}${pad('req/s', 9)}${pad('CPU-ms/req', 12)}${pad('non-2xx', 9)}reference req/s, CPU-ms/req`);
  for (const n of Object.keys(r.throughput)) {
    const t = r.throughput[n];
    const ref = n === 'relay' ? `${REFERENCE.relay.rps}, ${REFERENCE.relay.cpuMs}` : n === 'portkey' ? `${REFERENCE.portkey.rps}, ${REFERENCE.portkey.cpuMs}` : n === 'direct' ? '(CPU of the stand-in itself)' : '';
    lines.push(`  ${pad(n, 16)}${pad(f(t.rps, 0), 9)}${pad(f(t.cpuMsPerRequest, 3), 12)}${pad(String(t.non2xx + t.errors), 9)}${ref}`);
  }
  lines.push('');
  lines.push('DynamoDB work per request kind (warm caches, one request at a time)');
  lines.push(`  ${pad('kind', 22)}${pad('calls', 7)}${pad('WCU(rule)', 11)}${pad('WCU(reported)', 15)}${pad('client CPU-ms', 14)}calls`);
  for (const [kind, k] of Object.entries(r.dynamo.kinds)) {
    const by = k.byCommand as Record<string, any>;
    const rule = k.ruleUnitsPerRequest as number;
    const calls = Object.entries(by)
      .map(([cmd, c]) => `${cmd}×${f(c.callsPerRequest, 2)}${Object.keys(c.errors).length ? ` (${Object.entries(c.errors).map(([e, n]) => `${e} ${n}`).join(', ')})` : ''}`)
      .join(', ');
    lines.push(
      `  ${pad(kind, 22)}${pad(f(k.callsPerRequest, 2), 7)}${pad(f(rule, 2), 11)}${pad(k.capacityUnitsPerRequest ? `${f(k.capacityUnitsPerRequest, 2)}${k.capacityFullyReported ? '' : ' (partial)'}` : 'none', 15)}${pad(f(k.clientCpuMsPerRequest, 3), 14)}${calls || '-'}`,
    );
  }
  if (r.dynamo.clients) {
    lines.push('');
    lines.push('DynamoDB clients, the same calls side by side (sequential, against DynamoDB Local; CPU-ms / wall-ms per call)');
    lines.push(`  ${pad('client', 40)}${pad('GetItem', 18)}${pad('TransactWriteItems', 20)}load`);
    for (const c of r.dynamo.clients) {
      lines.push(
        `  ${pad(c.client, 40)}${pad(`${f(c.getItem.cpuMs, 3)} / ${f(c.getItem.wallMs)}`, 18)}${pad(`${f(c.transactWriteItems.cpuMs, 3)} / ${f(c.transactWriteItems.wallMs)}`, 20)}${Number.isNaN(c.loadMs) ? '' : `${f(c.loadMs, 1)} ms`}`,
      );
    }
  }
  if (r.inFlight) {
    lines.push('');
    lines.push('Write units per request with N requests of one account in flight (ReturnConsumedCapacity)');
    if ('error' in r.inFlight) lines.push(`  failed: ${r.inFlight.error}`);
    else {
      lines.push(`  ${pad('in flight', 11)}${pad('admitted', 10)}${pad('admission', 11)}${pad('settlement', 12)}${pad('account item', 14)}seconds`);
      for (const x of r.inFlight) {
        lines.push(`  ${pad(String(x.inFlight), 11)}${pad(String(x.admittedTogether), 10)}${pad(f(x.admissionUnitsPerRequest, 2), 11)}${pad(f(x.settlementUnitsPerRequest, 2), 12)}${pad(`${x.accountItemBytes} B`, 14)}${f(x.seconds, 1)}`);
      }
    }
  }
  lines.push('');
  lines.push('Targets (issue 12)');
  for (const v of r.verdicts) lines.push(`  ${pad(mark(v.pass), 6)}${pad(v.figure, 40)}${pad(v.value, 52)}${v.target}`);
  lines.push('');
  lines.push(`(${f(r.durationS, 0)} s in all; load average at end ${(r.loadAvgAtEnd ?? []).join(' ')} on ${r.machine.cpus} CPUs: the machine is shared, so a busy neighbour inflates every figure)`);
  lines.push('');
  return lines.join('\n');
}
