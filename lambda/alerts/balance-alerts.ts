import { createHmac, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { describeError, type Logger } from '../observability/log';
import type { Account, AccountsStore } from '../store/accounts';
import { isPublicAddress, publicAddresses, WebhookAddressError, type LookupAll } from './webhook-address';

/**
 * Low-balance alerts (ARCHITECTURE §8). The crossing is found where the balance falls: after a
 * settlement lands, one conditional write disarms the account's alert on condition that it is
 * armed and the balance is below its threshold, so however many settlements race, exactly one
 * fires it. A top-up that brings the balance back to the threshold or above re-arms it
 * (`AccountsStore.topUp`). The event is then delivered: signed to the webhook, and by e-mail.
 */

/** The event a webhook receives (and an e-mail carries). */
export interface BalanceLowEvent {
  type: 'balance.low';
  account_id: string;
  balance_micro_usd: number;
  threshold_micro_usd: number;
  /** When the crossing was found, ISO 8601. */
  at: string;
}

/** One alert to deliver: the event and where to. */
export interface AlertMessage {
  /** Unique per crossing; sent as `itapi-event-id` so a receiver can drop a retried duplicate. */
  id: string;
  event: BalanceLowEvent;
  webhookUrl?: string;
  secret?: string;
  email?: string;
}

/** Where fired alerts go: delivered in-process with retries (local mode), or queued (AWS). */
export interface AlertOutbox {
  send(message: AlertMessage): Promise<void>;
}

/** A fresh signing secret, shown to the holder. */
export function newWebhookSecret(): string {
  return `itapi_whsec_${randomBytes(32).toString('base64url')}`;
}

/** `t=<unix>,v1=<hex>`: HMAC-SHA256 under the secret over `<t>.<raw body>`, as Stripe signs. */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/** How long the fast path remembers that an account has no alert (it learns it from a failed condition). */
const NO_ALERT_TTL_MS = 60_000;

export interface BalanceAlertsOptions {
  accounts: Pick<AccountsStore, 'disarmBalanceAlert'>;
  outbox: AlertOutbox;
  log: Logger;
  now?: () => number;
}

export class BalanceAlerts {
  private readonly now: () => number;
  /** Accounts seen without an alert, until when: no write for them. */
  private readonly withoutAlert = new Map<string, number>();
  /** Accounts seen with an alert: every settlement checks. */
  private readonly withAlert = new Set<string>();
  /** The first check of an account this instance knows nothing of, which concurrent ones wait for. */
  private readonly learning = new Map<string, Promise<void>>();

  constructor(private readonly options: BalanceAlertsOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Forget what this instance believes of the account (its alert was just saved). */
  forget(accountId: string): void {
    this.withoutAlert.delete(accountId);
    this.withAlert.delete(accountId);
  }

  /**
   * After the balance fell (a settlement, a refund): fires the alert if this call is the one that
   * disarms it. Never throws: an alert must not undo or repeat the write that preceded it.
   */
  async afterCharge(accountId: string): Promise<void> {
    if (this.knownWithout(accountId)) return;
    // While this instance is still learning whether the account has an alert, concurrent
    // settlements wait for that one answer instead of each writing to the hot item.
    const learning = this.learning.get(accountId);
    if (learning) {
      await learning;
      if (this.knownWithout(accountId)) return;
    }
    const run = this.check(accountId);
    if (!learning && !this.withAlert.has(accountId)) {
      this.learning.set(accountId, run);
      void run.finally(() => this.learning.delete(accountId));
    }
    await run;
  }

  private knownWithout(accountId: string): boolean {
    const until = this.withoutAlert.get(accountId);
    return until !== undefined && until > this.now();
  }

  private async check(accountId: string): Promise<void> {
    try {
      const out = await this.options.accounts.disarmBalanceAlert(accountId);
      if (!out.fired) {
        if (out.account && !out.account.alert) {
          this.withoutAlert.set(accountId, this.now() + NO_ALERT_TTL_MS);
          this.withAlert.delete(accountId);
        } else {
          this.withoutAlert.delete(accountId);
          this.withAlert.add(accountId);
        }
        return;
      }
      this.withAlert.add(accountId);
      await this.fire(out.account);
    } catch (err) {
      this.options.log.error('balance_alert_check_failed', { account_id: accountId, ...describeError(err) });
    }
  }

  private async fire(account: Account): Promise<void> {
    const alert = account.alert!;
    const message: AlertMessage = {
      id: `evt_${randomBytes(12).toString('hex')}`,
      event: {
        type: 'balance.low',
        account_id: account.id,
        balance_micro_usd: account.balanceMicroUsd,
        threshold_micro_usd: alert.thresholdMicroUsd,
        at: new Date(this.now()).toISOString(),
      },
      webhookUrl: alert.webhookUrl,
      secret: alert.secret,
      email: alert.email,
    };
    this.options.log.info('balance_alert_fired', {
      account_id: account.id,
      event_id: message.id,
      balance_micro_usd: account.balanceMicroUsd,
      threshold_micro_usd: alert.thresholdMicroUsd,
      webhook: Boolean(alert.webhookUrl),
      email: Boolean(alert.email),
    });
    await this.options.outbox.send(message);
  }
}

export interface WebhookPostOptions {
  /** Local mode: any address. In AWS false: the connection itself is refused to non-public addresses. */
  allowPrivate: boolean;
  timeoutMs?: number;
  lookup?: LookupAll;
  now?: () => number;
}

/**
 * One signed POST of an alert to its webhook; resolves with the status, rejects on a network
 * failure. With `allowPrivate` false the socket connects only to an address checked public at
 * connection time (no DNS rebinding between the check and the connection).
 */
export function postWebhook(message: AlertMessage, options: WebhookPostOptions): Promise<number> {
  const url = new URL(message.webhookUrl!);
  const body = JSON.stringify(message.event);
  const t = Math.floor((options.now ?? Date.now)() / 1000);
  const headers = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'user-agent': 'itapi-alerts/1',
    'itapi-event-id': message.id,
    'itapi-signature': signatureHeader(message.secret ?? '', body, t),
  };
  const guarded: LookupFunction | undefined = options.allowPrivate
    ? undefined
    : (hostname, _opts, callback) => {
        publicAddresses(hostname, options.lookup).then(
          (all) => callback(null, all[0].address, all[0].family),
          (err: Error) => callback(Object.assign(err, { code: 'EREFUSED' }) as NodeJS.ErrnoException, '', 4),
        );
      };
  if (!options.allowPrivate) {
    // An address literal is connected to without a lookup: checked here instead.
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    if (url.protocol !== 'https:') return Promise.reject(new WebhookAddressError('must use https'));
    if (isIP(host) && !isPublicAddress(host)) return Promise.reject(new WebhookAddressError(`resolves to ${host}, a private, loopback or link-local address`));
  }
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, { method: 'POST', headers, lookup: guarded, timeout: options.timeoutMs ?? 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('webhook timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** A status worth another attempt: anything but a 2xx, save the 4xx that will not change (408 and 429 will). */
export function retryable(status: number): boolean {
  if (status >= 200 && status < 300) return false;
  return !(status >= 400 && status < 500 && status !== 408 && status !== 429);
}

/** Pauses between delivery attempts: about 10 minutes in all. */
export const DEFAULT_ALERT_RETRY_DELAYS_MS = [1_000, 5_000, 30_000, 120_000, 450_000];

export interface InProcessOutboxOptions extends WebhookPostOptions {
  log: Logger;
  retryDelaysMs?: readonly number[];
  /** E-mail: locally only logged unless a sender is given (SNS in AWS). */
  sendEmail?(message: AlertMessage): Promise<void>;
  onUndelivered?(channel: 'webhook' | 'email'): void;
}

/**
 * Local mode's outbox: delivers in this process, retrying with backoff. A delivery runs on after
 * the settlement that fired it (it is not awaited by the request); `idle()` waits for them all.
 */
export class InProcessAlertOutbox implements AlertOutbox {
  private readonly pending = new Set<Promise<void>>();
  private readonly delaysMs: readonly number[];

  constructor(private readonly options: InProcessOutboxOptions) {
    this.delaysMs = options.retryDelaysMs ?? DEFAULT_ALERT_RETRY_DELAYS_MS;
  }

  async send(message: AlertMessage): Promise<void> {
    const run = this.deliver(message).finally(() => this.pending.delete(run));
    this.pending.add(run);
  }

  async idle(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  private async deliver(message: AlertMessage): Promise<void> {
    await Promise.all([
      message.webhookUrl ? this.deliverWebhook(message) : undefined,
      message.email ? this.deliverEmail(message) : undefined,
    ]);
  }

  private async deliverWebhook(message: AlertMessage): Promise<void> {
    const { log } = this.options;
    for (let attempt = 0; ; attempt++) {
      let outcome: string;
      try {
        const status = await postWebhook(message, this.options);
        if (status >= 200 && status < 300) {
          log.info('balance_alert_delivered', { account_id: message.event.account_id, event_id: message.id, status, attempt: attempt + 1 });
          return;
        }
        outcome = `status ${status}`;
        if (!retryable(status)) attempt = this.delaysMs.length;
      } catch (err) {
        outcome = err instanceof Error ? err.message.slice(0, 200) : String(err);
      }
      if (attempt >= this.delaysMs.length) {
        log.error('balance_alert_undelivered', { account_id: message.event.account_id, event_id: message.id, channel: 'webhook', outcome, attempts: attempt + 1 });
        this.options.onUndelivered?.('webhook');
        return;
      }
      log.info('balance_alert_retry', { account_id: message.event.account_id, event_id: message.id, outcome, attempt: attempt + 1 });
      await new Promise((resolve) => setTimeout(resolve, this.delaysMs[attempt]));
    }
  }

  private async deliverEmail(message: AlertMessage): Promise<void> {
    if (!this.options.sendEmail) {
      this.options.log.info('balance_alert_email_skipped', { account_id: message.event.account_id, event_id: message.id, reason: 'no e-mail sender in local mode' });
      return;
    }
    for (let attempt = 0; ; attempt++) {
      try {
        await this.options.sendEmail(message);
        return;
      } catch (err) {
        if (attempt >= this.delaysMs.length) {
          this.options.log.error('balance_alert_undelivered', { account_id: message.event.account_id, event_id: message.id, channel: 'email', ...describeError(err) });
          this.options.onUndelivered?.('email');
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, this.delaysMs[attempt]));
      }
    }
  }
}

/** What goes on the AWS alert queue: the event only; the consumer reads the webhook and secret from the account as they are then. */
export interface QueuedAlert {
  id: string;
  event: BalanceLowEvent;
}

/**
 * AWS's outbox: the fired alert goes to an SQS queue (no secret in it), which the sweeper function
 * consumes (`deliverQueuedAlert`); a failed delivery goes back to the queue and is tried again
 * after its visibility timeout, then to a dead-letter queue with an alarm.
 */
export function sqsAlertOutbox(queueUrl: string): AlertOutbox {
  let client: Promise<(body: string) => Promise<void>> | undefined;
  return {
    async send(message) {
      client ??= import('@aws-sdk/client-sqs').then(({ SQSClient, SendMessageCommand }) => {
        const sqs = new SQSClient({});
        return async (body: string) => {
          await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
        };
      });
      const queued: QueuedAlert = { id: message.id, event: message.event };
      await (await client)(JSON.stringify(queued));
    },
  };
}

/**
 * One delivery attempt of a queued alert to the account's webhook as it is now set (public
 * addresses only); resolves when delivered or not deliverable (no webhook any more, a 4xx that
 * will not change), rejects when it is worth trying again.
 */
export async function deliverQueuedAlert(
  queued: QueuedAlert,
  deps: { accounts: Pick<AccountsStore, 'get'>; log: Logger; sendEmail?(message: AlertMessage): Promise<void>; post?: typeof postWebhook },
  options: WebhookPostOptions,
): Promise<void> {
  const account = await deps.accounts.get(queued.event.account_id);
  const alert = account?.alert;
  if (!alert) {
    deps.log.info('balance_alert_dropped', { account_id: queued.event.account_id, event_id: queued.id, reason: 'no alert set any more' });
    return;
  }
  const message: AlertMessage = { ...queued, webhookUrl: alert.webhookUrl, secret: alert.secret, email: alert.email };
  if (message.email && deps.sendEmail) await deps.sendEmail(message);
  if (!message.webhookUrl) return;
  const status = await (deps.post ?? postWebhook)(message, options);
  if (status >= 200 && status < 300) {
    deps.log.info('balance_alert_delivered', { account_id: queued.event.account_id, event_id: queued.id, status });
    return;
  }
  if (!retryable(status)) {
    deps.log.error('balance_alert_undelivered', { account_id: queued.event.account_id, event_id: queued.id, channel: 'webhook', outcome: `status ${status}` });
    return;
  }
  throw new Error(`webhook answered ${status}`);
}

/** What the SNS client needs outside Lambda (tests: a loopback stand-in with a static region and credentials). */
export interface SnsClientConfig {
  endpoint?: string;
  region?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/** The plain-text e-mail of a low-balance alert (SNS e-mail subscriptions get the message as it is). */
export function alertEmailText(message: AlertMessage): string {
  const e = message.event;
  const usd = (micro: number) => `$${(micro / 1_000_000).toFixed(2)}`;
  return [
    `The balance of itapi account ${e.account_id} is ${usd(e.balance_micro_usd)}, below your low-balance threshold of ${usd(e.threshold_micro_usd)}.`,
    '',
    `Found at ${e.at}. Top up in the console to keep your keys working; the alert re-arms once the balance is back at the threshold or above.`,
    '',
    JSON.stringify(e),
  ].join('\n');
}

/**
 * E-mail in AWS through one SNS topic: the address is subscribed (protocol `email`, filter
 * policy on the message attribute `account_id`) and the alert is published with that attribute,
 * so only the account's own addresses receive it. Subscribe is idempotent for an address already
 * subscribed with the same filter; SNS mails the address a confirmation first, and an
 * unconfirmed address receives nothing (docs/CONSOLE.md). An address subscribed for another
 * account (another filter) is refused by SNS: logged, and the alert is published all the same.
 */
export function snsEmailSender(topicArn: string, deps: { log: Logger; client?: SnsClientConfig }): (message: AlertMessage) => Promise<void> {
  let sns: Promise<{ subscribe(email: string, accountId: string): Promise<void>; publish(message: AlertMessage): Promise<void> }> | undefined;
  const load = () =>
    (sns ??= import('@aws-sdk/client-sns').then(({ SNSClient, SubscribeCommand, PublishCommand }) => {
      const client = new SNSClient({ ...deps.client });
      return {
        async subscribe(email: string, accountId: string) {
          await client.send(
            new SubscribeCommand({
              TopicArn: topicArn,
              Protocol: 'email',
              Endpoint: email,
              Attributes: { FilterPolicy: JSON.stringify({ account_id: [accountId] }), FilterPolicyScope: 'MessageAttributes' },
            }),
          );
        },
        async publish(message: AlertMessage) {
          await client.send(
            new PublishCommand({
              TopicArn: topicArn,
              Subject: `itapi: low balance on ${message.event.account_id}`.slice(0, 100),
              Message: alertEmailText(message),
              MessageAttributes: {
                account_id: { DataType: 'String', StringValue: message.event.account_id },
                event_type: { DataType: 'String', StringValue: message.event.type },
                event_id: { DataType: 'String', StringValue: message.id },
              },
            }),
          );
        },
      };
    }));
  return async (message) => {
    const client = await load();
    try {
      await client.subscribe(message.email!, message.event.account_id);
    } catch (err) {
      // Not retried: the alert still goes to the addresses already confirmed for the account.
      deps.log.error('balance_alert_email_subscribe_failed', { account_id: message.event.account_id, event_id: message.id, ...describeError(err) });
    }
    await client.publish(message);
    deps.log.info('balance_alert_email_published', { account_id: message.event.account_id, event_id: message.id });
  };
}
