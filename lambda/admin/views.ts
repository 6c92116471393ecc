import { countsAt, formatResetDuration, msUntilReset, remaining } from '../limits/sliding-window';
import type { Account } from '../store/accounts';
import type { KeyRecord } from '../store/keys';
import type { Tier } from '../store/tiers';
import type { LedgerEntry } from '../store/usage';
import { readKeyUsage, type KeyUsage, type RollupsStore } from '../store/rollups';
import { microToUsd } from './money';

/** JSON shapes of the admin API (ARCHITECTURE §8). Nothing here ever holds a key or its hash. */

const seconds = (ms: number) => Math.floor(ms / 1000);

/** The limits in force for an account: its custom ones, else its tier's; 0 means no limit. */
export function effectiveLimits(account: Pick<Account, 'rpm' | 'tpm'>, tier: Tier | undefined): { rpm: number; tpm: number } {
  return { rpm: account.rpm ?? tier?.rpm ?? 0, tpm: account.tpm ?? tier?.tpm ?? 0 };
}

/** What the account has used of the sliding minute at `nowMs`; `remaining_*` is null without a limit. */
export function minuteUsage(account: Pick<Account, 'counts'>, limits: { rpm: number; tpm: number }, nowMs: number) {
  const view = countsAt(account.counts, nowMs);
  return {
    requests: view.requests,
    tokens: view.tokens,
    previous_minute_requests: view.prevRequests,
    previous_minute_tokens: view.prevTokens,
    remaining_requests: limits.rpm ? remaining(limits.rpm, view.prevRequests, view.requests, nowMs) : null,
    remaining_tokens: limits.tpm ? remaining(limits.tpm, view.prevTokens, view.tokens, nowMs) : null,
    reset_requests: formatResetDuration(msUntilReset(view.prevRequests, view.requests, nowMs)),
    reset_tokens: formatResetDuration(msUntilReset(view.prevTokens, view.tokens, nowMs)),
  };
}

export function accountView(account: Account, tier: Tier | undefined, nowMs: number) {
  const limits = effectiveLimits(account, tier);
  return {
    object: 'account' as const,
    id: account.id,
    name: account.name,
    tier: account.tier,
    status: account.status,
    balance_micro_usd: account.balanceMicroUsd,
    balance_usd: microToUsd(account.balanceMicroUsd),
    /** Holds of requests in flight, already taken from the balance (refunded in part at settlement), and their count. */
    held_micro_usd: account.heldMicroUsd,
    in_flight: account.inFlight,
    /** What refunds and disputes took back beyond the balance, still owed by the holder. */
    owed_micro_usd: account.owedMicroUsd,
    /** The low-balance alert (without its signing secret), or null. */
    low_balance_alert: account.alert
      ? {
          threshold_micro_usd: account.alert.thresholdMicroUsd,
          threshold_usd: microToUsd(account.alert.thresholdMicroUsd),
          webhook_url: account.alert.webhookUrl ?? null,
          email: account.alert.email ?? null,
          armed: account.alert.armed,
        }
      : null,
    /** The account's own limits; null means the tier's. */
    rpm: account.rpm ?? null,
    tpm: account.tpm ?? null,
    /** The limits in force (custom, else the tier's); 0 means no limit. */
    limits,
    usage_this_minute: minuteUsage(account, limits, nowMs),
    created_at: seconds(account.createdAtMs),
  };
}

/** A key as the admin API and the console show it; `usage` from the roll-ups (zero and null without). */
/** A key with its spend this month (from the roll-ups), as the admin API and the console show one key. */
export async function keyViewWithUsage(rollups: Pick<RollupsStore, 'range'>, key: KeyRecord, nowMs: number) {
  const usage = await readKeyUsage(rollups, key.accountId, nowMs);
  return keyView(key, usage.get(key.keyId));
}

export function keyView(key: KeyRecord, usage?: KeyUsage) {
  return {
    object: 'api_key' as const,
    id: key.keyId,
    account_id: key.accountId,
    name: key.name,
    /** Display form only, e.g. `it_Ab3…xYz9`; never enough to use the key. */
    prefix: key.prefix,
    status: key.status,
    models: key.models ?? null,
    rpm: key.rpm ?? null,
    tpm: key.tpm ?? null,
    created_at: seconds(key.createdAtMs),
    expires_at: key.expiresAtMs !== undefined ? seconds(key.expiresAtMs) : null,
    revoked_at: key.revokedAtMs !== undefined ? seconds(key.revokedAtMs) : null,
    /** The key's own monthly spend cap (UTC calendar month); null: none, the balance is the limit. */
    monthly_spend_cap_usd: key.spendCapMicroUsd !== undefined ? microToUsd(key.spendCapMicroUsd) : null,
    monthly_spend_cap_micro_usd: key.spendCapMicroUsd ?? null,
    /** Start of the key's latest request in the current month or the 30 days before today; null: none. */
    last_used_at: usage?.lastUsedAtMs !== undefined ? seconds(usage.lastUsedAtMs) : null,
    /** What the key's settled requests cost: the last 30 days (today included) and this calendar month (UTC). */
    spend: {
      last_30_days_micro_usd: usage?.last30DaysMicroUsd ?? 0,
      this_month_micro_usd: usage?.thisMonthMicroUsd ?? 0,
      last_30_days_usd: microToUsd(usage?.last30DaysMicroUsd ?? 0),
      this_month_usd: microToUsd(usage?.thisMonthMicroUsd ?? 0),
    },
  };
}

export function tierView(tier: Tier) {
  return {
    object: 'tier' as const,
    id: tier.id,
    rpm: tier.rpm,
    tpm: tier.tpm,
    models: tier.models ?? null,
    description: tier.description ?? null,
  };
}

export function ledgerView(e: LedgerEntry) {
  const at = { at: new Date(e.atMs).toISOString(), at_ms: e.atMs };
  if (e.kind === 'topup') {
    return {
      kind: 'topup' as const,
      reference: e.id,
      ...at,
      amount_micro_usd: e.amountMicroUsd,
      amount_usd: microToUsd(e.amountMicroUsd),
      /** A card top-up's Stripe receipt, else null. */
      receipt_url: e.receiptUrl ?? null,
    };
  }
  if (e.kind === 'reversal') {
    return {
      kind: 'reversal' as const,
      reference: e.id,
      ...at,
      /** `refund`, `dispute`, or `dispute_won` (giving back what its dispute took). */
      reason: e.reason ?? null,
      /** The top-up (Checkout session) it reversed. */
      payment_reference: e.paymentReference ?? null,
      /** Taken from the balance (negative), or given back to it (`dispute_won`). */
      amount_micro_usd: e.amountMicroUsd,
      amount_usd: microToUsd(e.amountMicroUsd),
      /** The change in the account's `owed_micro_usd`: what the balance could not cover, or (negative) what a won dispute paid of it. */
      owed_micro_usd: e.owedMicroUsd ?? 0,
    };
  }
  if (e.kind === 'owed_payment') {
    return {
      kind: 'owed_payment' as const,
      /** The top-up that paid it. */
      reference: e.id,
      ...at,
      /** Taken from the top-up for what was owed (negative: the balance got the top-up less this). */
      amount_micro_usd: e.amountMicroUsd,
      amount_usd: microToUsd(e.amountMicroUsd),
      /** The change in `owed_micro_usd` (negative). */
      owed_micro_usd: e.owedMicroUsd ?? 0,
    };
  }
  return {
    kind: 'request' as const,
    id: e.id,
    ...at,
    key_id: e.keyId ?? null,
    model: e.model ?? null,
    route: e.route ?? null,
    /** completed, failed, interrupted, aborted or abandoned (swept). */
    status: e.status ?? null,
    http_status: e.httpStatus ?? null,
    error_code: e.errorCode ?? null,
    prompt_tokens: e.promptTokens ?? 0,
    completion_tokens: e.completionTokens ?? 0,
    cached_tokens: e.cachedTokens ?? 0,
    /** 5-minute and 1-hour cache writes, inside prompt_tokens. */
    cache_write_tokens: e.cacheWriteTokens ?? 0,
    cache_write_1h_tokens: e.cacheWrite1hTokens ?? 0,
    /** Inside completion_tokens. */
    reasoning_tokens: e.reasoningTokens ?? 0,
    server_tool_calls: e.serverToolCalls ?? 0,
    service_tier: e.serviceTier ?? null,
    cost_micro_usd: -e.amountMicroUsd,
    hold_micro_usd: e.holdMicroUsd ?? null,
    uncharged_micro_usd: e.unchargedMicroUsd ?? 0,
    latency_ms: e.latencyMs ?? null,
    stream: e.stream ?? false,
    usage_estimated: e.usageEstimated ?? false,
    client_aborted: e.status === 'aborted' || (e.clientAborted ?? false),
  };
}

/** Sums over request and top-up items: the ledger's view of the balance change. */
export function usageTotals(requests: LedgerEntry[], topUps: LedgerEntry[], reversals: LedgerEntry[] = [], owedPayments: LedgerEntry[] = []) {
  let prompt = 0;
  let completion = 0;
  let cached = 0;
  let cost = 0;
  let uncharged = 0;
  let errors = 0;
  for (const r of requests) {
    prompt += r.promptTokens ?? 0;
    completion += r.completionTokens ?? 0;
    cached += r.cachedTokens ?? 0;
    cost += -r.amountMicroUsd;
    uncharged += r.unchargedMicroUsd ?? 0;
    if (r.status === 'failed' || r.status === 'abandoned') errors++;
  }
  const topUpMicro = topUps.reduce((sum, t) => sum + t.amountMicroUsd, 0);
  return {
    requests: requests.length,
    failed_requests: errors,
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    cached_tokens: cached,
    cost_micro_usd: cost,
    cost_usd: microToUsd(cost),
    uncharged_micro_usd: uncharged,
    top_ups: topUps.length,
    top_up_micro_usd: topUpMicro,
    top_up_usd: microToUsd(topUpMicro),
    /** Refunds and disputes: what they took from the balance (negative) and what they left owed. */
    reversals: reversals.length,
    reversal_micro_usd: reversals.reduce((sum, r) => sum + r.amountMicroUsd, 0),
    reversal_owed_micro_usd: reversals.reduce((sum, r) => sum + (r.owedMicroUsd ?? 0), 0),
    /** What top-ups paid of what was owed (positive): the balance got the top-ups less this. */
    owed_paid_micro_usd: owedPayments.reduce((sum, p) => sum - p.amountMicroUsd, 0),
  };
}
