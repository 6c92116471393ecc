import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { deliverQueuedAlert, postWebhook, signatureHeader, sqsAlertOutbox } from '../../lambda/alerts/balance-alerts';
import { checkWebhookUrl, isPublicAddress, type LookupAll } from '../../lambda/alerts/webhook-address';
import type { CatalogFile } from '../../lambda/catalog';
import { consoleApi, signIn, type ConsoleSession } from '../support/console';
import { catalogOf, createAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { postChat, sleep } from '../reliability/support';

/**
 * Low-balance alerts: saved in the console, fired once per crossing however many settlements
 * race, re-armed by a top-up, delivered signed to a receiver on loopback that checks the
 * signature, retried after a 500; and the address check that keeps webhooks out of private
 * networks in AWS.
 */

/** $1,000 per million tokens in and out: 1,000 µUSD a token. */
const CATALOG: CatalogFile = {
  models: {
    m: {
      owned_by: 'test',
      pricing: { input_per_mtok: 1000, output_per_mtok: 1000 },
      context_window: 100_000,
      max_output_tokens: 100,
      routes: [{ provider: 'mock', model: 'm' }],
    },
  },
};

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  json: any;
  /** Checked with the receiver's secret as it is when read (a test learns it when saving). */
  readonly signatureValid: boolean;
}

/** A webhook receiver on 127.0.0.1 that verifies `itapi-signature` with the secret it is told. */
async function startReceiver() {
  const state = { secret: '', failNext: 0, received: [] as Received[], answered: [] as number[] };
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('utf8');
      const header = String(req.headers['itapi-signature'] ?? '');
      const receivedAt = Date.now() / 1000;
      state.received.push({
        headers: req.headers,
        body,
        json: JSON.parse(body),
        get signatureValid() {
          const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
          if (!m || !state.secret) return false;
          const expected = createHmac('sha256', state.secret).update(`${m[1]}.${body}`).digest();
          return timingSafeEqual(expected, Buffer.from(m[2], 'hex')) && Math.abs(receivedAt - Number(m[1])) < 300;
        },
      });
      const status = state.failNext > 0 ? 500 : 200;
      if (state.failNext > 0) state.failNext--;
      state.answered.push(status);
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/hooks/itapi`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  });
}

let gw: TestGateway;
let receiver: Awaited<ReturnType<typeof startReceiver>>;

beforeAll(async () => {
  receiver = await startReceiver();
  gw = await startTestGateway({ catalog: catalogOf(CATALOG), alerts: { retryDelaysMs: [50, 100, 200] } });
}, 60_000);

afterAll(async () => {
  await gw.stop();
  await receiver.close();
});

const idle = () => (gw.gateway.alertOutbox as unknown as { idle(): Promise<void> }).idle();
const balance = async (accountId: string) => (await gw.gateway.stores.accounts.get(accountId))!.balanceMicroUsd;
const ask = (key: string) => postChat(gw, key, { model: 'm', messages: [{ role: 'user', content: 'spend a little' }], max_tokens: 20 });

async function saveAlert(session: ConsoleSession, body: Record<string, unknown>) {
  return consoleApi(gw, session, 'PUT', 'alerts', body);
}

describe('low-balance alerts', () => {
  it('fire once per crossing under concurrent settlements, signed, and re-arm after a top-up', async () => {
    const a = await createAccount(gw, { creditsMicroUsd: 1_000_000 });
    const session = await signIn(gw, a.accountId);
    const saved = await saveAlert(session, { threshold_usd: '0.80', webhook_url: receiver.url });
    expect(saved.status).toBe(200);
    expect(saved.json).toMatchObject({ object: 'balance_alert', enabled: true, threshold_micro_usd: 800_000, webhook_url: receiver.url, armed: true, has_secret: true });
    // The secret is shown right after saving, and never by a read.
    expect(saved.json.secret).toMatch(/^itapi_whsec_[A-Za-z0-9_-]{43}$/);
    receiver.secret = saved.json.secret;
    const read = await consoleApi(gw, session, 'GET', 'alerts');
    expect(read.text).not.toContain(saved.json.secret);
    expect((await consoleApi(gw, session, 'POST', 'alerts/secret', {})).json.secret).toBe(saved.json.secret);
    expect(gw.logs.join('\n')).not.toContain(saved.json.secret);

    const start = receiver.received.length;
    // 16 requests at about 30,000 µUSD each, all at once: the balance crosses $0.80 once.
    const answers = await Promise.all(Array.from({ length: 16 }, () => ask(a.key)));
    expect(answers.every((r) => r.status === 200)).toBe(true);
    await gw.gateway.background.drain();
    await idle();
    const mine = () => receiver.received.slice(start).filter((r) => r.json.account_id === a.accountId);
    expect(mine()).toHaveLength(1);
    const [hit] = mine();
    expect(hit.signatureValid).toBe(true);
    expect(hit.headers['content-type']).toBe('application/json');
    expect(Object.keys(hit.json).sort()).toEqual(['account_id', 'at', 'balance_micro_usd', 'threshold_micro_usd', 'type']);
    expect(hit.json).toMatchObject({ type: 'balance.low', account_id: a.accountId, threshold_micro_usd: 800_000 });
    expect(hit.json.balance_micro_usd).toBeLessThan(800_000);
    expect(Number.isInteger(hit.json.balance_micro_usd)).toBe(true);
    expect(Date.parse(hit.json.at)).toBeGreaterThan(Date.now() - 60_000);
    expect((await consoleApi(gw, session, 'GET', 'alerts')).json.armed).toBe(false);

    // Spending on below the threshold fires nothing more.
    await ask(a.key);
    await gw.gateway.background.drain();
    await idle();
    expect(mine()).toHaveLength(1);

    // A top-up that stays below does not re-arm; one above does, and the next crossing fires again.
    const low = await balance(a.accountId);
    await gw.gateway.stores.accounts.topUp(a.accountId, Math.max(0, 700_000 - low), `below-${a.accountId}`);
    expect((await consoleApi(gw, session, 'GET', 'alerts')).json.armed).toBe(false);
    const credit = await fetch(`${gw.adminUrl}/accounts/${a.accountId}/credits`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ amount_usd: 0.5, reference: `above-${a.accountId}` }),
    });
    expect(credit.status).toBe(200);
    expect((await consoleApi(gw, session, 'GET', 'alerts')).json.armed).toBe(true);
    while ((await balance(a.accountId)) >= 800_000) {
      await ask(a.key);
      await gw.gateway.background.drain();
    }
    await idle();
    expect(mine()).toHaveLength(2);
    expect(mine()[1].signatureValid).toBe(true);
  }, 60_000);

  it('retries a delivery the receiver answered 500, with the same event and a fresh signature', async () => {
    const a = await createAccount(gw, { creditsMicroUsd: 1_000_000 });
    const session = await signIn(gw, a.accountId);
    const start = receiver.received.length;
    receiver.failNext = 2;
    const saved = await saveAlert(session, { threshold_usd: 2, webhook_url: receiver.url });
    receiver.secret = saved.json.secret;
    // Already below the threshold when saved: it fires now.
    await idle();
    const mine = receiver.received.slice(start).filter((r) => r.json.account_id === a.accountId);
    expect(receiver.answered.slice(start)).toEqual([500, 500, 200]);
    expect(mine).toHaveLength(3);
    expect(new Set(mine.map((r) => r.headers['itapi-event-id'])).size).toBe(1);
    expect(new Set(mine.map((r) => r.body)).size).toBe(1);
    expect(mine.every((r) => r.signatureValid)).toBe(true);
    expect(gw.logs.some((l) => l.includes('"balance_alert_retry"') && l.includes(a.accountId))).toBe(true);
    expect(gw.logs.some((l) => l.includes('"balance_alert_delivered"') && l.includes(a.accountId))).toBe(true);
  });

  it('a delivery that fails every attempt is logged as undelivered', async () => {
    const a = await createAccount(gw, { creditsMicroUsd: 1_000_000 });
    const session = await signIn(gw, a.accountId);
    receiver.failNext = 10;
    await saveAlert(session, { threshold_usd: 2, webhook_url: receiver.url });
    await idle();
    receiver.failNext = 0;
    const line = gw.logs.map((l) => JSON.parse(l)).find((l) => l.event === 'balance_alert_undelivered' && l.account_id === a.accountId);
    expect(line).toMatchObject({ level: 'error', channel: 'webhook', attempts: 4, outcome: 'status 500' });
  });

  it('validates the fields: threshold in dollars, a webhook URL or an e-mail, CSRF like every change', async () => {
    const a = await createAccount(gw, { creditsMicroUsd: 1_000_000 });
    const session = await signIn(gw, a.accountId);
    for (const [body, param] of [
      [{ threshold_usd: 'ten', webhook_url: receiver.url }, 'threshold_usd'],
      [{ threshold_usd: 0, webhook_url: receiver.url }, 'threshold_usd'],
      [{ threshold_usd: 1 }, 'webhook_url'],
      [{ threshold_usd: 1, webhook_url: 'ftp://example.com/x' }, 'webhook_url'],
      [{ threshold_usd: 1, webhook_url: 'http://user:pw@127.0.0.1:1/x' }, 'webhook_url'],
      [{ threshold_usd: 1, email: 'not an address' }, 'email'],
    ] as const) {
      const res = await saveAlert(session, body);
      expect(res.status).toBe(400);
      expect(res.json.error.param).toBe(param);
    }
    expect((await consoleApi(gw, session, 'PUT', 'alerts', { threshold_usd: 1, webhook_url: receiver.url }, { 'x-csrf-token': null })).status).toBe(403);
    expect((await consoleApi(gw, session, 'POST', 'alerts/secret', {}, { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    const ok = await saveAlert(session, { threshold_usd: '0.25', email: 'ops@example.com' });
    expect(ok.json).toMatchObject({ threshold_micro_usd: 250_000, email: 'ops@example.com', webhook_url: null });
    const admin = await (await fetch(`${gw.adminUrl}/accounts/${a.accountId}`, { headers: { authorization: `Bearer ${gw.adminToken}` } })).json();
    expect(admin.low_balance_alert).toEqual({ threshold_micro_usd: 250_000, threshold_usd: 0.25, webhook_url: null, email: 'ops@example.com', armed: true });
    expect(JSON.stringify(admin)).not.toContain('itapi_whsec_');
    expect((await consoleApi(gw, session, 'DELETE', 'alerts')).json.enabled).toBe(false);
  });
});

describe('the AWS delivery from the alert queue (one attempt per call, the sweeper function retries)', () => {
  it('posts with the account’s current URL and secret, throws to be retried on a 500, drops a 4xx and an alert since removed', async () => {
    const a = await createAccount(gw, { creditsMicroUsd: 1_000_000 });
    const saved = await gw.gateway.stores.accounts.setBalanceAlert(a.accountId, { thresholdMicroUsd: 500_000, webhookUrl: receiver.url, secret: 'itapi_whsec_queued' });
    expect(saved!.alert).toMatchObject({ armed: true });
    receiver.secret = 'itapi_whsec_queued';
    const queued = { id: 'evt_queued_1', event: { type: 'balance.low' as const, account_id: a.accountId, balance_micro_usd: 1, threshold_micro_usd: 500_000, at: new Date().toISOString() } };
    const deps = { accounts: gw.gateway.stores.accounts, log: gw.gateway.log };
    const start = receiver.received.length;
    receiver.failNext = 1;
    await expect(deliverQueuedAlert(queued, deps, { allowPrivate: true })).rejects.toThrow(/500/);
    await expect(deliverQueuedAlert(queued, deps, { allowPrivate: true })).resolves.toBeUndefined();
    const got = receiver.received.slice(start);
    expect(got).toHaveLength(2);
    expect(got.every((r) => r.signatureValid && r.headers['itapi-event-id'] === 'evt_queued_1')).toBe(true);
    // In AWS mode the loopback receiver is refused at connection time: an error, so the queue retries and then dead-letters it.
    await expect(deliverQueuedAlert(queued, deps, { allowPrivate: false })).rejects.toThrow(/https/);
    await gw.gateway.stores.accounts.setBalanceAlert(a.accountId, { thresholdMicroUsd: 500_000, webhookUrl: receiver.url.replace('http:', 'https:'), secret: 'itapi_whsec_queued' });
    await expect(deliverQueuedAlert(queued, deps, { allowPrivate: false })).rejects.toThrow(/127\.0\.0\.1, a private, loopback or link-local/);
    await gw.gateway.stores.accounts.setBalanceAlert(a.accountId, { thresholdMicroUsd: 500_000, webhookUrl: 'https://[::ffff:169.254.169.254]/x', secret: 'itapi_whsec_queued' });
    await expect(deliverQueuedAlert(queued, deps, { allowPrivate: false })).rejects.toThrow(/private, loopback or link-local/);
    // A 4xx that will not change is not retried.
    const gone = await deliverQueuedAlert(queued, { ...deps, post: async () => 410 }, { allowPrivate: true });
    expect(gone).toBeUndefined();
    // Removed since: dropped.
    await gw.gateway.stores.accounts.setBalanceAlert(a.accountId, null);
    const before = receiver.received.length;
    await expect(deliverQueuedAlert(queued, deps, { allowPrivate: true })).resolves.toBeUndefined();
    expect(receiver.received.length).toBe(before);
  });
});

describe('webhook addresses (SSRF)', () => {
  const resolvesTo =
    (...addresses: string[]): LookupAll =>
    async () =>
      addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  const aws = (lookup: LookupAll) => ({ allowPrivate: false, lookup });

  it('in AWS refuses private, loopback and link-local addresses, IPv4 and IPv6, literal or after DNS resolution', async () => {
    for (const address of [
      '127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1',
      '::1', '::', 'fe80::1', 'fd00:ec2::254', 'fc00::1', '::ffff:127.0.0.1', '::ffff:a9fe:a9fe', '64:ff9b::a9fe:a9fe', 'ff02::1',
    ]) {
      expect([address, isPublicAddress(address)]).toEqual([address, false]);
      await expect(checkWebhookUrl('https://hooks.example.com/x', aws(resolvesTo(address)))).rejects.toThrow(/private, loopback or link-local/);
    }
    // One private address among public ones is enough to refuse.
    await expect(checkWebhookUrl('https://hooks.example.com/x', aws(resolvesTo('93.184.216.34', '10.0.0.7')))).rejects.toThrow(/10\.0\.0\.7/);
    await expect(checkWebhookUrl('https://127.0.0.1:8443/x', aws(resolvesTo('93.184.216.34')))).rejects.toThrow(/127\.0\.0\.1/);
    await expect(checkWebhookUrl('https://[::1]/x', aws(resolvesTo('93.184.216.34')))).rejects.toThrow(/::1/);
    await expect(checkWebhookUrl('https://[::ffff:10.0.0.1]/x', aws(resolvesTo('93.184.216.34')))).rejects.toThrow(/private/);
    // Plain http is refused in AWS (the body and signature would travel in clear).
    await expect(checkWebhookUrl('http://hooks.example.com/x', aws(resolvesTo('93.184.216.34')))).rejects.toThrow(/https/);
    await expect(checkWebhookUrl('https://nowhere.invalid/x', aws(async () => { throw new Error('ENOTFOUND'); }))).rejects.toThrow(/does not resolve/);
  });

  it('in AWS accepts https to public addresses; locally anything http(s), 127.0.0.1 included', async () => {
    for (const address of ['93.184.216.34', '8.8.8.8', '2606:2800:220:1:248:1893:25c8:1946', '2001:4860:4860::8888']) expect(isPublicAddress(address)).toBe(true);
    await expect(checkWebhookUrl('https://hooks.example.com/x', aws(resolvesTo('93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946')))).resolves.toBeInstanceOf(URL);
    await expect(checkWebhookUrl('http://127.0.0.1:9/x', { allowPrivate: true })).resolves.toBeInstanceOf(URL);
  });

  it('in AWS the connection itself is refused when the name resolves to a private address by then (DNS rebinding)', async () => {
    const r = await startReceiver();
    try {
      const message = {
        id: 'evt_x',
        event: { type: 'balance.low' as const, account_id: 'x', balance_micro_usd: 1, threshold_micro_usd: 2, at: new Date().toISOString() },
        webhookUrl: r.url.replace('http://127.0.0.1', 'https://rebind.example.com'),
        secret: 's',
      };
      await expect(postWebhook(message, { allowPrivate: false, lookup: resolvesTo('127.0.0.1') })).rejects.toThrow(/private, loopback or link-local/);
      expect(r.received).toHaveLength(0);
      // The same receiver is reached locally.
      r.secret = 's';
      expect(await postWebhook({ ...message, webhookUrl: r.url }, { allowPrivate: true })).toBe(200);
      expect(r.received[0].signatureValid).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('signs as Stripe does: HMAC-SHA256 over "<t>.<body>"', () => {
    const header = signatureHeader('secret', '{"a":1}', 1700000000);
    expect(header).toBe(`t=1700000000,v1=${createHmac('sha256', 'secret').update('1700000000.{"a":1}').digest('hex')}`);
    expect(signatureHeader('other', '{"a":1}', 1700000000)).not.toBe(header);
  });
});

describe('saving an e-mail address in AWS (issue 21)', () => {
  /** A loopback SQS stand-in (the SDK speaks JSON: `x-amz-target: AmazonSQS.SendMessage`, and checks the body's MD5). */
  const sent: Array<{ QueueUrl: string; MessageBody: string }> = [];
  let failStatus = 0;
  const sqs = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(parts).toString('utf8'));
      if (req.headers['x-amz-target'] !== 'AmazonSQS.SendMessage') {
        res.writeHead(400).end();
        return;
      }
      if (failStatus) {
        res.writeHead(failStatus, { 'content-type': 'application/x-amz-json-1.0' }).end(JSON.stringify({ __type: 'com.amazonaws.sqs#InternalError', message: 'down' }));
        return;
      }
      sent.push(body);
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(JSON.stringify({ MessageId: `msg-${sent.length}`, MD5OfMessageBody: createHash('md5').update(body.MessageBody).digest('hex') }));
    });
  });
  let aws: TestGateway;
  let queueUrl: string;

  beforeAll(async () => {
    await new Promise<void>((resolve) => sqs.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(sqs.address() as AddressInfo).port}`;
    queueUrl = `${endpoint}/123456789012/itapi-alerts`;
    const outbox = sqsAlertOutbox(queueUrl, { endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    aws = await startTestGateway({ catalog: catalogOf(CATALOG), alerts: { outbox } });
  }, 60_000);

  afterAll(async () => {
    await aws.stop();
    sqs.closeAllConnections();
    await new Promise((resolve) => sqs.close(resolve));
  });

  it('queues the address for subscription at save time, and only when one is given', async () => {
    const a = await createAccount(aws);
    const session = await signIn(aws, a.accountId);
    sent.length = 0;
    expect((await consoleApi(aws, session, 'PUT', 'alerts', { threshold_usd: 1, webhook_url: 'https://hooks.example.com/itapi' })).status).toBe(200);
    expect(sent).toEqual([]);
    expect((await consoleApi(aws, session, 'PUT', 'alerts', { threshold_usd: 1, email: ' billing@example.com ' })).status).toBe(200);
    expect((await consoleApi(aws, session, 'PUT', 'alerts', { threshold_usd: 1, email: 'finance@example.com' })).status).toBe(200);
    expect(sent.map((m) => m.QueueUrl)).toEqual([queueUrl, queueUrl]);
    expect(sent.map((m) => JSON.parse(m.MessageBody))).toEqual([
      { type: 'subscribe', account_id: a.accountId, email: 'billing@example.com' },
      { type: 'subscribe', account_id: a.accountId, email: 'finance@example.com' },
    ]);
    // Locally (the in-process outbox) there is no queue: nothing to subscribe, the save just stands.
    expect('subscribeEmail' in gw.gateway.alertOutbox).toBe(false);
  });

  it('keeps the save when the queue is down (the first alert subscribes the address instead)', async () => {
    const a = await createAccount(aws);
    const session = await signIn(aws, a.accountId);
    sent.length = 0;
    failStatus = 500;
    try {
      const res = await consoleApi(aws, session, 'PUT', 'alerts', { threshold_usd: 1, email: 'ops@example.com' });
      expect(res.status).toBe(200);
      expect(res.json.email).toBe('ops@example.com');
    } finally {
      failStatus = 0;
    }
    expect(sent).toEqual([]);
    expect((await aws.gateway.stores.accounts.get(a.accountId))!.alert?.email).toBe('ops@example.com');
  }, 30_000);
});
