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

export type WebhookOutcome =
  | { result: 'credited' | 'duplicate'; accountId: string; reference: string; amountMicroUsd: number }
  | { result: 'ignored'; reason: string };

/**
 * A webhook delivery: the signature is checked with Stripe's library against the raw body (a
 * failure is a 400), then a paid Checkout session of ours credits its account, once per session id.
 */
export async function handleStripeWebhook(
  deps: { accounts: Pick<AccountsStore, 'topUp'>; log: Logger },
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
  if (event.type !== 'checkout.session.completed' && event.type !== 'checkout.session.async_payment_succeeded') {
    return { result: 'ignored', reason: `event ${event.type}` };
  }
  const session = event.data.object;
  const accountId = session.metadata?.[ACCOUNT_METADATA];
  if (!accountId) return { result: 'ignored', reason: 'not an itapi Checkout session' };
  if (session.payment_status !== 'paid') return { result: 'ignored', reason: `payment ${session.payment_status}` };
  if (session.client_reference_id !== accountId) return { result: 'ignored', reason: 'account ids disagree' };
  if (session.currency !== 'usd') return { result: 'ignored', reason: `currency ${session.currency}` };
  // The credits' price before tax; a discount the operator grants still buys the full amount.
  const cents = session.amount_subtotal ?? session.amount_total;
  if (!Number.isSafeInteger(cents) || cents === null || cents <= 0) return { result: 'ignored', reason: 'no amount' };
  const amountMicroUsd = cents * 10_000;
  const result = await deps.accounts.topUp(accountId, amountMicroUsd, session.id, nowMs);
  if (result === 'no-account') {
    deps.log.error('stripe_top_up_unknown_account', { account_id: accountId, reference: session.id });
    return { result: 'ignored', reason: 'unknown account' };
  }
  deps.log.info('stripe_top_up', { account_id: accountId, reference: session.id, amount_micro_usd: amountMicroUsd, result });
  return { result: result === 'added' ? 'credited' : 'duplicate', accountId, reference: session.id, amountMicroUsd };
}
