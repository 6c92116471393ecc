// bench/hops.ts: the first byte hop by hop. The preload's log from a real process (a server and
// a client in one Node process on loopback), and the attribution of a log's moments to segments:
// each server's own work, and the hops its process adds against the upstream asked directly.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hopRows, parseHopLog, summarizeHops } from '../../bench/hops';

const PRELOAD = join(__dirname, '../../bench/hops-preload.cjs');

describe('bench/hops-preload.cjs', () => {
  it("logs a POST's moments in the order they happen: the client's write, the server's request, its answer, the client's first body bytes", () => {
    const dir = mkdtempSync(join(tmpdir(), 'hops-test-'));
    try {
      const file = join(dir, 'log');
      const script = `
        const http = require('node:http');
        const server = http.createServer((req, res) => { req.resume(); req.on('end', () => setTimeout(() => res.end('first'), 20)); });
        server.listen(0, '127.0.0.1', () => {
          const req = http.request({ port: server.address().port, host: '127.0.0.1', path: '/delay/300/x', method: 'POST' }, (res) => {
            res.resume();
            res.on('end', () => server.close());
          });
          req.end('{}');
        });`;
      execFileSync(process.execPath, ['--require', PRELOAD, '-e', script], { env: { ...process.env, HOPS_LOG: file, HOPS_NAME: 'proc' } });
      const events = parseHopLog(readFileSync(file, 'utf8'));
      expect(events.map((e) => `${e.name} ${e.moment} ${e.path}`)).toEqual(['proc C-w /delay/300/x', 'proc S-in /delay/300/x', 'proc S-out -', 'proc C-d /delay/300/x']);
      // The answer waited 20 ms: the moments carry the shared monotonic clock in µs.
      expect(events[2].us - events[1].us).toBeGreaterThanOrEqual(19_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('logs nothing without HOPS_LOG', () => {
    const out = execFileSync(process.execPath, ['--require', PRELOAD, '-p', "JSON.stringify(require(process.argv[1]))", PRELOAD], { env: { ...process.env, HOPS_LOG: '' } });
    expect(out.toString().trim()).toBe('{}');
  });
});

describe('hopRows and summarizeHops', () => {
  // One round: the upstream asked directly, then through a relay (times in µs, lines out of order as
  // several processes append them; a DynamoDB call in between is not the upstream's).
  const log = [
    '0 1 client M-begin direct/0',
    '10 1 client C-w /delay/300/v1/chat/completions',
    '600 3 upstream S-in /delay/300/v1/chat/completions',
    '301600 3 upstream S-out -',
    '302700 1 client C-d /delay/300/v1/chat/completions',
    '302800 1 client M-end -',
    '400000 1 client M-begin relay/0',
    '400010 1 client C-w /delay/300/v1/chat/completions',
    '402010 2 relay C-w /delay/300/v1/chat/completions',
    '401010 2 relay S-in /delay/300/v1/chat/completions',
    '402300 2 relay C-w / ',
    '402510 3 upstream S-in /delay/300/v1/chat/completions',
    '703510 3 upstream S-out -',
    '704510 2 relay C-d /delay/300/v1/chat/completions',
    '704610 2 relay S-out -',
    '705610 1 client C-d /delay/300/v1/chat/completions',
    '705700 1 client M-end -',
  ].join('\n');

  it("gives each segment of the relay's request, and its added, work and hops against the direct round", () => {
    const rows = hopRows(parseHopLog(log));
    expect(rows).toHaveLength(2);
    const relay = rows.find((r) => r.target === 'relay')!;
    const close = (a: number | undefined, b: number) => expect(a).toBeCloseTo(b, 6);
    close(relay.total, 305.6);
    close(relay.segments['wake in'], 1.0);
    close(relay.segments.before, 1.0);
    close(relay.segments['to upstream'], 0.5);
    close(relay.segments.wait, 301.0);
    close(relay.segments.back, 1.0);
    close(relay.segments.after, 0.1);
    close(relay.segments.out, 1.0);
    const [summary] = summarizeHops(rows);
    expect(summary.target).toBe('relay');
    expect(summary.rounds).toBe(1);
    close(summary.added, 305.6 - 302.69);
    close(summary.work, 1.1);
    // wake in + to upstream + back + out (3.5) less the direct round's two hops (0.59 + 1.1); the upstream's timer as late in both.
    close(summary.hops, 3.5 - 1.69);
  });

  it('leaves out a round with a moment missing, and a round with no direct request to pair it with', () => {
    const cut = log.replace('704610 2 relay S-out -\n', '');
    expect(summarizeHops(hopRows(parseHopLog(cut)))[0].rounds).toBe(0);
    const unpaired = log.replace('direct/0', 'direct/7');
    expect(summarizeHops(hopRows(parseHopLog(unpaired)))[0].rounds).toBe(0);
  });

  it("takes the upstream's later lateness out of hops: a timer that fired 2 ms later than in the direct round is not the relay's", () => {
    const late = log.replace('703510 3 upstream S-out', '705510 3 upstream S-out').replace('704510 2 relay C-d', '706510 2 relay C-d').replace('704610 2 relay S-out', '706610 2 relay S-out').replace('705610 1 client C-d', '707610 1 client C-d').replace('705700 1 client M-end', '707700 1 client M-end');
    const [summary] = summarizeHops(hopRows(parseHopLog(late)));
    expect(summary.added).toBeCloseTo(305.6 - 302.69 + 2, 6);
    expect(summary.hops).toBeCloseTo(3.5 - 1.69, 6);
  });
});
