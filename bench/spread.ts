// npx tsx bench/spread.ts: what an object literal costs on the running Node.js when keys are
// written after a spread (`{ ...source, a, b }`) against the same keys before it (`{ a, b,
// ...source }`), for 1, 8 and 17 keys new to the source. On Node 20 (V8 11.3) each key written
// after a spread costs about a microsecond and leaves garbage; Node 22 and 24 do not. This is why
// the settlement's ledger item is built with the hold's fields first and the rest spread last
// (lambda/money/settlement.ts `holdLedger`). See docs/BENCHMARKS.md, "The first byte, fourteenth pass".
// Then an upstream call's options with its URL's fields spread in (`{ method, agent, headers,
// ...address }`): Node's own `urlToHttpOptions` object (no prototype, every URL field) against
// the plain object of the four fields `http.request` reads (lambda/providers/http.ts `addressOf`).
// Run it under another Node with that Node first on PATH.
import { performance } from 'node:perf_hooks';
import { urlToHttpOptions } from 'node:url';

const ROUNDS = Number(process.env.BENCH_SPREAD_ROUNDS ?? 200_000);
const source = { accountId: 'acct_1', kind: 'request', atMs: 1, id: 'req_1', keyId: 'key_1', model: 'm', estimatedTokens: 10, holdMicroUsd: 100 };

function literal(keys: number, after: boolean): (s: object, i: number) => { accountId: string } {
  const fields = Array.from({ length: keys }, (_, j) => `k${j}: i`).join(', ');
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function('s', 'i', after ? `return { ...s, ${fields} };` : `return { ${fields}, ...s };`) as never;
}

function timeUs(make: (s: object, i: number) => { accountId: string }): number {
  let sink = 0;
  for (let i = 0; i < 20_000; i++) sink += make(source, i).accountId.length;
  const t0 = performance.now();
  for (let i = 0; i < ROUNDS; i++) sink += make(source, i).accountId.length;
  const us = ((performance.now() - t0) * 1000) / ROUNDS;
  return sink < 0 ? -1 : us;
}

const rows = [`Node ${process.version}: µs an object (${ROUNDS} each)`, 'new keys   after the spread   before the spread   ratio'];
for (const keys of [1, 8, 17]) {
  const after = timeUs(literal(keys, true));
  const before = timeUs(literal(keys, false));
  rows.push(`${String(keys).padStart(8)}${after.toFixed(3).padStart(19)}${before.toFixed(3).padStart(20)}${(after / before).toFixed(1).padStart(8)}`);
}
const nodes = urlToHttpOptions(new URL('http://127.0.0.1:12345/delay/300/v1/chat/completions'));
const plain = { protocol: nodes.protocol, hostname: nodes.hostname, port: nodes.port, path: nodes.path };
const headers = { 'content-type': 'application/json' };
const options = (address: object) => (_s: object, i: number) => ({ method: 'POST', agent: i, headers, ...address, accountId: 'x' });
const fromNode = timeUs(options(nodes));
const fromPlain = timeUs(options(plain));
rows.push('', 'request options with the URL spread in   urlToHttpOptions   plain   ratio');
rows.push(`${''.padStart(40)}${fromNode.toFixed(3).padStart(18)}${fromPlain.toFixed(3).padStart(8)}${(fromNode / fromPlain).toFixed(1).padStart(8)}`);
process.stdout.write(`${rows.join('\n')}\n`);
