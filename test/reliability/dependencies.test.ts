import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { CatalogFile } from '../../lambda/catalog';
import { freePort, startDynamoLocal } from '../../lambda/entry/local-server';
import { createGateway, type Gateway } from '../../lambda/runtime';
import { secretsManagerProviderKeys } from '../../lambda/secrets/provider-keys';
import { catalogOf, createAccount, memoryLogger, startTestGateway, type TestGateway } from '../support/gateway';
import { fundedAccount } from '../support/accounts';
import { createTestTables, deleteTestTables } from '../support/dynamo';
import { completionBody, startUpstream } from '../support/upstream';
import { expectErrorBody, leaks, postChat, sleep } from './support';

/**
 * Dependencies failing (issue 7, item 4): DynamoDB stopped and restarted under load, the
 * provider-keys secret unreadable, and the clock jumping across minute boundaries.
 */

const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Dep4Vx hello' }], max_tokens: 5 };

/**
 * Stops DynamoDB Local as an outage does: SIGTERM, so the emulator keeps what it acknowledged
 * (killed with SIGKILL it can lose writes it already answered, which real DynamoDB never does).
 */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

describe('DynamoDB stopped and restarted mid-load', () => {
  let dynamo: { child: ChildProcess; endpoint: string } | undefined;
  let gw: TestGateway | undefined;

  afterAll(async () => {
    await gw?.stop().catch(() => undefined);
    if (dynamo) await stopChild(dynamo.child);
  });

  it('answers 503 while it is down, serves again after, and loses no ledger item of a served request', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'itapi-dyn-'));
    // Not an ephemeral port: while DynamoDB is down its port is free, and a server another suite
    // starts on port 0 meanwhile could be given it (an upstream stand-in answers any POST with 200
    // and JSON, which the DynamoDB client would take for DynamoDB's answer).
    const port = await freePortBelowEphemeral();
    dynamo = await startDynamoLocal(join(dataDir, 'db'), port);
    gw = await startTestGateway({ dynamoEndpoint: dynamo.endpoint });
    const acct = await createAccount(gw, { tier: 'enterprise', rpm: 100_000, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
    const g = gw;

    type Answer = { phase: 'up' | 'down' | 'recovering' | 'again'; status: number; requestId: string | null; code?: string };
    const answers: Answer[] = [];
    let phase: Answer['phase'] = 'up';
    let running = true;
    const worker = async (w: number) => {
      for (let i = 0; running; i++) {
        const at = phase;
        const res = await postChat(g, acct.key, { ...BODY, stream: (i + w) % 2 === 0 });
        const text = await res.text();
        const answer: Answer = { phase: at, status: res.status, requestId: res.headers.get('x-request-id') };
        if (res.status !== 200) {
          const body = JSON.parse(text);
          expectErrorBody(body);
          answer.code = body.error.code;
        } else if (text.startsWith('data:')) {
          // A stream admitted just before the outage may still end well or with an error event.
          expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
        }
        answers.push(answer);
        if (res.status !== 200) await sleep(20);
      }
    };
    const workers = Array.from({ length: 4 }, (_, w) => worker(w));

    // Load flowing: wait for some answers served (not a fixed time: the machine may be busy).
    for (const deadline = Date.now() + 20_000; answers.filter((a) => a.status === 200).length < 6; ) {
      if (Date.now() > deadline) throw new Error(`no load served: ${JSON.stringify(answers.slice(0, 5))}`);
      await sleep(50);
    }
    await stopChild(dynamo.child);
    phase = 'down';
    // Down until the gateway has answered a request sent during the outage with a 503 (the
    // DynamoDB client retries for a while first, so a fixed short outage may be outlived by every
    // request), or for 15 s at most: if no 503 came by then, the assertions below fail.
    for (const downSince = Date.now(); Date.now() - downSince < 15_000; await sleep(50)) {
      if (Date.now() - downSince >= 1500 && answers.some((a) => a.phase === 'down' && a.status === 503)) break;
    }
    dynamo = await startDynamoLocal(join(dataDir, 'db'), port);
    // Recovering: requests sent after the restart. From the first one served on, every answer
    // must be served ('again'); wait for a few of those (load-driven, the machine may be busy).
    phase = 'recovering';
    for (const deadline = Date.now() + 20_000; answers.filter((a) => a.phase === 'again').length < 6; ) {
      if (Date.now() > deadline) throw new Error(`not served again after the restart: ${JSON.stringify(answers.slice(-5))}`);
      if (phase === 'recovering' && answers.some((a) => a.phase === 'recovering' && a.status === 200)) phase = 'again';
      await sleep(20);
    }
    running = false;
    await Promise.all(workers);

    const down = answers.filter((a) => a.phase === 'down');
    const again = answers.filter((a) => a.phase === 'again');
    expect(answers.filter((a) => a.phase === 'up' && a.status === 200).length).toBeGreaterThan(5);
    // While down: fail closed with 503 server_overloaded, never a 500, never unmetered.
    expect(down.length).toBeGreaterThan(0);
    const downStatuses = new Set(down.map((a) => `${a.status} ${a.code ?? ''}`.trim()));
    for (const s of downStatuses) expect(['200', '503 server_overloaded']).toContain(s);
    expect(down.some((a) => a.status === 503)).toBe(true);
    // After the restart on the same port: 503 or served while reconnecting, then served again.
    for (const a of answers.filter((a) => a.phase === 'recovering')) expect([200, 503]).toContain(a.status);
    expect(again.length).toBeGreaterThanOrEqual(6);
    expect(again.every((a) => a.status === 200)).toBe(true);

    // Settlement retried through the outage: every served request has its ledger item, and the
    // balance is exactly the ledger.
    await g.gateway.background.drain();
    // A settlement that outlived its retries (about 20 s) while DynamoDB was away, as one queued
    // behind its account's settlement in flight may under load, is in the durable queue: the
    // sweeper applies it, as it does every 15 s (ARCHITECTURE: nothing is dropped).
    await g.sweep();
    const items = await g.gateway.stores.usage.all(acct.accountId);
    const ledgerIds = new Set(items.filter((i) => i.kind === 'request').map((i) => i.id));
    const served = answers.filter((a) => a.status === 200).map((a) => a.requestId!);
    // A served request without its ledger item fails with what the gateway logged about it and
    // about settlements that went to the queue or were lost (a diagnosis, not only a count).
    const missing = served.filter((id) => !ledgerIds.has(id));
    const told = missing.length ? g.logs.filter((l) => missing.some((id) => l.includes(id)) || /settlement_(queued|not_written)|sweep/.test(l)) : [];
    const holdsLeft = missing.length ? (await g.gateway.stores.holds.ofAccount(acct.accountId)).map((h) => h.requestId) : [];
    const phases = missing.map((id) => `${id}: ${answers.find((a) => a.requestId === id)?.phase}, hold ${holdsLeft.includes(id) ? 'left' : 'gone'}`);
    expect({ missing, told, phases }).toEqual({ missing: [], told: [], phases: [] });
    const account = await g.gateway.stores.accounts.get(acct.accountId);
    // No hold left taken: every admission write whose answer was lost in the outage was given back.
    expect(await g.gateway.stores.holds.ofAccount(acct.accountId)).toEqual([]);
    expect(account!.heldMicroUsd).toBe(0);
    expect(account!.inFlight).toBe(0);
    expect(account!.balanceMicroUsd).toBe(items.reduce((s, i) => s + i.amountMicroUsd, 0));
    expect(g.logs.some((l) => l.includes('request_failed'))).toBe(true);
    expect(leaks(g.logs, [acct.key, 'Dep4Vx'])).toEqual([]);
  }, 90_000);
});

/** A free port on 127.0.0.1 below Linux's ephemeral range (32768 and up), which no bind to port 0 is given. */
async function freePortBelowEphemeral(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port between 20000 and 32000');
}

/** A gateway built in-process (no server): its own tables, options the local server does not expose. */
async function inProcess(options: Partial<Parameters<typeof createGateway>[0]> & { catalog: ReturnType<typeof catalogOf> }) {
  const { client, tables } = await createTestTables();
  const log = memoryLogger();
  const gateway = createGateway({
    dynamo: client,
    tables,
    providerKeys: { get: async () => undefined },
    log,
    ...options,
  });
  await gateway.stores.tiers.seed();
  const close = async () => {
    await gateway.background.drain();
    await deleteTestTables(client, tables);
  };
  return { gateway, log, close };
}

const account = (gateway: Gateway, creditsMicroUsd: number, limits: { rpm: number; tpm: number }) =>
  fundedAccount(gateway.stores, { tier: 'enterprise', creditsMicroUsd, createdAtMs: 0, ...limits });

async function call(gateway: Gateway, key: string, body: object): Promise<Response> {
  return gateway.app.fetch(
    new Request('http://gateway.test/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }),
  );
}

describe('the provider-keys secret unreadable', () => {
  it('answers 503 server_overloaded, releases the hold, and keeps serving other routes', async () => {
    const upstream = await startUpstream((_req, body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, 'never')));
    });
    const deadPort = await freePort();
    const secrets = new SecretsManagerClient({
      endpoint: `http://127.0.0.1:${deadPort}`,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      maxAttempts: 1,
    });
    const price = { owned_by: 'test', pricing: { input_per_mtok: 0, output_per_mtok: 1000 }, context_window: 1000, max_output_tokens: 100 };
    const file: CatalogFile = {
      models: {
        secretive: { ...price, routes: [{ provider: 'openai-compatible', base_url: upstream.url, secret: 'openai', model: 'm' }] },
        open: { ...price, routes: [{ provider: 'mock', model: 'open' }] },
      },
    };
    const { gateway, close } = await inProcess({ catalog: catalogOf(file), providerKeys: secretsManagerProviderKeys('itapi/provider-keys', secrets) });
    try {
      const acct = await account(gateway, 1_000_000, { rpm: 1000, tpm: 1_000_000 });
      for (const stream of [false, true]) {
        const res = await call(gateway, acct.key, { model: 'secretive', messages: [{ role: 'user', content: 'x' }], max_tokens: 10, stream });
        expect(res.status).toBe(503);
        expectErrorBody(await res.json(), 'server_overloaded', 'server_overloaded');
      }
      expect(upstream.requests).toHaveLength(0);
      const ok = await call(gateway, acct.key, { model: 'open', messages: [{ role: 'user', content: 'x' }], max_tokens: 10 });
      expect(ok.status).toBe(200);
      await ok.json();
      await gateway.background.drain();
      const items = (await gateway.stores.usage.all(acct.accountId)).filter((i) => i.kind === 'request');
      expect(items).toHaveLength(3);
      expect(items.filter((i) => i.errorCode === 'server_overloaded').map((i) => i.amountMicroUsd)).toEqual([0, 0]);
      const balance = (await gateway.stores.accounts.get(acct.accountId))!.balanceMicroUsd;
      expect(balance).toBe(1_000_000 + items.reduce((s, i) => s + i.amountMicroUsd, 0));
    } finally {
      secrets.destroy();
      await close();
      await upstream.close();
    }
  });
});

describe('a clock jump across a minute boundary', () => {
  const MINUTE = 60_000;
  const T0 = 29_000_000 * MINUTE; // some minute, far from now

  it('carries the sliding window over forward jumps, exactly, and keeps the books', async () => {
    let now = T0 + 59_000;
    const { gateway, close } = await inProcess({ catalog: catalogOf({ models: { m: { owned_by: 't', pricing: { input_per_mtok: 0, output_per_mtok: 1000 }, context_window: 1000, max_output_tokens: 100, routes: [{ provider: 'mock', model: 'm' }] } } }), now: () => now });
    try {
      const acct = await account(gateway, 1_000_000, { rpm: 4, tpm: 1_000_000 });
      const send = async () => {
        const res = await call(gateway, acct.key, { model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 3 });
        await res.text();
        return res;
      };
      const statuses = async (n: number) => {
        const out: number[] = [];
        for (let i = 0; i < n; i++) out.push((await send()).status);
        return out;
      };
      expect(await statuses(5)).toEqual([200, 200, 200, 200, 429]);
      now = T0 + MINUTE + 1_000; // across the boundary by 2 s: 4 × 59/60 still inside the window
      const limited = await send();
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      now = T0 + MINUTE + 30_000; // half of the previous minute slid out: 4 - 2 = 2
      expect(await statuses(3)).toEqual([200, 200, 429]);
      now = T0 + 10 * MINUTE; // a long jump: both minutes are history
      expect(await statuses(5)).toEqual([200, 200, 200, 200, 429]);
      await gateway.background.drain();
      const items = await gateway.stores.usage.all(acct.accountId);
      expect(items.filter((i) => i.kind === 'request')).toHaveLength(10);
      expect((await gateway.stores.accounts.get(acct.accountId))!.balanceMicroUsd).toBe(items.reduce((s, i) => s + i.amountMicroUsd, 0));
    } finally {
      await close();
    }
  });

  /**
   * Instances' clocks differ by a little (NTP); right after a boundary, one that is behind sees
   * the account item already in the next minute. It should count the request in that minute (or
   * answer 429), never fail.
   *
   * Found here: when the item's window was ahead of this instance's minute, every attempt was
   * judged stale and retried with the same belief, and the client got 503 'The account is too
   * busy' for as long as the skew lasted.
   */
  it('serves an instance whose clock is a moment behind another that already rolled the minute', async () => {
    let now = T0 + MINUTE + 500;
    const { gateway, close } = await inProcess({ catalog: catalogOf({ models: { m: { owned_by: 't', pricing: { input_per_mtok: 0, output_per_mtok: 1000 }, context_window: 1000, max_output_tokens: 100, routes: [{ provider: 'mock', model: 'm' }] } } }), now: () => now });
    try {
      const acct = await account(gateway, 1_000_000, { rpm: 100, tpm: 1_000_000 });
      const first = await call(gateway, acct.key, { model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 3 });
      expect(first.status).toBe(200);
      await first.text();
      now = T0 + MINUTE - 500; // this instance's clock is one second behind the other's
      const behind = await call(gateway, acct.key, { model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 3 });
      const text = await behind.text();
      expect([200, 429]).toContain(behind.status);
      if (behind.status !== 200) expectErrorBody(JSON.parse(text));
    } finally {
      await close();
    }
  });
});
