import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { postUpstream, readText } from '../../lambda/providers/http';

/**
 * The upstream's kept-alive sockets: a server closes a socket that sat idle just as the next
 * request is written on it (its idle timeout racing the reuse). The call is sent again once on a
 * new socket; a failure on a fresh socket, or a second one, is the call's own.
 */

interface Upstream {
  server: Server;
  url: string;
  /** Requests the handler saw, and how many it answered. */
  seen: number;
  answered: number;
}

/** A server that drops (without answering) the requests `drop` picks: the socket's nth request, 1-based. */
async function upstream(drop: (nthOnSocket: number) => boolean): Promise<Upstream> {
  const perSocket = new WeakMap<Socket, number>();
  const up: Upstream = { server: undefined as unknown as Server, url: '', seen: 0, answered: 0 };
  up.server = createServer((req, res) => {
    up.seen++;
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    req.resume();
    req.on('end', () => {
      if (drop(n)) {
        req.socket.destroy();
        return;
      }
      up.answered++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => up.server.listen(0, '127.0.0.1', resolve));
  up.url = `http://127.0.0.1:${(up.server.address() as AddressInfo).port}/v1/chat/completions`;
  return up;
}

const post = async (url: string) => readText(await postUpstream(url, {}, '{"model":"m"}', new AbortController().signal));

let servers: Server[] = [];
afterEach(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
  servers = [];
});

it('sends a call again once when the kept-alive socket it was written on is closed by the server', async () => {
  const up = await upstream((n) => n === 2);
  servers.push(up.server);
  expect(await post(up.url)).toBe('{"ok":true}');
  // Written on the same socket, which the server drops: sent again on a new socket.
  expect(await post(up.url)).toBe('{"ok":true}');
  expect({ seen: up.seen, answered: up.answered }).toEqual({ seen: 3, answered: 2 });
});

it('does not send again when a fresh socket fails, nor a second time', async () => {
  const fresh = await upstream((n) => n === 1);
  servers.push(fresh.server);
  await expect(post(fresh.url)).rejects.toMatchObject({ code: 'ECONNRESET' });
  expect(fresh.seen).toBe(1);

  // Two kept-alive sockets in the pool, and every request after a socket's first dropped: the call
  // is written on one, dropped, sent again on the other (reused too), dropped: then it fails.
  const always = await upstream((n) => n >= 2);
  servers.push(always.server);
  await Promise.all([post(always.url), post(always.url)]);
  expect(always.seen).toBe(2);
  await expect(post(always.url)).rejects.toMatchObject({ code: 'ECONNRESET' });
  expect(always.seen).toBe(4);
});
