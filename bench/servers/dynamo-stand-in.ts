// A stand-in for DynamoDB's endpoint: answers every POST with {} at once (bench/servers/gateway.ts,
// BENCH_STORE=stand-in:<url>), so the DynamoDB client's own cost is measured without the JVM.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'content-length': '2' }).end('{}'));
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send!({ type: 'ready', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
