import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { type Dynamo } from './dynamo';

/**
 * How an admitted request ended, as the ledger records it:
 * `completed` answered in full; `failed` no billable answer (the hold went back whole);
 * `interrupted` the upstream failed or the deadline came mid-answer (the prompt and the output
 * delivered are charged); `aborted` the client went away after the upstream answered (the same);
 * `abandoned` never settled by its request, settled by the sweeper (the prompt's estimate charged);
 * `late_settlement` the request's own settlement, arriving after the sweeper had settled it as
 * abandoned: the difference (charge or refund) as an item of its own (id `<request id>#late`).
 */
export type LedgerStatus = 'completed' | 'failed' | 'interrupted' | 'aborted' | 'abandoned' | 'late_settlement';
export const LEDGER_STATUSES: readonly LedgerStatus[] = ['completed', 'failed', 'interrupted', 'aborted', 'abandoned', 'late_settlement'];

/**
 * One ledger item per admitted request, per top-up, per refund or dispute that took credits back
 * (or dispute won that gave them back), and per top-up that paid what the account owed.
 */
export interface LedgerEntry {
  accountId: string;
  kind: 'request' | 'topup' | 'reversal' | 'owed_payment';
  atMs: number;
  /** Request id, or the top-up's reference. */
  id: string;
  /** Balance change in micro-USD: negative for a request's cost, positive for a top-up. */
  amountMicroUsd: number;
  keyId?: string;
  model?: string;
  route?: string;
  status?: LedgerStatus;
  /** The HTTP status the client got (200 for a stream that ended with an error event). */
  httpStatus?: number;
  errorCode?: string;
  promptTokens?: number;
  completionTokens?: number;
  /** Cache reads. */
  cachedTokens?: number;
  /** 5-minute cache writes (inside promptTokens). */
  cacheWriteTokens?: number;
  /** 1-hour cache writes (inside promptTokens). */
  cacheWrite1hTokens?: number;
  /** Reasoning tokens (inside completionTokens, charged once). */
  reasoningTokens?: number;
  /** Server-tool calls billed (web searches, fetches). */
  serverToolCalls?: number;
  /** The service tier billed: the one the upstream answered with, else the one requested. */
  serviceTier?: string;
  estimatedTokens?: number;
  holdMicroUsd?: number;
  /** What the usage cost beyond the hold, which the balance could not be charged. */
  unchargedMicroUsd?: number;
  latencyMs?: number;
  stream?: boolean;
  clientAborted?: boolean;
  /** True when token counts came from the tokenizer because the provider reported none. */
  usageEstimated?: boolean;
  /** A card top-up's receipt (the charge's `receipt_url`). */
  receiptUrl?: string;
  /**
   * The change in what the account owes: a reversal's part it could not take from the balance
   * (positive); a won dispute's or an owed payment's part that paid owed (negative).
   */
  owedMicroUsd?: number;
  /** A reversal: `refund`, `dispute`, or `dispute_won` (a dispute closed in the holder's favour, giving back). */
  reason?: 'refund' | 'dispute' | 'dispute_won';
  /** A reversal: the top-up (Checkout session) it took back from; an owed payment: the top-up that paid it. */
  paymentReference?: string;
  /** On a `late_settlement` item: the request whose abandoned settlement it corrects. */
  settles?: string;
}

/** Ledger items live this long; older ones expire by TTL. @default 400 days */
export const LEDGER_TTL_MS = 400 * 24 * 3600 * 1000;

type Item = Record<string, AttributeValue>;

/** Sort key: requests by time (13-digit ms), top-ups by reference so the same reference lands once. */
export function ledgerSortKey(entry: Pick<LedgerEntry, 'kind' | 'atMs' | 'id'>): string {
  if (entry.kind === 'topup') return `topup#${entry.id}`;
  if (entry.kind === 'reversal') return `reversal#${entry.id}`;
  if (entry.kind === 'owed_payment') return `owed#${entry.id}`;
  return `${String(entry.atMs).padStart(13, '0')}#${entry.id}`;
}

export function ledgerToItem(e: LedgerEntry): Item {
  const item: Item = {
    account_id: { S: e.accountId },
    sk: { S: ledgerSortKey(e) },
    kind: { S: e.kind },
    id: { S: e.id },
    at_ms: { N: String(e.atMs) },
    amount_micro_usd: { N: String(e.amountMicroUsd) },
    expires_at: { N: String(Math.floor((e.atMs + LEDGER_TTL_MS) / 1000)) },
  };
  const strings = {
    key_id: e.keyId,
    model: e.model,
    route: e.route,
    error_code: e.errorCode,
    status: e.status,
    receipt_url: e.receiptUrl,
    reason: e.reason,
    payment_reference: e.paymentReference,
    service_tier: e.serviceTier,
  } as const;
  for (const [name, value] of Object.entries(strings)) if (value) item[name] = { S: value };
  const numbers = {
    http_status: e.httpStatus,
    prompt_tokens: e.promptTokens,
    completion_tokens: e.completionTokens,
    cached_tokens: e.cachedTokens,
    cache_write_tokens: e.cacheWriteTokens,
    cache_write_1h_tokens: e.cacheWrite1hTokens,
    reasoning_tokens: e.reasoningTokens,
    server_tool_calls: e.serverToolCalls,
    estimated_tokens: e.estimatedTokens,
    hold_micro_usd: e.holdMicroUsd,
    uncharged_micro_usd: e.unchargedMicroUsd,
    latency_ms: e.latencyMs,
    owed_micro_usd: e.owedMicroUsd,
  } as const;
  for (const [name, value] of Object.entries(numbers)) if (value !== undefined) item[name] = { N: String(value) };
  if (e.stream !== undefined) item.stream = { BOOL: e.stream };
  if (e.clientAborted) item.client_aborted = { BOOL: true };
  if (e.usageEstimated) item.usage_estimated = { BOOL: true };
  if (e.settles) item.settles = { S: e.settles };
  return item;
}

export function ledgerFromItem(item: Item): LedgerEntry {
  const num = (name: string) => (item[name]?.N !== undefined ? Number(item[name].N) : undefined);
  const str = (name: string) => item[name]?.S;
  return {
    accountId: item.account_id.S!,
    kind: (str('kind') as LedgerEntry['kind']) ?? 'request',
    atMs: num('at_ms') ?? 0,
    id: str('id') ?? '',
    amountMicroUsd: num('amount_micro_usd') ?? 0,
    keyId: str('key_id'),
    model: str('model'),
    route: str('route'),
    status: (str('status') as LedgerStatus | undefined) ?? legacyStatus(num('status')),
    httpStatus: num('http_status') ?? num('status'),
    errorCode: str('error_code'),
    promptTokens: num('prompt_tokens'),
    completionTokens: num('completion_tokens'),
    cachedTokens: num('cached_tokens'),
    cacheWriteTokens: num('cache_write_tokens'),
    cacheWrite1hTokens: num('cache_write_1h_tokens'),
    reasoningTokens: num('reasoning_tokens'),
    serverToolCalls: num('server_tool_calls'),
    serviceTier: str('service_tier'),
    estimatedTokens: num('estimated_tokens'),
    holdMicroUsd: num('hold_micro_usd'),
    unchargedMicroUsd: num('uncharged_micro_usd'),
    latencyMs: num('latency_ms'),
    stream: item.stream?.BOOL,
    clientAborted: item.client_aborted?.BOOL,
    usageEstimated: item.usage_estimated?.BOOL,
    receiptUrl: str('receipt_url'),
    owedMicroUsd: num('owed_micro_usd'),
    reason: str('reason') as LedgerEntry['reason'],
    paymentReference: str('payment_reference'),
    settles: str('settles'),
  };
}

/** Items written before the ledger kept a status word carried only the HTTP status. */
function legacyStatus(httpStatus: number | undefined): LedgerStatus | undefined {
  if (httpStatus === undefined) return undefined;
  return httpStatus < 400 ? 'completed' : 'failed';
}

/** The usage table, read side; writes happen in transactions with the account (see accounts.ts). */
export class UsageStore {
  constructor(
    private readonly client: Dynamo,
    readonly tableName: string,
  ) {}

  /** Request items between two times (inclusive), oldest first. */
  async requests(accountId: string, fromMs: number, toMs: number): Promise<LedgerEntry[]> {
    return this.query(accountId, 'sk BETWEEN :from AND :to', {
      ':from': { S: String(Math.max(0, fromMs)).padStart(13, '0') },
      ':to': { S: `${String(toMs).padStart(13, '0')}#~` },
    });
  }

  async topUps(accountId: string): Promise<LedgerEntry[]> {
    return this.query(accountId, 'begins_with(sk, :p)', { ':p': { S: 'topup#' } });
  }

  /** Refunds and disputes that took credits back. */
  async reversals(accountId: string): Promise<LedgerEntry[]> {
    return this.query(accountId, 'begins_with(sk, :p)', { ':p': { S: 'reversal#' } });
  }

  /** Top-ups' payments of what the account owed. */
  async owedPayments(accountId: string): Promise<LedgerEntry[]> {
    return this.query(accountId, 'begins_with(sk, :p)', { ':p': { S: 'owed#' } });
  }

  /** Every ledger item of an account. */
  async all(accountId: string): Promise<LedgerEntry[]> {
    return this.query(accountId, undefined, {});
  }

  /**
   * One page of request items between two times (inclusive), newest first unless `oldestFirst`.
   * `after` is the `sk` of the last item of the previous page (the page's `lastSk`); a page ends
   * early when DynamoDB's 1 MB read limit cuts it, and `lastSk` is undefined after the last page.
   */
  async requestsPage(
    accountId: string,
    fromMs: number,
    toMs: number,
    options: { limit: number; after?: string; oldestFirst?: boolean; keyId?: string; model?: string },
  ): Promise<{ items: LedgerEntry[]; lastSk?: string }> {
    const filters: string[] = [];
    const values: Item = {
      ':a': { S: accountId },
      ':from': { S: String(Math.max(0, fromMs)).padStart(13, '0') },
      ':to': { S: `${String(toMs).padStart(13, '0')}#~` },
    };
    if (options.keyId !== undefined) {
      filters.push('key_id = :key');
      values[':key'] = { S: options.keyId };
    }
    if (options.model !== undefined) {
      filters.push('model = :model');
      values[':model'] = { S: options.model };
    }
    // A filter applies after the read: keep reading until the page is full or the range ends.
    const items: LedgerEntry[] = [];
    let after = options.after;
    for (;;) {
      const page = await this.client.call('Query', {
        TableName: this.tableName,
        KeyConditionExpression: 'account_id = :a AND sk BETWEEN :from AND :to',
        FilterExpression: filters.length ? filters.join(' AND ') : undefined,
        ExpressionAttributeValues: values,
        ScanIndexForward: options.oldestFirst === true,
        Limit: options.limit,
        ExclusiveStartKey: after ? { account_id: { S: accountId }, sk: { S: after } } : undefined,
      });
      items.push(...(page.Items ?? []).map(ledgerFromItem));
      after = page.LastEvaluatedKey?.sk?.S;
      if (!after || !filters.length) break;
      if (items.length >= options.limit) {
        items.length = options.limit;
        return { items, lastSk: ledgerSortKey(items[items.length - 1]) };
      }
    }
    return { items, lastSk: after };
  }

  private async query(accountId: string, skCondition: string | undefined, values: Item): Promise<LedgerEntry[]> {
    const out: LedgerEntry[] = [];
    let start: Item | undefined;
    do {
      const page = await this.client.call('Query', {
          TableName: this.tableName,
          KeyConditionExpression: `account_id = :a${skCondition ? ` AND ${skCondition}` : ''}`,
          ExpressionAttributeValues: { ':a': { S: accountId }, ...values },
          ExclusiveStartKey: start,
        },
      );
      out.push(...(page.Items ?? []).map(ledgerFromItem));
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }
}
