// The floor: a relay in a few lines that only forwards the body and streams the answer back,
// with no auth, validation or accounting. RELAY_CLIENT=http (default) pipes through
// node:http's request on a keep-alive agent; RELAY_CLIENT=fetch uses global fetch (undici), the
// client the gateway's providers use, so the two show what the HTTP client alone costs.
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

const upstream = new URL(process.env.UPSTREAM_URL!);
const agent = new Agent({ keepAlive: true });

const server = createServer(async (req, res) => {
  if (process.env.RELAY_CLIENT !== 'fetch') {
    const out = request({ hostname: upstream.hostname, port: upstream.port, path: req.url, method: 'POST', headers: { 'content-type': 'application/json' }, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, { 'content-type': answer.headers['content-type'] ?? 'application/json' });
      answer.pipe(res);
    });
    out.on('error', () => res.writeHead(502).end());
    req.pipe(out);
    return;
  }
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  try {
    const answer = await fetch(upstream.origin + req.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.concat(parts) });
    res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
    for await (const chunk of answer.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
    res.end();
  } catch {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  }
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send?.({ type: 'ready', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
