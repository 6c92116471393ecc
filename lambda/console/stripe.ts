import type Stripe from 'stripe';
import { GatewayError, invalidRequest } from '../contract/errors';
import type { Logger } from '../observability/log';
import type { ProviderKeys } from '../secrets/provider-keys';
import type { AccountsStore } from '../store/accounts';

/**
 * Top-ups by card through Stripe Checkout. The `stripe` package is loaded on first use only, so
 * neither the chat path nor a console without Stripe ever pays for it. The Checkout session id is
 * the top-up's ledger reference: however often Stripe delivers the webhook, the account is
 * credited once.
 */

/** Entries of the provider-keys secret (locally `ITAPI_SECRET_STRIPE_SECRET_KEY` and `…_WEBHOOK_SECRET`). */
export const STRIPE_SECRET_KEY_ENTRY = 'stripe_secret_key';
export const STRIPE_WEBHOOK_SECRET_ENTRY = 'stripe_webhook_secret';

/** Metadata our Checkout sessions carry; sessions without it (other products on the same Stripe account) are ignored. */
export const ACCOUNT_METADATA = 'itapi_account_id';

export interface StripeSettings {
  secretKey: string;
  webhookSecret: string;
}

/** Stripe is on when both entries are set. */
export async function stripeSettings(secrets: ProviderKeys): Promise<StripeSettings | undefined> {
  const [secretKey, webhookSecret] = await Promise.all([secrets.get(STRIPE_SECRET_KEY_ENTRY), secrets.get(STRIPE_WEBHOOK_SECRET_ENTRY)]);
  return secretKey && webhookSecret ? { secretKey, webhookSecret } : undefined;
}

/** Where the Stripe client sends API calls; only stand-ins (tests, stripe-mock) change it. */
export interface StripeApiAddress {
  host: string;
  port: number;
  protocol: 'http' | 'https';
}

export function stripeApiAddress(url: string | undefined): StripeApiAddress | undefined {
  if (!url) return undefined;
  const u = new URL(url);
  const protocol = u.protocol === 'http:' ? 'http' : 'https';
  return { host: u.hostname, port: Number(u.port || (protocol === 'http' ? 80 : 443)), protocol };
}

const clients = new Map<string, Stripe>();

async function stripeClient(secretKey: string, api: StripeApiAddress | undefined): Promise<Stripe> {
  const cacheKey = `${secretKey}\0${api ? `${api.protocol}://${api.host}:${api.port}` : ''}`;
  let client = clients.get(cacheKey);
  if (!client) {
    const { default: StripeClient } = await import('stripe');
    client = new StripeClient(secretKey, { maxNetworkRetries: 1, timeout: 10_000, telemetry: false, ...api });
    clients.set(cacheKey, client);
  }
  return client;
}

export interface CheckoutRequest {
  accountId: string;
  amountMicroUsd: number;
  /** The console page to come back to (success and cancel). */
  returnUrl: string;
}

/** A Checkout session for a one-off payment of the amount; the browser goes to its `url`. */
export async function createCheckout(
  settings: StripeSettings,
  api: StripeApiAddress | undefined,
  request: CheckoutRequest,
): Promise<{ id: string; url: string }> {
  const stripe = await stripeClient(settings.secretKey, api);
  const back = new URL(request.returnUrl);
  back.search = '';
  back.hash = '';
  const success = `${back.href}?top_up=paid`;
  const cancel = `${back.href}?top_up=cancelled`;
  const session = await stripe.checkout.sessions.create({
    mode: 'payment',
    client_reference_id: request.accountId,
    metadata: { [ACCOUNT_METADATA]: request.accountId, itapi_amount_micro_usd: String(request.amountMicroUsd) },
    line_items: [
      {
        quantity: 1,
        price_data: {
          currency: 'usd',
          unit_amount: request.amountMicroUsd / 10_000,
          product_data: { name: 'itapi credits', description: `Prepaid credits for account ${request.accountId}` },
        },
      },
    ],
    success_url: success,
    cancel_url: cancel,
  });
  if (!session.url) throw new GatewayError(502, 'api_error', 'upstream_error', 'Stripe gave no Checkout URL.');
  return { id: session.id, url: session.url };
}

/**
 * A dispute closed with these statuses gives back what its `created` took: `won`, and
 * `warning_closed` (an inquiry closed without becoming a chargeback: Stripe withdrew nothing).
 */
const GIVEN_BACK = new Set<string>(['won', 'warning_closed']);

export type WebhookOutcome =
  | { result: 'credited' | 'duplicate'; accountId: string; reference: string; amountMicroUsd: number; owedPaidMicroUsd?: number }
  | { result: 'given_back'; accountId: string; reference: string; toBalanceMicroUsd: number; owedPaidMicroUsd: number }
  | { result: 'taken_back'; accountId: string; reference: string; takenMicroUsd: number; owedMicroUsd: number }
  | { result: 'ignored'; reason: string };

export interface StripeWebhookDeps {
  accounts: Pick<AccountsStore, 'credit' | 'takeBack' | 'reinstateDispute'>;
  log: Logger;
  /** Counts a paid event that credited nothing (a customer charged, nothing credited): alarmed. */
  onIgnoredPayment?(reason: string): void;
}

/** Stripe amounts are integers in the currency's smallest unit; a US cent is 10,000 micro-USD. */
const CENT = 10_000;

/**
 * A webhook delivery: the signature is checked with Stripe's library against the raw body (a
 * failure is a 400), and the event's `livemode` against the key's mode. Then:
 * - a paid Checkout session of ours credits its account, once per session whatever the account,
 *   tied to its PaymentIntent (and the charge's receipt);
 * - `charge.refunded` takes back `amount_refunded` less what earlier reversals of that payment
 *   took, `charge.dispute.created` the disputed amount: as far as the balance goes, the rest owed;
 * - `charge.dispute.closed` `won` gives back what its `created` took (paying what is owed first),
 *   once per dispute; `lost` keeps it.
 * Every paid event that credits nothing is logged with its reason and counted.
 */
export async function handleStripeWebhook(
  deps: StripeWebhookDeps,
  settings: StripeSettings,
  api: StripeApiAddress | undefined,
  rawBody: string,
  signature: string | undefined,
  nowMs: number,
): Promise<WebhookOutcome> {
  const stripe = await stripeClient(settings.secretKey, api);
  let event: Stripe.Event;
  try {
    event = stripe.webhooks.constructEvent(rawBody, signature ?? '', settings.webhookSecret);
  } catch {
    throw invalidRequest('The Stripe-Signature header does not match the body.', null, 'invalid_signature');
  }
  const ignored = (reason: string, fields: Record<string, unknown> = {}, paid = true): WebhookOutcome => {
    const line = { event_id: event.id, event_type: event.type, reason, ...fields };
    if (paid) {
      deps.log.error('stripe_event_ignored', line);
      deps.onIgnoredPayment?.(reason);
    } else deps.log.info('stripe_event_ignored', line);
    return { result: 'ignored', reason };
  };
  const live = settings.secretKey.startsWith('sk_live_') || settings.secretKey.startsWith('rk_live_');
  if (event.livemode !== live) return ignored(`livemode ${event.livemode} with a ${live ? 'live' : 'test'} key`);
  switch (event.type) {
    case 'checkout.session.completed':
    case 'checkout.session.async_payment_succeeded':
      return creditCheckout(deps, stripe, event.data.object, nowMs, ignored);
    case 'charge.refunded': {
      const charge = event.data.object;
      const paymentIntentId = idOf(charge.payment_intent);
      if (!paymentIntentId) return ignored('refund of a charge without a PaymentIntent', { charge: charge.id }, false);
      if (charge.currency !== 'usd') return ignored(`refund in currency ${charge.currency}`, { charge: charge.id });
      if (!Number.isSafeInteger(charge.amount_refunded) || charge.amount_refunded < 0) return ignored('refund amount not whole cents', { charge: charge.id });
      return takeBack(deps, ignored, {
        paymentIntentId,
        kind: 'refund',
        // The refunded total names the event: a redelivery finds its ledger item, a later refund is another.
        reference: `refund:${charge.id}:${charge.amount_refunded}`,
        cumulativeMicroUsd: charge.amount_refunded * CENT,
        nowMs,
      });
    }
    case 'charge.dispute.created': {
      const dispute = event.data.object;
      const paymentIntentId = idOf(dispute.payment_intent);
      if (!paymentIntentId) return ignored('dispute of a charge without a PaymentIntent', { dispute: dispute.id }, false);
      if (dispute.currency !== 'usd') return ignored(`dispute in currency ${dispute.currency}`, { dispute: dispute.id });
      if (!Number.isSafeInteger(dispute.amount) || dispute.amount <= 0) return ignored('dispute amount not whole cents', { dispute: dispute.id });
      return takeBack(deps, ignored, { paymentIntentId, kind: 'dispute', disputeId: dispute.id, reference: `dispute:${dispute.id}`, amountMicroUsd: dispute.amount * CENT, nowMs });
    }
    case 'charge.dispute.closed': {
      const dispute = event.data.object;
      const fields = { dispute: dispute.id, status: dispute.status };
      // Lost (or any other ending): what the dispute took stays taken.
      if (!GIVEN_BACK.has(dispute.status)) return ignored(`dispute closed ${dispute.status}`, fields, false);
      const paymentIntentId = idOf(dispute.payment_intent);
      if (!paymentIntentId) return ignored('dispute of a charge without a PaymentIntent', fields, false);
      return reinstate(deps, ignored, { paymentIntentId, disputeId: dispute.id, nowMs });
    }
    default:
      return ignored(`event ${event.type}`, {}, false);
  }
}

type Ignore = (reason: string, fields?: Record<string, unknown>, paid?: boolean) => WebhookOutcome;

const idOf = (v: string | { id: string } | null | undefined) => (typeof v === 'string' ? v : v?.id);

async function creditCheckout(deps: StripeWebhookDeps, stripe: Stripe, session: Stripe.Checkout.Session, nowMs: number, ignored: Ignore): Promise<WebhookOutcome> {
  const accountId = session.metadata?.[ACCOUNT_METADATA];
  const fields = { checkout_session: session.id, account_id: accountId };
  // Another product's sessions on the same Stripe account, and unpaid ones, are not ours to credit.
  if (!accountId) return ignored('not an itapi Checkout session', { checkout_session: session.id }, false);
  if (session.payment_status !== 'paid') return ignored(`payment ${session.payment_status}`, fields, false);
  if (session.client_reference_id !== accountId) return ignored('account ids disagree', { ...fields, client_reference_id: session.client_reference_id });
  if (session.currency !== 'usd') return ignored(`currency ${session.currency}`, fields);
  // The credits' price before tax; a discount the operator grants still buys the full amount.
  const cents = session.amount_subtotal ?? session.amount_total;
  if (cents === null || typeof cents !== 'number') return ignored('no amount', fields);
  if (!Number.isSafeInteger(cents)) return ignored('fractional amount', { ...fields, amount: cents });
  if (cents <= 0) return ignored('no amount', fields);
  const paymentIntentId = idOf(session.payment_intent);
  if (!paymentIntentId) return ignored('no PaymentIntent', fields);
  const amountMicroUsd = cents * CENT;
  const receiptUrl = await receiptOf(deps.log, stripe, paymentIntentId);
  const out = await deps.accounts.credit(accountId, amountMicroUsd, session.id, nowMs, { checkoutSessionId: session.id, paymentIntentId, receiptUrl });
  if (out.result === 'no-account') return ignored('unknown account', fields);
  const owedPaidMicroUsd = out.result === 'added' ? out.owedPaidMicroUsd : undefined;
  deps.log.info('stripe_top_up', {
    account_id: accountId,
    reference: session.id,
    payment_intent: paymentIntentId,
    amount_micro_usd: amountMicroUsd,
    owed_paid_micro_usd: owedPaidMicroUsd,
    result: out.result,
  });
  return { result: out.result === 'added' ? 'credited' : 'duplicate', accountId, reference: session.id, amountMicroUsd, owedPaidMicroUsd };
}

/** The payment's receipt, from its latest charge; a top-up goes through without one when Stripe cannot say. */
async function receiptOf(log: Logger, stripe: Stripe, paymentIntentId: string): Promise<string | undefined> {
  try {
    const intent = await stripe.paymentIntents.retrieve(paymentIntentId, { expand: ['latest_charge'] });
    const charge = intent.latest_charge;
    const url = charge && typeof charge === 'object' ? charge.receipt_url : undefined;
    return url && /^https:\/\//.test(url) ? url : undefined;
  } catch (err) {
    const e = err as { type?: string; code?: string; statusCode?: number };
    log.info('stripe_receipt_unavailable', { payment_intent: paymentIntentId, type: e.type, code: e.code, status: e.statusCode });
    return undefined;
  }
}

async function takeBack(
  deps: StripeWebhookDeps,
  ignored: Ignore,
  r: Parameters<AccountsStore['takeBack']>[0],
): Promise<WebhookOutcome> {
  const out = await deps.accounts.takeBack(r);
  if (out.result === 'unknown-payment') return ignored(`${r.kind} of a payment that credited no account`, { payment_intent: r.paymentIntentId }, false);
  if (out.result !== 'taken') {
    deps.log.info('stripe_reversal_unchanged', { account_id: out.accountId, reference: r.reference, result: out.result });
    return { result: 'ignored', reason: out.result === 'duplicate' ? 'delivered before' : 'nothing left to take back' };
  }
  deps.log.info('stripe_reversal', {
    account_id: out.accountId,
    reference: r.reference,
    payment_reference: out.checkoutSessionId,
    taken_micro_usd: out.takenMicroUsd,
    owed_micro_usd: out.owedMicroUsd,
  });
  return { result: 'taken_back', accountId: out.accountId, reference: r.reference, takenMicroUsd: out.takenMicroUsd, owedMicroUsd: out.owedMicroUsd };
}

async function reinstate(deps: StripeWebhookDeps, ignored: Ignore, r: Parameters<AccountsStore['reinstateDispute']>[0]): Promise<WebhookOutcome> {
  const out = await deps.accounts.reinstateDispute(r);
  const reference = `dispute_won:${r.disputeId}`;
  if (out.result === 'unknown-payment') return ignored('dispute of a payment that credited no account', { payment_intent: r.paymentIntentId }, false);
  if (out.result !== 'reinstated') {
    deps.log.info('stripe_reversal_unchanged', { account_id: out.accountId, reference, result: out.result });
    return { result: 'ignored', reason: out.result === 'duplicate' ? 'delivered before' : 'the dispute took nothing' };
  }
  deps.log.info('stripe_dispute_won', {
    account_id: out.accountId,
    reference,
    payment_reference: out.checkoutSessionId,
    to_balance_micro_usd: out.toBalanceMicroUsd,
    owed_paid_micro_usd: out.owedPaidMicroUsd,
  });
  return { result: 'given_back', accountId: out.accountId, reference, toBalanceMicroUsd: out.toBalanceMicroUsd, owedPaidMicroUsd: out.owedPaidMicroUsd };
}
