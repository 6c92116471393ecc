// The measuring client: one keep-alive socket per target, times to the last byte and to each SSE event.
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface Target {
  name: string;
  url: string; // origin
  path: string;
  headers: Record<string, string>;
  body: (stream: boolean) => string;
  agent: Agent;
}

export function target(name: string, url: string, path: string, headers: Record<string, string>, body: (stream: boolean) => string): Target {
  return { name, url, path, headers, body, agent: new Agent({ keepAlive: true, maxSockets: 1 }) };
}

export interface Timed {
  status: number;
  totalMs: number;
  /** Time to the first body byte. */
  ttfbMs: number;
  /** Arrival time of each complete SSE event (data: …\n\n), from the start of the request. */
  eventsMs: number[];
  body: string;
}

export function timedRequest(t: Target, stream: boolean, extraHeaders: Record<string, string> = {}): Promise<Timed> {
  const payload = t.body(stream);
  const u = new URL(t.url);
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const req = request(
      {
        hostname: u.hostname,
        port: u.port,
        path: t.path,
        method: 'POST',
        agent: t.agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...t.headers, ...extraHeaders },
      },
      (res) => {
        let ttfb = -1;
        const events: number[] = [];
        let text = '';
        let scanned = 0;
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          const now = performance.now() - start;
          if (ttfb < 0) ttfb = now;
          text += d;
          for (;;) {
            const end = text.indexOf('\n\n', scanned);
            if (end < 0) break;
            events.push(now);
            scanned = end + 2;
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, totalMs: performance.now() - start, ttfbMs: ttfb, eventsMs: events, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
