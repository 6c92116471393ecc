// The bench's table: each figure beside its target from issue 6, with PASS/MISS.
import type { FirstByteFigures } from './first-byte';
import type { MemoryResults } from './lambda';

export interface Results {
  when: string;
  command: string;
  /** BENCH_QUICK=1: few rounds, a smoke check; its figures are never quoted. */
  quick?: boolean;
  machine: { cpus: number; cpuModel: string; node: string; serversNode?: string; platform: string; memGb: number; loadAvgAtStart: number[] };
  settings: Record<string, unknown>;
  peer: Record<string, unknown>;
  latency: Record<string, { median: number; p99: number; failures: number }>;
  admissionWriteMs: { median: number; p99: number; count: number };
  streams: Record<string, { ttfbMedianMs: number; worstGapMedianMs: number; worstGapMaxMs: number; distinctArrivalsMedian: number; failures: number }>;
  /** First body byte of a stream whose upstream waits 300 ms, per target (the `direct` row is the upstream's own). */
  ttfb300?: Record<string, { medianMs: number; p95Ms: number; failures: number }>;
  /** The same with a long prompt of `chars` characters, paired with `direct` round by round (`addedMedianMs`). */
  ttfbLong?: { chars: number; shape?: 'one' | 'agent'; figures: Record<string, FirstByteFigures> };
  /** The Lambda memory step (bench/lambda.ts, docs/COST.md). */
  memory?: MemoryResults | { error: string };
  /** The Lambda bundle's init (require) and its first request, the tokenizer not loaded yet; the invocation runs on until the tokenizer is in. */
  lambdaFirstRequest?: { initMs: number; initCpuMs: number; firstRequestMs: number; status: number; invocationMs: number };
  /** `storeCpuMsPerRequest`: the CPU of the DynamoDB Local JVM during the target's load, a request (targets on it). */
  throughput: Record<string, { rps: number; cpuMsPerRequest: number; storeCpuMsPerRequest?: number; requests: number; non2xx: number; errors: number; connections: number }>;
  /** CPU a request of the gateway (DynamoDB Local) and Portkey at one offered rate (bench/run.ts `commonRate`). */
  commonRate?: { rate: number; connections: number; gateway: CommonRateRow; portkey: CommonRateRow };
  /** The same with the gateway and Portkey on CPU 0 and DynamoDB Local's JVM, the upstream and the client on the others (bench/procs.ts `pinApart`). */
  commonRatePinned?: { rate: number; connections: number; gateway: CommonRateRow; portkey: CommonRateRow };
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

interface CommonRateRow {
  rps: number;
  cpuMsPerRequest: number;
  /** Each round's CPU-ms a request, in round order (the gateway's and Portkey's round n ran back to back). */
  roundsCpuMsPerRequest: number[];
  requests: number;
  failed: number;
}

/**
 * One-sided sign test: the chance of `below` or more of `n` paired rounds going one way if either
 * side were as likely to be the cheaper one in a round (Binomial(n, 1/2)). Under 0.05, the rounds
 * say the gateway is the cheaper one, not that it was lucky: 15 of 20 rounds (0.021); 14 of 20 is
 * 0.058, not enough.
 */
export function signTest(below: number, n: number): number {
  let tail = 0;
  let choose = 1; // C(n, 0)
  for (let k = 0; k <= n; k++) {
    if (k >= below) tail += choose;
    choose = (choose * (n - k)) / (k + 1);
  }
  return tail / 2 ** n;
}

export const TARGETS = { cpuMsPerRequest: 0.45, maxAddedGapMs: 1, bundleBytes: 250 * 1024, importMs: 60 };


const f = (x: number | undefined, digits = 2) => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(digits));
const pad = (s: string, n: number) => (s.length >= n ? `${s} ` : s + ' '.repeat(n - s.length));
const mark = (pass: boolean | null) => (pass === null ? 'info' : pass ? 'PASS' : 'MISS');

/** The common-rate steps' verdict: the gateway below Portkey in the whole and by the rounds' sign test. */
export function commonRateVerdict(common: NonNullable<Results['commonRate']>, where: string): Verdict {
  const [g, p] = [common.gateway.roundsCpuMsPerRequest, common.portkey.roundsCpuMsPerRequest];
  const below = g.filter((x, i) => x < p[i]).length;
  const pValue = signTest(below, g.length);
  return {
    figure: `CPU per request at one rate, ${common.rate} req/s${where}: gateway vs Portkey`,
    value: `${f(common.gateway.cpuMsPerRequest, 3)} vs ${f(common.portkey.cpuMsPerRequest, 3)} ms; below in ${below} of ${g.length} rounds (sign test p = ${pValue.toPrecision(2)}; round ratios ${g.map((x, i) => f(x / p[i], 2)).join(' ')})`,
    target: "< Portkey's in the whole, and in more rounds than chance gives (one-sided sign test p < 0.05; issue 22)",
    pass: common.gateway.failed === 0 && common.portkey.failed === 0 && g.length === p.length && common.gateway.cpuMsPerRequest < common.portkey.cpuMsPerRequest && pValue < 0.05,
  };
}

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
  out.push({ figure: 'CPU per request: gateway on DynamoDB Local', value: `${f(cpu, 3)} ms`, target: "reported: DynamoDB Local's JVM on the same two cores caps the rate and preempts the gateway (gateway-stand-in-slow isolates the wait)", pass: null });
  const slow = r.throughput['gateway-stand-in-slow'];
  if (slow) {
    out.push({
      figure: `CPU per request: gateway, DynamoDB answers ${r.settings?.standInDelayMs ?? '?'} ms late (stand-in, no JVM)`,
      value: `${f(slow.cpuMsPerRequest, 3)} ms at ${f(slow.rps, 0)} req/s`,
      target: `reported beside Portkey ${f(peerCpu, 3)} ms (at its own, higher rate)`,
      pass: null,
    });
  }
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
  if (r.ttfb300?.gateway && r.ttfb300.direct) {
    const added = r.ttfb300.gateway.medianMs - r.ttfb300.direct.medianMs;
    out.push({ figure: 'first byte added, 300 ms upstream: gateway', value: `${f(added)} ms (p95 +${f(r.ttfb300.gateway.p95Ms - r.ttfb300.direct.p95Ms)})`, target: '≤ 3 ms (median; issue 22)', pass: added <= 3 });
    if (r.ttfb300.relay) {
      const relay = r.ttfb300.relay.medianMs - r.ttfb300.direct.medianMs;
      out.push({
        figure: 'first byte: gateway beyond the bare relay',
        value: `${f(added - relay)} ms (the relay itself ${f(relay)})`,
        target: "reported: the gateway's own work, the hops any proxy adds on this machine taken out",
        pass: null,
      });
    }
  }
  if (r.throughput.gateway && r.throughput.portkey) {
    out.push({
      figure: 'CPU per request, books included: gateway vs Portkey',
      value: `${f(r.throughput.gateway.cpuMsPerRequest, 3)} vs ${f(r.throughput.portkey.cpuMsPerRequest, 3)} ms`,
      target: "< Portkey's, same run (issue 22)",
      pass: r.throughput.gateway.cpuMsPerRequest < r.throughput.portkey.cpuMsPerRequest,
    });
    if (r.commonRate) out.push(commonRateVerdict(r.commonRate, ''));
    if (r.commonRatePinned) out.push(commonRateVerdict(r.commonRatePinned, ', the store on its own core'));
    const jvm = r.throughput.gateway.storeCpuMsPerRequest;
    if (jvm !== undefined) {
      out.push({
        figure: "CPU per request: gateway + DynamoDB Local's JVM vs Portkey",
        value: `${f(r.throughput.gateway.cpuMsPerRequest + jvm, 3)} (${f(jvm, 3)} of it the JVM) vs ${f(r.throughput.portkey.cpuMsPerRequest, 3)} ms`,
        target: 'reported: the emulator stands in for a managed service, whose CPU is not on the gateway’s machine',
        pass: null,
      });
    }
  }
  if ('bundleBytes' in (r.coldStart ?? {})) {
    const c = r.coldStart;
    out.push({ figure: 'bundle size (minified, SDK external)', value: `${f(c.bundleBytes / 1024, 1)} KiB`, target: `≤ ${TARGETS.bundleBytes / 1024} KiB`, pass: c.bundleBytes <= TARGETS.bundleBytes });
    out.push({
      figure: 'import time, fresh node (median)',
      value: `${f(c.importMsMedian, 1)} ms, CPU ${f(c.importCpuMsMedian, 1)} ms (CPU with --enable-source-maps ${f(c.importCpuMsWithSourceMapsMedian, 1)}; @aws-sdk/client-dynamodb alone, not loaded: ${f(c.sdkImportMsMedian, 1)})`,
      target: `≤ ${TARGETS.importMs} ms, its DynamoDB client included`,
      pass: c.importMsMedian <= TARGETS.importMs,
    });
  } else {
    out.push({ figure: 'cold start', value: `failed: ${String(r.coldStart?.error).slice(0, 80)}`, target: '', pass: false });
  }
  return out;
}

/** Added figures beside the relay's: target ÷ relay, "n/a" where the relay's is too small to divide by. */
const ratio = (x: number, relay: number) => (Number.isFinite(x) && Number.isFinite(relay) && relay > 0.01 ? `${(x / relay).toFixed(1)}×` : 'n/a');

/** The one table the issue asks for: each target's added latency, added first byte with a 300 ms upstream, CPU per request, and each as a multiple of the relay's. */
export function sideBySideRows(r: Results) {
  const direct = r.latency.direct;
  const t300 = r.ttfb300 ?? {};
  const d300 = t300.direct;
  return Object.keys(r.latency)
    .filter((n) => n !== 'direct')
    .map((name) => ({
      name,
      addedMedianMs: r.latency[name].median - direct.median,
      firstByteAddedMedianMs: t300[name] && d300 ? t300[name].medianMs - d300.medianMs : NaN,
      firstByteAddedP95Ms: t300[name] && d300 ? t300[name].p95Ms - d300.p95Ms : NaN,
      cpuMsPerRequest: r.throughput[name]?.cpuMsPerRequest ?? NaN,
    }));
}

function sideBySide(r: Results): string[] {
  const rows = sideBySideRows(r);
  const relay = rows.find((x) => x.name === 'relay');
  const out = [
    `Side by side (one run; "×relay" = the figure ÷ the bare relay's). JSON: added median to the last byte. First byte: streams from an upstream that waits 300 ms, the target's first byte less the upstream's (${r.ttfb300?.direct ? `${f(r.ttfb300.direct.medianMs)} ms median` : 'not measured'}). CPU: ms per request under load, books included (settlements drained)`,
    `  ${pad('target', 18)}${pad('+JSON ms', 10)}${pad('×relay', 8)}${pad('+1st byte med', 15)}${pad('p95', 8)}${pad('×relay', 8)}${pad('CPU ms/req', 12)}×relay`,
  ];
  for (const x of rows) {
    out.push(
      `  ${pad(x.name, 18)}${pad(f(x.addedMedianMs), 10)}${pad(ratio(x.addedMedianMs, relay?.addedMedianMs ?? NaN), 8)}${pad(f(x.firstByteAddedMedianMs), 15)}${pad(f(x.firstByteAddedP95Ms), 8)}${pad(ratio(x.firstByteAddedMedianMs, relay?.firstByteAddedMedianMs ?? NaN), 8)}${pad(f(x.cpuMsPerRequest, 3), 12)}${ratio(x.cpuMsPerRequest, relay?.cpuMsPerRequest ?? NaN)}`,
    );
  }
  return out;
}

/** First byte with a long prompt: each target's less `direct`'s of the same round, median and p95, and ÷ the relay's. */
function longPromptTable(long: NonNullable<Results['ttfbLong']>): string[] {
  const relay = long.figures.relay?.addedMedianMs ?? NaN;
  const out = [`First byte, 300 ms upstream, a prompt of ${long.chars} characters${long.shape === 'agent' ? " (an agent's history)" : ''} (added: less the upstream's own in the same round)`, `  ${pad('target', 23)}${pad('+med', 9)}${pad('+p95', 9)}${pad('×relay', 8)}failed`];
  for (const [name, x] of Object.entries(long.figures)) {
    if (name === 'direct') continue;
    out.push(`  ${pad(name, 23)}${pad(f(x.addedMedianMs ?? NaN), 9)}${pad(f(x.addedP95Ms ?? NaN), 9)}${pad(ratio(x.addedMedianMs ?? NaN, relay), 8)}${x.failures}`);
  }
  return out;
}

export function memoryTable(m: MemoryResults | { error: string }): string[] {
  if ('error' in m) return [`Lambda memory: not measured (${m.error})`];
  const out = [
    `Lambda memory (the bundle under its streaming adapter, one invocation at a time; ${m.model})`,
    `  measured on this machine's full core: ${m.json.shape}: invocation ${f(m.json.handlerMsMedian, 1)} ms, CPU ${f(m.json.cpuMsMedian, 2)} ms (${f(m.json.cpuToLastByteMsMedian, 2)} before the client's last byte); ${m.stream.shape}: invocation ${f(m.stream.handlerMsMedian, 0)} ms, CPU ${f(m.stream.cpuMsMedian, 1)} ms; require CPU ${f(m.initCpuMs, 1)} ms, tokenizer load CPU ${f(m.tokenizerLoadCpuMs, 0)} ms, RSS with the tokenizer ${f(m.rssWithTokenizerMb, 0)} MB`,
    `  ${pad('MB', 6)}${pad('JSON ms', 10)}${pad('$/M JSON', 10)}${pad('+JSON ms', 10)}${pad('stream ms', 11)}${pad('$/M stream', 12)}${pad('+stream ms', 12)}${pad('require ms', 12)}${pad('tokenizer ms', 14)}${pad('RSS share', 11)}fits`,
  ];
  for (const row of m.rows) {
    out.push(
      `  ${pad(String(row.memoryMb), 6)}${pad(f(row.json.durationMs, 1), 10)}${pad(f(row.json.usdPerMillion, 2), 10)}${pad(f(row.json.addedMs, 1), 10)}${pad(f(row.stream.durationMs, 0), 11)}${pad(f(row.stream.usdPerMillion, 2), 12)}${pad(f(row.stream.addedMs, 0), 12)}${pad(f(row.initMs, 0), 12)}${pad(f(row.tokenizerLoadMs, 0), 14)}${pad(`${f(100 * row.rssShare, 0)} %`, 11)}${row.fits ? 'yes' : 'no'}`,
    );
  }
  out.push(
    `  chosen: ${m.chosenMb !== undefined ? `${m.chosenMb} MB` : 'none of these sizes'} — the smallest size with RSS ≤ ${100 * m.rules.maxRssShare} % of it, ≤ ${m.rules.maxAddedJsonMs} ms added to the client's wait for the JSON answer by the CPU share, a require ≤ ${m.rules.maxInitMs} ms, and a cold instance busy ≤ ${m.rules.maxColdBusyMs ?? Infinity} ms with its require and tokenizer load`,
  );
  return out;
}

export function report(r: Results): string {
  r.verdicts = verdicts(r);
  const lines: string[] = [];
  const names = Object.keys(r.latency);
  const direct = r.latency.direct;
  lines.push('');
  if (r.quick) lines.push('BENCH_QUICK: a smoke check with few rounds; quote none of these figures');
  lines.push(`itapi bench — ${r.when} — ${r.machine.cpus} CPUs (${r.machine.cpuModel}), Node ${r.machine.node}${r.machine.serversNode && r.machine.serversNode !== r.machine.node ? ` (the servers on Node ${r.machine.serversNode}, BENCH_NODE)` : ''}, load at start ${r.machine.loadAvgAtStart.join(' ')}`);
  if (!r.latency.portkey) lines.push(`PEER NOT MEASURED: ${String(r.peer.error ?? 'unknown')}`);
  lines.push('');
  lines.push(...sideBySide(r));
  if (r.ttfbLong) lines.push(...longPromptTable(r.ttfbLong));
  lines.push('');
  lines.push('Non-streaming latency (sequential, interleaved, keep-alive; ms)');
  lines.push(`  ${pad('target', 23)}${pad('median', 9)}${pad('p99', 9)}${pad('+median', 9)}${pad('+p99', 9)}reference +median`);
  for (const n of names) {
    const l = r.latency[n];
    const ref = n === 'relay' ? `${REFERENCE.relay.addedMs}` : n === 'portkey' ? `${REFERENCE.portkey.addedMs}` : '';
    lines.push(`  ${pad(n, 23)}${pad(f(l.median), 9)}${pad(f(l.p99), 9)}${pad(n === 'direct' ? '' : f(l.median - direct.median), 9)}${pad(n === 'direct' ? '' : f(l.p99 - direct.p99), 9)}${ref}${l.failures ? `  (${l.failures} failed)` : ''}`);
  }
  const gwAdded = r.latency.gateway.median - direct.median;
  const wait = r.admissionWriteMs.median;
  lines.push(
    `  gateway: waiting on DynamoDB (one TransactWriteItems round trip, median ${f(wait)} ms, p99 ${f(r.admissionWriteMs.p99)}) = ${f((100 * wait) / gwAdded, 0)}% of the added median; own work ≈ ${f(gwAdded - wait)} ms`,
  );
  lines.push('');
  lines.push(`Streams (20 chunks 25 ms apart; ms)`);
  lines.push(`  ${pad('target', 23)}${pad('TTFB', 9)}${pad('+TTFB', 9)}${pad('worstGap', 10)}${pad('+worstGap', 11)}${pad('maxGap', 9)}arrivals`);
  const sd = r.streams.direct;
  for (const n of Object.keys(r.streams)) {
    const s = r.streams[n];
    lines.push(
      `  ${pad(n, 23)}${pad(f(s.ttfbMedianMs), 9)}${pad(n === 'direct' ? '' : f(s.ttfbMedianMs - sd.ttfbMedianMs), 9)}${pad(f(s.worstGapMedianMs), 10)}${pad(n === 'direct' ? '' : f(s.worstGapMedianMs - sd.worstGapMedianMs), 11)}${pad(f(s.worstGapMaxMs), 9)}${s.distinctArrivalsMedian}/20${s.failures ? `  (${s.failures} failed)` : ''}${n === 'portkey' ? `   ref +TTFB ${REFERENCE.portkey.ttfbAddedMs}` : ''}`,
    );
  }
  lines.push('');
  lines.push(`Throughput and CPU (autocannon, ${r.settings.connections} connections, JSON answers)`);
  lines.push(`  ${pad('target', 23)}${pad('req/s', 9)}${pad('CPU-ms/req', 12)}${pad('+JVM', 8)}${pad('non-2xx', 9)}reference req/s, CPU-ms/req`);
  for (const n of Object.keys(r.throughput)) {
    const t = r.throughput[n];
    const ref = n === 'relay' ? `${REFERENCE.relay.rps}, ${REFERENCE.relay.cpuMs}` : n === 'portkey' ? `${REFERENCE.portkey.rps}, ${REFERENCE.portkey.cpuMs}` : n === 'direct' ? '(CPU of the stand-in itself)' : '';
    lines.push(`  ${pad(n, 23)}${pad(f(t.rps, 0), 9)}${pad(f(t.cpuMsPerRequest, 3), 12)}${pad(t.storeCpuMsPerRequest === undefined ? '' : f(t.storeCpuMsPerRequest, 3), 8)}${pad(String(t.non2xx + t.errors), 9)}${ref}`);
  }
  lines.push("  (+JVM: DynamoDB Local's own CPU a request during that load, for the targets on it; real DynamoDB's is not on the gateway's machine)");
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
  if (r.lambdaFirstRequest) {
    const l = r.lambdaFirstRequest;
    lines.push('', `Lambda bundle, cold: require ${f(l.initMs, 1)} ms (CPU ${f(l.initCpuMs, 1)}), then its first request ${f(l.firstRequestMs, 1)} ms to the last byte (status ${l.status}); that invocation ended after ${f(l.invocationMs, 0)} ms, the tokenizer loaded after the answer`);
  }
  if (r.memory) lines.push('', ...memoryTable(r.memory));
  lines.push('');
  lines.push('Targets (issues 12 and 22)');
  for (const v of r.verdicts) lines.push(`  ${pad(mark(v.pass), 6)}${pad(v.figure, 40)}${pad(v.value, 52)}${v.target}`);
  lines.push('');
  lines.push(`(${f(r.durationS, 0)} s in all; load average at end ${(r.loadAvgAtEnd ?? []).join(' ')} on ${r.machine.cpus} CPUs: the machine is shared, so a busy neighbour inflates every figure)`);
  lines.push('');
  return lines.join('\n');
}
