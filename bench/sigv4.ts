// npx tsx bench/sigv4.ts: what one DynamoDB request's signature costs (lambda/store/sigv4.ts), with
// the day's signing key kept as a KeyObject (as the signer keeps it) and, side by side in the same
// process, the same final HMAC keyed by a Buffer (as it was until 2026-12-07). On Node 24 an HMAC
// keyed by a Buffer makes Node's prepareSecretKey throw and catch a TypeError (a stack captured)
// on every call. Medians of BENCH_SIGV4_ROUNDS (7) rounds of 20,000 signatures, alternated. Run it
// on Lambda's Node with PATH=<node 24>/bin:$PATH. See docs/BENCHMARKS.md, eighteenth pass.
import { createHmac, createSecretKey } from 'node:crypto';
import { postSigner } from '../lambda/store/sigv4';

const ROUNDS = Number(process.env.BENCH_SIGV4_ROUNDS ?? 7);
const N = 20_000;
const TO_SIGN = `AWS4-HMAC-SHA256\n20261207T000000Z\n20261207/us-east-1/dynamodb/aws4_request\n${'0'.repeat(64)}`;

async function main(): Promise<void> {
  const sign = postSigner(async () => ({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' }), 'us-east-1', 'dynamodb');
  const body = JSON.stringify({ TransactItems: [{ Update: { TableName: 'itapi-accounts', Key: { accountId: { S: 'acct_1' } }, UpdateExpression: 'SET a = :a', ExpressionAttributeValues: { ':a': { N: '1' } } } }] });
  const headers = { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'DynamoDB_20120810.TransactWriteItems' };
  const buffer = Buffer.alloc(32, 7);
  const keyObject = createSecretKey(buffer);
  const sides: Record<string, () => Promise<unknown> | unknown> = {
    'a signature (postSigner)': () => sign('127.0.0.1:8000', headers, body),
    'its HMAC, KeyObject key': () => createHmac('sha256', keyObject).update(TO_SIGN).digest('hex'),
    'its HMAC, Buffer key': () => createHmac('sha256', buffer).update(TO_SIGN).digest('hex'),
  };
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
  for (let round = -1; round < ROUNDS; round++) {
    for (const [name, f] of Object.entries(sides)) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < N; i++) await f();
      if (round >= 0) times[name].push(Number(process.hrtime.bigint() - t0) / N / 1000);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const kept = median(times['its HMAC, KeyObject key']);
  process.stdout.write(`Node ${process.version}, µs a call (median of ${ROUNDS} rounds of ${N}):\n`);
  for (const [name, xs] of Object.entries(times)) process.stdout.write(`  ${name.padEnd(28)}${median(xs).toFixed(2).padStart(8)}${name.startsWith('its HMAC') ? `  ×${(median(xs) / kept).toFixed(1)} the KeyObject's` : ''}\n`);
}

void main();
