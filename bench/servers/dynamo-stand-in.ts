// A stand-in for DynamoDB's endpoint: answers every POST with {} (bench/servers/gateway.ts,
// BENCH_STORE=stand-in:<url>), so the DynamoDB client's own cost is measured without the JVM.
// STAND_IN_DELAY_MS: each answer waits that long first (a timer, no CPU), so the gateway sees
// DynamoDB Local's latency without its JVM's work on the same cores (bench/dynamo-topology.ts).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';

const delayMs = Number(process.env.STAND_IN_DELAY_MS ?? 0);
// As DynamoDB answers: a request id and the body's CRC32 (the gateway's client takes nothing else for DynamoDB's answer).
const answer = (res: import('node:http').ServerResponse) =>
  res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'content-length': '2', 'x-amzn-requestid': 'stand-in', 'x-amz-crc32': String(crc32(Buffer.from('{}'))) }).end('{}');

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => (delayMs > 0 ? setTimeout(answer, delayMs, res) : answer(res)));
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send!({ type: 'ready', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
