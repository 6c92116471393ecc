import Stripe from 'stripe';
import { hasEnvProviderKeys } from '../../lambda/secrets/provider-keys';
import { consoleApi, consoleOrigin, signIn, type ConsoleSession } from '../support/console';
import { createAccount, startTestGateway, type TestGateway } from '../support/gateway';
import { startStripeStandIn } from '../support/stripe-stand-in';
import { ledgerToItem } from '../../lambda/store/usage';

/**
 * Top-ups through Stripe: Checkout sessions created against a stand-in of Stripe's API on
 * loopback, and webhooks signed the way Stripe signs them (its own library's test header).
 */

const SECRET_KEY = 'sk_test_itapiConsoleStandIn0123456789';
const WEBHOOK_SECRET = 'whsec_itapiConsoleTestSecret0123456789';

let stripeApi: Awaited<ReturnType<typeof startStripeStandIn>>;
let gw: TestGateway;
let plain: TestGateway;
let account: { accountId: string; key: string };
let session: ConsoleSession;
const signer = new Stripe('sk_test_signer_only', { telemetry: false });

beforeAll(async () => {
  stripeApi = await startStripeStandIn();
  gw = await startTestGateway({
    env: {
      ITAPI_ADMIN_TOKEN: 'test-admin-stripe',
      ITAPI_SECRET_STRIPE_SECRET_KEY: SECRET_KEY,
      ITAPI_SECRET_STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      ITAPI_STRIPE_API_URL: stripeApi.url,
      ITAPI_TOP_UP_MIN_USD: '5',
      ITAPI_TOP_UP_MAX_USD: '500',
    },
  });
  plain = await startTestGateway();
  account = await createAccount(gw, { creditsMicroUsd: 1_000_000 });
  session = await signIn(gw, account.accountId);
}, 60_000);

afterAll(async () => {
  await gw.stop();
  await plain.stop();
  await stripeApi.close();
});

const returnUrl = () => `${consoleOrigin(gw)}/console/`;

function stripeEvent(type: string, object: Record<string, unknown>, livemode = false) {
  return {
    id: `evt_${Math.random().toString(36).slice(2)}`,
    object: 'event',
    type,
    api_version: '2025-01-01',
    created: Math.floor(Date.now() / 1000),
    livemode,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    data: { object },
  };
}

/** `charge.refunded` for a payment: `amount_refunded` is the charge's refunded total so far, in cents. */
function chargeRefunded(paymentIntent: string, amountRefunded: number, overrides: Record<string, unknown> = {}) {
  return stripeEvent('charge.refunded', {
    id: `ch_for_${paymentIntent}`,
    object: 'charge',
    amount: 2500,
    amount_refunded: amountRefunded,
    currency: 'usd',
    payment_intent: paymentIntent,
    refunded: amountRefunded === 2500,
    ...overrides,
  });
}

function disputeCreated(paymentIntent: string, amount: number, id = `dp_${Math.random().toString(36).slice(2)}`) {
  return stripeEvent('charge.dispute.created', {
    id,
    object: 'dispute',
    amount,
    currency: 'usd',
    charge: `ch_for_${paymentIntent}`,
    payment_intent: paymentIntent,
    status: 'needs_response',
    reason: 'fraudulent',
  });
}

function checkoutCompleted(overrides: Record<string, unknown> = {}, type = 'checkout.session.completed') {
  return {
    id: `evt_${Math.random().toString(36).slice(2)}`,
    object: 'event',
    type,
    api_version: '2025-01-01',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    data: {
      object: {
        id: `cs_test_${Math.random().toString(36).slice(2)}`,
        object: 'checkout.session',
        client_reference_id: account.accountId,
        metadata: { itapi_account_id: account.accountId },
        payment_status: 'paid',
        status: 'complete',
        currency: 'usd',
        amount_subtotal: 2500,
        amount_total: 2500,
        payment_intent: `pi_test_${Math.random().toString(36).slice(2)}`,
        ...overrides,
      },
    },
  };
}

async function deliver(target: TestGateway, event: unknown, secret = WEBHOOK_SECRET, signatureOverride?: string) {
  const payload = JSON.stringify(event);
  const signature = signatureOverride ?? signer.webhooks.generateTestHeaderString({ payload, secret });
  const res = await fetch(`${consoleOrigin(target)}/console/stripe/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': signature },
    body: payload,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

const balance = async () => (await gw.gateway.stores.accounts.get(account.accountId))!.balanceMicroUsd;

describe('Checkout', () => {
  it('creates a Checkout session on Stripe for the amount, tied to the account, and returns its URL', async () => {
    const options = await consoleApi(gw, session, 'GET', 'top-up');
    expect(options.json).toMatchObject({ object: 'top_up_options', enabled: true, currency: 'usd', min_usd: 5, max_usd: 500 });

    const res = await consoleApi(gw, session, 'POST', 'top-up', { amount_usd: '25.50', return_url: `${returnUrl()}?top_up=cancelled#x` });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ object: 'checkout_session', amount_micro_usd: 25_500_000 });
    expect(res.json.url).toMatch(/^https:\/\/checkout\.stripe\.test\/c\/pay\/cs_test_standin_\d+$/);

    const call = stripeApi.calls.at(-1)!;
    expect(call.method).toBe('POST');
    expect(call.path).toBe('/v1/checkout/sessions');
    expect(call.headers.authorization).toBe(`Bearer ${SECRET_KEY}`);
    expect(call.form).toMatchObject({
      mode: 'payment',
      client_reference_id: account.accountId,
      'metadata[itapi_account_id]': account.accountId,
      'line_items[0][quantity]': '1',
      'line_items[0][price_data][currency]': 'usd',
      'line_items[0][price_data][unit_amount]': '2550',
      success_url: `${returnUrl()}?top_up=paid`,
      cancel_url: `${returnUrl()}?top_up=cancelled`,
    });
    // Nothing is credited before Stripe says the payment went through.
    expect(await balance()).toBe(1_000_000);
  });

  it('refuses amounts outside the operator’s bounds or below a cent, and foreign return URLs', async () => {
    const before = stripeApi.calls.length;
    for (const [body, param] of [
      [{ amount_usd: 4.99, return_url: returnUrl() }, 'amount_usd'],
      [{ amount_usd: '500.01', return_url: returnUrl() }, 'amount_usd'],
      [{ amount_usd: '10.005', return_url: returnUrl() }, 'amount_usd'],
      [{ amount_usd: 'ten', return_url: returnUrl() }, 'amount_usd'],
      [{ amount_usd: 10, return_url: 'https://evil.example/console/' }, 'return_url'],
      [{ amount_usd: 10, return_url: `${consoleOrigin(gw)}/elsewhere` }, 'return_url'],
    ] as const) {
      const res = await consoleApi(gw, session, 'POST', 'top-up', body);
      expect(res.status).toBe(400);
      expect(res.json.error.param).toBe(param);
    }
    expect(stripeApi.calls.length).toBe(before);
  });

  it('a Stripe failure is a 502 and its message (which may quote the key) is not logged', async () => {
    stripeApi.failWith = { status: 401, body: { error: { type: 'invalid_request_error', message: `Invalid API Key provided: ${SECRET_KEY.slice(0, 8)}****6789` } } };
    try {
      const res = await consoleApi(gw, session, 'POST', 'top-up', { amount_usd: 10, return_url: returnUrl() });
      expect(res.status).toBe(502);
      expect(res.json.error.code).toBe('upstream_error');
      expect(res.text).not.toContain('sk_test');
      expect(gw.logs.join('\n')).toContain('stripe_checkout_failed');
      expect(gw.logs.join('\n')).not.toContain('sk_test');
    } finally {
      stripeApi.failWith = undefined;
    }
  });

  it('needs a session and the CSRF token like every change', async () => {
    expect((await consoleApi(gw, undefined, 'POST', 'top-up', { amount_usd: 10, return_url: returnUrl() })).status).toBe(401);
    expect((await consoleApi(gw, session, 'POST', 'top-up', { amount_usd: 10, return_url: returnUrl() }, { 'x-csrf-token': null })).status).toBe(403);
  });
});

describe('webhook', () => {
  it('credits a paid Checkout session exactly once, however often Stripe delivers it, with the session id as reference', async () => {
    const before = await balance();
    const event = checkoutCompleted();
    const sessionId = event.data.object.id;
    const answers = await Promise.all([deliver(gw, event), deliver(gw, event), deliver(gw, event)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers.map((a) => a.json.result).sort()).toEqual(['credited', 'duplicate', 'duplicate']);
    expect(await deliver(gw, event)).toMatchObject({ status: 200, json: { result: 'duplicate' } });
    expect(await balance()).toBe(before + 25_000_000);
    const topUps = (await gw.gateway.stores.usage.topUps(account.accountId)).filter((t) => t.id === sessionId);
    expect(topUps).toEqual([expect.objectContaining({ amountMicroUsd: 25_000_000 })]);
    // The console lists it among the recent top-ups.
    const options = await consoleApi(gw, session, 'GET', 'top-up');
    expect(options.json.recent[0]).toMatchObject({ kind: 'topup', reference: sessionId, amount_micro_usd: 25_000_000 });
  });

  it('credits a delayed payment when it succeeds, not when the session completes unpaid', async () => {
    const before = await balance();
    const unpaid = checkoutCompleted({ payment_status: 'unpaid', amount_subtotal: 1000, amount_total: 1000 });
    expect((await deliver(gw, unpaid)).json.result).toBe('ignored');
    expect(await balance()).toBe(before);
    const succeeded = checkoutCompleted({ id: unpaid.data.object.id, amount_subtotal: 1000, amount_total: 1000 }, 'checkout.session.async_payment_succeeded');
    expect((await deliver(gw, succeeded)).json.result).toBe('credited');
    expect(await balance()).toBe(before + 10_000_000);
  });

  it('refuses a bad or missing signature, or one made with another secret, and credits nothing', async () => {
    const before = await balance();
    const event = checkoutCompleted();
    for (const res of [
      await deliver(gw, event, 'whsec_someone_else'),
      await deliver(gw, event, WEBHOOK_SECRET, 't=1,v1=deadbeef'),
      await deliver(gw, event, WEBHOOK_SECRET, ''),
    ]) {
      expect(res.status).toBe(400);
      expect(res.json.error.code).toBe('invalid_signature');
    }
    // A correctly signed body altered afterwards.
    const payload = JSON.stringify(event);
    const signature = signer.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET });
    const tampered = await fetch(`${consoleOrigin(gw)}/console/stripe/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': signature },
      body: payload.replace('2500', '9900'),
    });
    expect(tampered.status).toBe(400);
    expect(await balance()).toBe(before);
  });

  it('ignores sessions that are not ours or do not add up, and other events; every paid one is logged with its reason', async () => {
    const before = await balance();
    for (const [event, reason] of [
      [checkoutCompleted({ metadata: {} }), undefined],
      [checkoutCompleted({ client_reference_id: 'someone-else' }), 'account ids disagree'],
      [checkoutCompleted({ currency: 'eur' }), 'currency eur'],
      [checkoutCompleted({ amount_subtotal: 0, amount_total: 0 }), 'no amount'],
      [checkoutCompleted({ amount_subtotal: 2500.5, amount_total: 2500.5 }), 'fractional amount'],
      [checkoutCompleted({ payment_intent: null }), 'no PaymentIntent'],
      [checkoutCompleted({ metadata: { itapi_account_id: 'no-such-account' }, client_reference_id: 'no-such-account' }), 'unknown account'],
      [{ ...checkoutCompleted(), livemode: true }, 'livemode true with a test key'],
      [{ ...checkoutCompleted(), type: 'payment_intent.succeeded' }, undefined],
    ] as const) {
      const res = await deliver(gw, event);
      expect(res.status).toBe(200);
      expect(res.json.result).toBe('ignored');
      if (reason) {
        expect(res.json).toEqual({ received: true, result: 'ignored' });
        const line = gw.logs.map((l) => JSON.parse(l)).find((l) => l.event === 'stripe_event_ignored' && l.event_id === event.id);
        expect(line).toMatchObject({ level: 'error', reason, event_type: event.type });
      }
    }
    expect(await balance()).toBe(before);
  });

  it('credits a session once whatever account a second event names for it', async () => {
    const other = await createAccount(gw, { creditsMicroUsd: 0 });
    const event = checkoutCompleted();
    expect((await deliver(gw, event)).json.result).toBe('credited');
    // The same session, signed, naming another account: nothing more is credited anywhere.
    const forged = checkoutCompleted({
      id: event.data.object.id,
      payment_intent: event.data.object.payment_intent,
      client_reference_id: other.accountId,
      metadata: { itapi_account_id: other.accountId },
    });
    expect((await deliver(gw, forged)).json.result).toBe('duplicate');
    // A new session for the same payment cannot credit it again either.
    const samePayment = checkoutCompleted({ payment_intent: event.data.object.payment_intent, client_reference_id: other.accountId, metadata: { itapi_account_id: other.accountId } });
    expect((await deliver(gw, samePayment)).json.result).toBe('duplicate');
    expect((await gw.gateway.stores.accounts.get(other.accountId))!.balanceMicroUsd).toBe(0);
    expect(await gw.gateway.stores.usage.topUps(other.accountId)).toEqual([]);
  });

  it('keeps the charge’s receipt with the top-up and shows it in the console', async () => {
    const event = checkoutCompleted();
    const pi = event.data.object.payment_intent;
    expect((await deliver(gw, event)).json.result).toBe('credited');
    expect(stripeApi.calls.some((c) => c.method === 'GET' && c.path.startsWith(`/v1/payment_intents/${pi}?`) && c.path.includes('latest_charge'))).toBe(true);
    const options = await consoleApi(gw, session, 'GET', 'top-up');
    const listed = options.json.recent.find((t: { reference: string }) => t.reference === event.data.object.id);
    expect(listed.receipt_url).toBe(`https://pay.stripe.test/receipts/${pi}`);
    const page = await (await fetch(`${consoleOrigin(gw)}/console/`, { headers: { cookie: session.cookie } })).text();
    expect(page).toContain(`href="https://pay.stripe.test/receipts/${pi}"`);
  });
});

describe('refunds and disputes', () => {
  it('a refund takes back amount_refunded less what earlier refunds of the charge took, once per delivery', async () => {
    const p = await paidAccount();
    expect((await p.account()).balanceMicroUsd).toBe(25_000_000);
    const partial = chargeRefunded(p.pi, 1000);
    expect((await deliver(gw, partial)).json).toEqual({ received: true, result: 'taken_back' });
    expect((await p.account()).balanceMicroUsd).toBe(15_000_000);
    // Redelivered: nothing changes.
    expect((await deliver(gw, partial)).json.result).toBe('ignored');
    expect((await p.account()).balanceMicroUsd).toBe(15_000_000);
    // The rest refunded: amount_refunded is the charge's total, 25 − 10 taken already.
    expect((await deliver(gw, chargeRefunded(p.pi, 2500))).json.result).toBe('taken_back');
    expect((await p.account()).balanceMicroUsd).toBe(0);
    // A dispute after the full refund has nothing left to take.
    expect((await deliver(gw, disputeCreated(p.pi, 2500))).json.result).toBe('ignored');
    const reversals = await gw.gateway.stores.usage.reversals(p.accountId);
    expect(reversals.map((r) => r.amountMicroUsd).sort((a, b) => a - b)).toEqual([-15_000_000, -10_000_000]);
    expect(reversals.every((r) => r.reason === 'refund' && r.paymentReference === p.sessionId)).toBe(true);
    expect((await p.account()).owedMicroUsd).toBe(0);
  });

  it('takes what the balance has and records the rest as owed_micro_usd, in the admin API and the console', async () => {
    const p = await paidAccount(4_000_000);
    const dispute = disputeCreated(p.pi, 2500);
    expect((await deliver(gw, dispute)).json.result).toBe('taken_back');
    const after = await p.account();
    expect(after.balanceMicroUsd).toBe(0);
    expect(after.owedMicroUsd).toBe(21_000_000);
    // Redelivered: once.
    expect((await deliver(gw, dispute)).json.result).toBe('ignored');
    expect((await p.account()).owedMicroUsd).toBe(21_000_000);
    const admin = await fetch(`${gw.adminUrl}/accounts/${p.accountId}`, { headers: { authorization: `Bearer ${gw.adminToken}` } });
    expect(await admin.json()).toMatchObject({ balance_micro_usd: 0, owed_micro_usd: 21_000_000 });
    const usage = await (await fetch(`${gw.adminUrl}/accounts/${p.accountId}/usage?from=0`, { headers: { authorization: `Bearer ${gw.adminToken}` } })).json();
    expect(usage.items).toContainEqual(expect.objectContaining({ kind: 'reversal', reason: 'dispute', amount_micro_usd: -4_000_000, owed_micro_usd: 21_000_000, payment_reference: p.sessionId }));
    expect(usage.totals).toMatchObject({ reversals: 1, reversal_micro_usd: -4_000_000, reversal_owed_micro_usd: 21_000_000 });
    const s = await signIn(gw, p.accountId);
    expect((await consoleApi(gw, s, 'GET', 'account')).json.owed_micro_usd).toBe(21_000_000);
    const page = await (await fetch(`${consoleOrigin(gw)}/console/`, { headers: { cookie: s.cookie } })).text();
    expect(page).toContain('data-field="owed"');
  });

  it('concurrent refund and dispute events of one payment never take back more than it credited', async () => {
    const p = await paidAccount();
    const events = [chargeRefunded(p.pi, 1500), disputeCreated(p.pi, 2500), chargeRefunded(p.pi, 2500), disputeCreated(p.pi, 1000)];
    const answers = await Promise.all(events.map((e) => deliver(gw, e)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const after = await p.account();
    const reversals = await gw.gateway.stores.usage.reversals(p.accountId);
    const taken = reversals.reduce((sum, r) => sum - r.amountMicroUsd + (r.owedMicroUsd ?? 0), 0);
    expect(taken).toBe(25_000_000);
    expect(after.balanceMicroUsd + after.owedMicroUsd).toBe(after.owedMicroUsd);
    expect(after.balanceMicroUsd).toBe(0);
    expect(after.owedMicroUsd).toBe(0);
  });

  it('ignores reversals of payments that credited no account, and in other currencies (logged)', async () => {
    expect((await deliver(gw, chargeRefunded('pi_not_ours', 500))).json.result).toBe('ignored');
    const p = await paidAccount();
    const eur = chargeRefunded(p.pi, 500, { currency: 'eur' });
    expect((await deliver(gw, eur)).json.result).toBe('ignored');
    expect(gw.logs.map((l) => JSON.parse(l)).find((l) => l.event_id === eur.id)).toMatchObject({ event: 'stripe_event_ignored', level: 'error', reason: 'refund in currency eur' });
    expect((await p.account()).balanceMicroUsd).toBe(25_000_000);
  });
});

/** `charge.dispute.closed` with its final status (`won`, `lost`, `warning_closed`). */
function disputeClosed(paymentIntent: string, id: string, status: string, amount = 2500) {
  return stripeEvent('charge.dispute.closed', {
    id,
    object: 'dispute',
    amount,
    currency: 'usd',
    charge: `ch_for_${paymentIntent}`,
    payment_intent: paymentIntent,
    status,
    reason: 'fraudulent',
    is_charge_refundable: false,
  });
}

async function adminCredit(accountId: string, amountUsd: number | string, reference: string) {
  const res = await fetch(`${gw.adminUrl}/accounts/${accountId}/credits`, {
    method: 'POST',
    headers: { authorization: `Bearer ${gw.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ amount_usd: amountUsd, reference }),
  });
  return { status: res.status, json: await res.json() };
}

/** A fresh account credited $25 by a card payment, its balance then set as if spent down to `spendTo`. */
async function paidAccount(spendTo?: number) {
  const a = await createAccount(gw, { creditsMicroUsd: 0 });
  const event = checkoutCompleted({ client_reference_id: a.accountId, metadata: { itapi_account_id: a.accountId } });
  expect((await deliver(gw, event)).json.result).toBe('credited');
  if (spendTo !== undefined) await setBalance(a.accountId, 25_000_000, spendTo);
  const bal = async () => (await gw.gateway.stores.accounts.get(a.accountId))!;
  return { accountId: a.accountId, pi: event.data.object.payment_intent as string, sessionId: event.data.object.id as string, account: bal };
}

/**
 * As if the holder had spent down to `to` on requests: the balance set and the spend written as a
 * ledger item, so that the ledger still sums to the balance.
 */
async function setBalance(accountId: string, from: number, to: number) {
  await gw.dynamo.call('UpdateItem', {
    TableName: gw.gateway.stores.accounts.tableName,
    Key: { account_id: { S: accountId } },
    UpdateExpression: 'SET balance = :b',
    ExpressionAttributeValues: { ':b': { N: String(to) } },
  });
  await gw.dynamo.call('PutItem', {
    TableName: gw.gateway.stores.usage.tableName,
    Item: ledgerToItem({ accountId, kind: 'request', atMs: Date.now(), id: `spend_${Math.random().toString(36).slice(2)}`, amountMicroUsd: to - from, model: 'gpt-4o-mini', status: 'completed' }),
  });
}

/** The books of an account with nothing in flight: the ledger sums to the balance and to what is owed, owed only on an empty balance. */
async function expectBooksOf(accountId: string) {
  const a = (await gw.gateway.stores.accounts.get(accountId))!;
  const ledger = await gw.gateway.stores.usage.all(accountId);
  expect(ledger.reduce((sum, e) => sum + e.amountMicroUsd, 0)).toBe(a.balanceMicroUsd);
  expect(ledger.reduce((sum, e) => sum + (e.kind === 'topup' ? 0 : (e.owedMicroUsd ?? 0)), 0)).toBe(a.owedMicroUsd);
  expect(a.owedMicroUsd).toBeGreaterThanOrEqual(0);
  expect(a.balanceMicroUsd).toBeGreaterThanOrEqual(0);
  if (a.owedMicroUsd > 0) expect(a.balanceMicroUsd).toBe(0);
  return a;
}

describe('owed credits paid back by the next top-up', () => {
  it('a card top-up pays what is owed first, in one transaction, once, with a ledger item saying so', async () => {
    const p = await paidAccount(4_000_000);
    expect((await deliver(gw, disputeCreated(p.pi, 2500))).json.result).toBe('taken_back');
    expect(await p.account()).toMatchObject({ balanceMicroUsd: 0, owedMicroUsd: 21_000_000 });
    // A $10 top-up pays $10 of the $21 owed; nothing reaches the balance.
    const ten = checkoutCompleted({ client_reference_id: p.accountId, metadata: { itapi_account_id: p.accountId }, amount_subtotal: 1000, amount_total: 1000 });
    const answers = await Promise.all([deliver(gw, ten), deliver(gw, ten)]);
    expect(answers.map((a) => a.json.result).sort()).toEqual(['credited', 'duplicate']);
    expect(await p.account()).toMatchObject({ balanceMicroUsd: 0, owedMicroUsd: 11_000_000 });
    // A $25 top-up pays the $11 left; the balance gets $14.
    const twentyFive = checkoutCompleted({ client_reference_id: p.accountId, metadata: { itapi_account_id: p.accountId } });
    expect((await deliver(gw, twentyFive)).json.result).toBe('credited');
    expect((await deliver(gw, twentyFive)).json.result).toBe('duplicate');
    expect(await p.account()).toMatchObject({ balanceMicroUsd: 14_000_000, owedMicroUsd: 0 });
    const paid = await gw.gateway.stores.usage.owedPayments(p.accountId);
    expect(paid.map((e) => [e.id, e.amountMicroUsd, e.owedMicroUsd]).sort()).toEqual(
      [
        [ten.data.object.id, -10_000_000, -10_000_000],
        [twentyFive.data.object.id, -11_000_000, -11_000_000],
      ].sort(),
    );
    // The top-ups themselves are recorded whole: what the holder paid.
    expect((await gw.gateway.stores.usage.topUps(p.accountId)).map((t) => t.amountMicroUsd).sort((a, b) => a - b)).toEqual([10_000_000, 25_000_000, 25_000_000]);
    await expectBooksOf(p.accountId);
    // The admin API lists the owed payments beside the top-ups, and totals them.
    const usage = await (await fetch(`${gw.adminUrl}/accounts/${p.accountId}/usage?from=0`, { headers: { authorization: `Bearer ${gw.adminToken}` } })).json();
    expect(usage.items).toContainEqual(expect.objectContaining({ kind: 'owed_payment', reference: twentyFive.data.object.id, amount_micro_usd: -11_000_000, owed_micro_usd: -11_000_000 }));
    expect(usage.totals).toMatchObject({ owed_paid_micro_usd: 21_000_000, reversal_owed_micro_usd: 21_000_000 });
    // The console shows each top-up with what it paid of what was owed, and no owed line any more.
    const s = await signIn(gw, p.accountId);
    const recent = (await consoleApi(gw, s, 'GET', 'top-up')).json.recent;
    expect(recent.find((t: { reference: string }) => t.reference === ten.data.object.id)).toMatchObject({ amount_micro_usd: 10_000_000, owed_paid_micro_usd: 10_000_000 });
    expect(recent.find((t: { reference: string }) => t.reference === p.sessionId)).toMatchObject({ owed_paid_micro_usd: 0 });
    const page = await (await fetch(`${consoleOrigin(gw)}/console/`, { headers: { cookie: s.cookie } })).text();
    expect(page).toContain('data-owed-paid-micro-usd="11000000"');
    expect(page).not.toContain('data-field="owed"');
  });

  it('an admin credit pays what is owed first and says how much in its answer; the same reference adds once', async () => {
    const p = await paidAccount(0);
    expect((await deliver(gw, chargeRefunded(p.pi, 2500))).json.result).toBe('taken_back');
    expect((await p.account()).owedMicroUsd).toBe(25_000_000);
    const first = await adminCredit(p.accountId, '10.50', 'inv-1');
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({
      balance_micro_usd: 0,
      owed_micro_usd: 14_500_000,
      top_up: { reference: 'inv-1', amount_micro_usd: 10_500_000, result: 'added', owed_paid_micro_usd: 10_500_000, balance_added_micro_usd: 0 },
    });
    const again = await adminCredit(p.accountId, '10.50', 'inv-1');
    expect(again.json).toMatchObject({ owed_micro_usd: 14_500_000, top_up: { result: 'duplicate', owed_paid_micro_usd: 0, balance_added_micro_usd: 0 } });
    const second = await adminCredit(p.accountId, 20, 'inv-2');
    expect(second.json).toMatchObject({ balance_micro_usd: 5_500_000, owed_micro_usd: 0, top_up: { owed_paid_micro_usd: 14_500_000, balance_added_micro_usd: 5_500_000 } });
    // Nothing owed: a top-up goes to the balance whole.
    const third = await adminCredit(p.accountId, 1, 'inv-3');
    expect(third.json).toMatchObject({ balance_micro_usd: 6_500_000, owed_micro_usd: 0, top_up: { owed_paid_micro_usd: 0, balance_added_micro_usd: 1_000_000 } });
    expect(await gw.gateway.stores.usage.owedPayments(p.accountId)).toHaveLength(2);
    await expectBooksOf(p.accountId);
  });

  it('top-ups racing refunds and disputes: balance − owed is top-ups − reversals − spend, owed only on an empty balance, nothing applied twice', async () => {
    for (let round = 0; round < 6; round++) {
      const p = await paidAccount(round % 2 ? 3_000_000 : 0);
      const spent = 25_000_000 - (round % 2 ? 3_000_000 : 0);
      const refund = chargeRefunded(p.pi, 2000);
      const dispute = disputeCreated(p.pi, 500);
      const card = checkoutCompleted({ client_reference_id: p.accountId, metadata: { itapi_account_id: p.accountId }, amount_subtotal: 700, amount_total: 700 });
      const results = await Promise.all([
        deliver(gw, refund),
        adminCredit(p.accountId, 4, `race-${round}-a`),
        deliver(gw, dispute),
        deliver(gw, card),
        adminCredit(p.accountId, 4, `race-${round}-a`),
        deliver(gw, refund),
        adminCredit(p.accountId, '2.5', `race-${round}-b`),
        deliver(gw, card),
      ]);
      expect(results.every((r) => r.status === 200)).toBe(true);
      const a = await expectBooksOf(p.accountId);
      // Credited: 25 (card) + 4 + 7 (card) + 2.5, less the spend and what the refund and dispute took of the first payment.
      const taken = (await gw.gateway.stores.accounts.payment(p.pi))!.takenMicroUsd;
      expect([20_000_000, 25_000_000]).toContain(taken);
      expect(a.balanceMicroUsd - a.owedMicroUsd).toBe(25_000_000 + 4_000_000 + 7_000_000 + 2_500_000 - spent - taken);
      expect((await gw.gateway.stores.usage.topUps(p.accountId)).length).toBe(4);
      expect((await gw.gateway.stores.usage.reversals(p.accountId)).length).toBe(2);
    }
  });
});

describe('disputes closed', () => {
  it('a won dispute gives back what its creation took, paying what is owed first, once however often delivered', async () => {
    const p = await paidAccount(4_000_000);
    const id = `dp_won_${Math.random().toString(36).slice(2)}`;
    expect((await deliver(gw, disputeCreated(p.pi, 2500, id))).json.result).toBe('taken_back');
    expect(await p.account()).toMatchObject({ balanceMicroUsd: 0, owedMicroUsd: 21_000_000 });
    const won = disputeClosed(p.pi, id, 'won');
    const answers = await Promise.all([deliver(gw, won), deliver(gw, won), deliver(gw, won)]);
    expect(answers.map((a) => a.json.result).sort()).toEqual(['given_back', 'ignored', 'ignored']);
    // $21 of the $25 it took was owed: it pays that; the $4 it took from the balance comes back.
    expect(await p.account()).toMatchObject({ balanceMicroUsd: 4_000_000, owedMicroUsd: 0 });
    expect((await deliver(gw, won)).json.result).toBe('ignored');
    const back = (await gw.gateway.stores.usage.reversals(p.accountId)).find((r) => r.reason === 'dispute_won')!;
    expect(back).toMatchObject({ id: `dispute_won:${id}`, amountMicroUsd: 4_000_000, owedMicroUsd: -21_000_000, paymentReference: p.sessionId });
    await expectBooksOf(p.accountId);
    // The payment is whole again: a refund may take it back.
    expect((await deliver(gw, chargeRefunded(p.pi, 1000))).json.result).toBe('taken_back');
    expect(await p.account()).toMatchObject({ balanceMicroUsd: 0, owedMicroUsd: 6_000_000 });
    await expectBooksOf(p.accountId);
  });

  it('a won dispute whose creation was fully covered puts it all back on the balance; a lost one keeps it taken', async () => {
    const p = await paidAccount();
    const wonId = `dp_${Math.random().toString(36).slice(2)}`;
    expect((await deliver(gw, disputeCreated(p.pi, 1500, wonId))).json.result).toBe('taken_back');
    expect((await p.account()).balanceMicroUsd).toBe(10_000_000);
    expect((await deliver(gw, disputeClosed(p.pi, wonId, 'won', 1500))).json.result).toBe('given_back');
    expect(await p.account()).toMatchObject({ balanceMicroUsd: 25_000_000, owedMicroUsd: 0 });

    const lostId = `dp_${Math.random().toString(36).slice(2)}`;
    expect((await deliver(gw, disputeCreated(p.pi, 1000, lostId))).json.result).toBe('taken_back');
    expect((await deliver(gw, disputeClosed(p.pi, lostId, 'lost', 1000))).json.result).toBe('ignored');
    expect(await p.account()).toMatchObject({ balanceMicroUsd: 15_000_000, owedMicroUsd: 0 });
    const line = gw.logs.map((l) => JSON.parse(l)).find((l) => l.event === 'stripe_event_ignored' && l.dispute === lostId);
    expect(line).toMatchObject({ level: 'info', reason: 'dispute closed lost' });
    await expectBooksOf(p.accountId);
  });

  it('an inquiry closed without a chargeback (warning_closed) gives back like a won dispute', async () => {
    const p = await paidAccount();
    const id = `dp_${Math.random().toString(36).slice(2)}`;
    expect((await deliver(gw, disputeCreated(p.pi, 2500, id))).json.result).toBe('taken_back');
    expect((await deliver(gw, disputeClosed(p.pi, id, 'warning_closed'))).json.result).toBe('given_back');
    expect((await p.account()).balanceMicroUsd).toBe(25_000_000);
  });

  it('a won closing delivered before its creation: the late creation takes nothing', async () => {
    const p = await paidAccount();
    const id = `dp_${Math.random().toString(36).slice(2)}`;
    expect((await deliver(gw, disputeClosed(p.pi, id, 'won'))).json.result).toBe('ignored');
    expect((await deliver(gw, disputeCreated(p.pi, 2500, id))).json.result).toBe('ignored');
    expect(await p.account()).toMatchObject({ balanceMicroUsd: 25_000_000, owedMicroUsd: 0 });
    await expectBooksOf(p.accountId);
  });

  it('creation and won closing delivered at once, racing a top-up: given back exactly what was taken', async () => {
    for (let round = 0; round < 5; round++) {
      const p = await paidAccount(round % 2 ? 0 : 2_000_000);
      const id = `dp_${Math.random().toString(36).slice(2)}`;
      const created = disputeCreated(p.pi, 2500, id);
      const won = disputeClosed(p.pi, id, 'won');
      await Promise.all([deliver(gw, created), deliver(gw, won), adminCredit(p.accountId, 3, `race-won-${round}`), deliver(gw, won)]);
      // Whichever order they landed in, the dispute nets to nothing.
      const a = await expectBooksOf(p.accountId);
      expect(a.balanceMicroUsd - a.owedMicroUsd).toBe((round % 2 ? 0 : 2_000_000) + 3_000_000);
      expect(a.owedMicroUsd).toBe(0);
    }
  });

  it('refuses an unsigned or wrongly signed closing', async () => {
    const p = await paidAccount();
    const id = `dp_${Math.random().toString(36).slice(2)}`;
    await deliver(gw, disputeCreated(p.pi, 2500, id));
    expect((await deliver(gw, disputeClosed(p.pi, id, 'won'), 'whsec_someone_else')).status).toBe(400);
    expect((await deliver(gw, disputeClosed(p.pi, id, 'won'), WEBHOOK_SECRET, '')).status).toBe(400);
    expect((await p.account()).balanceMicroUsd).toBe(0);
  });
});

describe('without Stripe', () => {
  it('the console says how to ask the operator, top-ups are refused and the webhook route does not exist', async () => {
    const other = await createAccount(plain);
    const s = await signIn(plain, other.accountId);
    const options = await consoleApi(plain, s, 'GET', 'top-up');
    expect(options.json.enabled).toBe(false);
    const page = await (await fetch(`${consoleOrigin(plain)}/console/`, { headers: { cookie: s.cookie } })).text();
    expect(page).toContain(`itapi credits add ${other.accountId} --amount USD --reference REF`);
    expect(page).not.toContain('data-form="top-up"');
    const res = await consoleApi(plain, s, 'POST', 'top-up', { amount_usd: 10, return_url: `${consoleOrigin(plain)}/console/` });
    expect(res.status).toBe(409);
    expect(res.json.error.code).toBe('top_up_unavailable');
    expect((await deliver(plain, checkoutCompleted())).status).toBe(404);
  });
});

it('Stripe’s entries in the environment are not provider keys: the mock provider stays on', () => {
  expect(hasEnvProviderKeys({ ITAPI_SECRET_STRIPE_SECRET_KEY: SECRET_KEY, ITAPI_SECRET_STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET })).toBe(false);
  expect(hasEnvProviderKeys({ ITAPI_SECRET_STRIPE_SECRET_KEY: SECRET_KEY, ITAPI_SECRET_OPENAI: 'sk-x' })).toBe(true);
});
