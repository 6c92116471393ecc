import type { Hono } from 'hono';
import { zodOnFirstUse } from '../contract/zod';
import { parse, readJson, usdParam } from '../admin/request-body';
import { newWebhookSecret, type BalanceAlerts } from '../alerts/balance-alerts';
import { checkWebhookUrl, WebhookAddressError, type WebhookAddressPolicy } from '../alerts/webhook-address';
import { GatewayError, invalidRequest } from '../contract/errors';
import type { Logger } from '../observability/log';
import type { Account, AccountsStore } from '../store/accounts';

// The one zod the chat bundle's schemas use too (lambda/contract/zod.ts): one copy in each bundle.
const { z } = zodOnFirstUse();

/**
 * The console's low-balance alert: `GET`/`PUT`/`DELETE /console/api/alerts` and `POST
 * /console/api/alerts/secret` (reveal, or rotate). The signing secret is answered only by a save
 * and by the reveal call (a change, so it needs the CSRF token), never by a read.
 */

export interface AlertRouteDeps {
  accounts: Pick<AccountsStore, 'get' | 'setBalanceAlert'>;
  alerts?: Pick<BalanceAlerts, 'forget' | 'afterCharge'> & Partial<Pick<BalanceAlerts, 'emailSaved'>>;
  alertPolicy?: WebhookAddressPolicy;
  log: Logger;
}

/** The most a threshold may be: $1,000,000. */
const MAX_THRESHOLD_MICRO_USD = 1_000_000_000_000;
const EMAIL = /^[^\s@<>()",;:]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

const alertBody = z.strictObject({
  threshold_usd: z.union([z.number(), z.string()]),
  webhook_url: z.string().max(2000).nullable().optional(),
  email: z.string().max(254).nullable().optional(),
});
const secretBody = z.strictObject({ rotate: z.boolean().optional() }).optional();

export function alertView(account: Account) {
  const a = account.alert;
  return {
    object: 'balance_alert' as const,
    enabled: a !== undefined,
    threshold_micro_usd: a?.thresholdMicroUsd ?? null,
    webhook_url: a?.webhookUrl ?? null,
    email: a?.email ?? null,
    /** False once it fired, until a top-up brings the balance back to the threshold. */
    armed: a?.armed ?? false,
    has_secret: Boolean(a?.secret),
  };
}

export type AlertJson = ReturnType<typeof alertView>;

type SessionEnv = { Variables: { session: { accountId: string } } };

export function alertRoutes<E extends SessionEnv>(api: Hono<E>, deps: AlertRouteDeps): void {
  const accountOf = (c: { var: { session: { accountId: string } } }) => c.var.session.accountId;
  const policy = deps.alertPolicy ?? { allowPrivate: false };
  const account = async (id: string) => {
    const a = await deps.accounts.get(id);
    if (!a) throw new GatewayError(401, 'authentication_error', 'session_required', 'Sign in to the console first.');
    return a;
  };

  api.get('/alerts', async (c) => c.json(alertView(await account(accountOf(c)))));

  api.put('/alerts', async (c) => {
    const id = accountOf(c);
    const body = parse(alertBody, await readJson(c));
    const threshold = usdParam(body.threshold_usd, 'threshold_usd');
    if (threshold <= 0 || threshold > MAX_THRESHOLD_MICRO_USD) throw invalidRequest('`threshold_usd` must be above 0 and at most 1000000.', 'threshold_usd');
    const webhookUrl = body.webhook_url?.trim() || undefined;
    if (webhookUrl) {
      try {
        await checkWebhookUrl(webhookUrl, policy);
      } catch (err) {
        if (err instanceof WebhookAddressError) throw invalidRequest(`The webhook URL ${err.message}.`, 'webhook_url', 'webhook_url_refused');
        throw err;
      }
    }
    const email = body.email?.trim() || undefined;
    if (email && !EMAIL.test(email)) throw invalidRequest('`email` is not an e-mail address.', 'email');
    if (!webhookUrl && !email) throw invalidRequest('Give a webhook URL, an e-mail address, or both.', 'webhook_url', 'missing_required_parameter');
    const before = await account(id);
    const secret = before.alert?.secret ?? newWebhookSecret();
    const saved = await deps.accounts.setBalanceAlert(id, { thresholdMicroUsd: threshold, webhookUrl, email, secret });
    if (!saved) throw new GatewayError(401, 'authentication_error', 'session_required', 'Sign in to the console first.');
    deps.alerts?.forget(id);
    deps.log.info('console_alert_saved', { account_id: id, threshold_micro_usd: threshold, webhook: Boolean(webhookUrl), email: Boolean(email) });
    // In AWS the address is subscribed now, so SNS's confirmation mail goes out before any alert.
    if (email) await deps.alerts?.emailSaved?.(id, email);
    // Already below it: the alert fires now rather than at the next charge.
    await deps.alerts?.afterCharge(id);
    const now = (await deps.accounts.get(id)) ?? saved;
    // The secret is shown here, right after saving, and behind "Reveal secret".
    return c.json({ ...alertView(now), secret });
  });

  api.delete('/alerts', async (c) => {
    const id = accountOf(c);
    const saved = await deps.accounts.setBalanceAlert(id, null);
    if (!saved) throw new GatewayError(401, 'authentication_error', 'session_required', 'Sign in to the console first.');
    deps.alerts?.forget(id);
    deps.log.info('console_alert_removed', { account_id: id });
    return c.json(alertView(saved));
  });

  api.post('/alerts/secret', async (c) => {
    const id = accountOf(c);
    const body = parse(secretBody, await readJson(c, true));
    const current = await account(id);
    if (!current.alert) throw new GatewayError(404, 'invalid_request_error', 'not_found', 'No low-balance alert is set.');
    let secret = current.alert.secret;
    if (body?.rotate || !secret) {
      secret = newWebhookSecret();
      await deps.accounts.setBalanceAlert(id, { ...current.alert, secret });
      deps.log.info('console_alert_secret_rotated', { account_id: id });
    }
    return c.json({ object: 'balance_alert_secret', secret });
  });
}
