import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { createHash } from 'node:crypto';
import { type Dynamo, isDynamoError } from './dynamo';
import { LEDGER_TTL_MS, ledgerFromItem, ledgerSortKey, type LedgerEntry } from './usage';

/**
 * Usage roll-ups: one item per account, UTC day, key and model, kept up as requests settle, so
 * that usage views and a key's spend read a handful of items whatever the traffic.
 *
 * Table `rollups`: `account_id` + `sk` (`YYYY-MM-DD#<key id>#<model>`), TTL `expires_at`.
 * Each ledger item is rolled up exactly once: the roll-up's additions and a `rolled_up` mark on
 * the ledger item (on condition that it is absent) are one transaction, so a stream record
 * delivered twice, or the in-process path racing a replay, adds nothing the second time.
 */

export interface Rollup {
  accountId: string;
  /** `YYYY-MM-DD`, UTC. */
  day: string;
  keyId: string;
  model: string;
  requests: number;
  /** Requests that ended `failed` or `abandoned`. */
  failedRequests: number;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  costMicroUsd: number;
  unchargedMicroUsd: number;
  /** Start time of the latest request rolled up here (requests of one account arrive in settlement order). */
  lastAtMs: number;
}

type Item = Record<string, AttributeValue>;
const num = (v: number): AttributeValue => ({ N: String(v) });

export const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The attribute on a ledger item that says it is in the roll-ups. */
export const ROLLED_UP_ATTRIBUTE = 'rolled_up';

export function rollupSortKey(day: string, keyId: string, model: string): string {
  return `${day}#${keyId}#${model}`;
}

function rollupFromItem(item: Item): Rollup {
  const n = (name: string) => Number(item[name]?.N ?? 0);
  return {
    accountId: item.account_id.S!,
    day: item.day?.S ?? item.sk.S!.slice(0, 10),
    keyId: item.key_id?.S ?? '',
    model: item.model?.S ?? '',
    requests: n('requests'),
    failedRequests: n('failed_requests'),
    promptTokens: n('prompt_tokens'),
    completionTokens: n('completion_tokens'),
    cachedTokens: n('cached_tokens'),
    costMicroUsd: n('cost_micro_usd'),
    unchargedMicroUsd: n('uncharged_micro_usd'),
    lastAtMs: n('last_at_ms'),
  };
}

type Sums = { n: number; failed: number; p: number; c: number; ca: number; cost: number; u: number };

/**
 * The roll-up item's additions for one request's ledger item, as an `Update` of a transaction:
 * `RollupsStore.apply` sends it with the ledger item's mark; in local mode a settlement carries it
 * in its own transaction, beside the ledger item put already marked (`store/accounts.ts` `settle`).
 * It has no condition: once-ness comes from the ledger item's (its mark, or its put only if absent).
 */
export function rollupAddition(tableName: string, entry: LedgerEntry) {
  const failed = entry.status === 'failed' || entry.status === 'abandoned' ? 1 : 0;
  const sum = { n: 1, failed, p: entry.promptTokens ?? 0, c: entry.completionTokens ?? 0, ca: entry.cachedTokens ?? 0, cost: -entry.amountMicroUsd, u: entry.unchargedMicroUsd ?? 0 };
  return additionUpdate(tableName, entry.accountId, isoDay(entry.atMs), entry.keyId ?? '', entry.model ?? 'unknown', entry.atMs, sum);
}

/**
 * The roll-up additions of several requests' ledger items: one `Update` per roll-up item (account,
 * day, key, model) with the sums of its entries, since a transaction may touch an item only once.
 */
export function rollupAdditions(tableName: string, entries: LedgerEntry[]) {
  const groups = new Map<string, { accountId: string; day: string; keyId: string; model: string; atMs: number; sum: Sums }>();
  for (const e of entries) {
    const day = isoDay(e.atMs);
    const keyId = e.keyId ?? '';
    const model = e.model ?? 'unknown';
    const id = `${e.accountId}\n${rollupSortKey(day, keyId, model)}`;
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { accountId: e.accountId, day, keyId, model, atMs: e.atMs, sum: { n: 0, failed: 0, p: 0, c: 0, ca: 0, cost: 0, u: 0 } }));
    g.atMs = Math.max(g.atMs, e.atMs);
    g.sum.n++;
    g.sum.failed += e.status === 'failed' || e.status === 'abandoned' ? 1 : 0;
    g.sum.p += e.promptTokens ?? 0;
    g.sum.c += e.completionTokens ?? 0;
    g.sum.ca += e.cachedTokens ?? 0;
    g.sum.cost += -e.amountMicroUsd;
    g.sum.u += e.unchargedMicroUsd ?? 0;
  }
  return [...groups.values()].map((g) => additionUpdate(tableName, g.accountId, g.day, g.keyId, g.model, g.atMs, g.sum));
}

/** The roll-up item's additions (`n` requests of which `failed` failed, their tokens and cost). */
function additionUpdate(tableName: string, accountId: string, day: string, keyId: string, model: string, atMs: number, sum: Sums) {
  return {
    TableName: tableName,
    Key: { account_id: { S: accountId }, sk: { S: rollupSortKey(day, keyId, model) } },
    UpdateExpression:
      'SET #day = :day, key_id = :key, #model = :model, last_at_ms = :at, expires_at = :exp ' +
      'ADD requests :one, failed_requests :failed, prompt_tokens :p, completion_tokens :c, cached_tokens :ca, cost_micro_usd :cost, uncharged_micro_usd :u',
    ExpressionAttributeNames: { '#day': 'day', '#model': 'model' },
    ExpressionAttributeValues: {
      ':day': { S: day },
      ':key': { S: keyId },
      ':model': { S: model },
      ':at': num(atMs),
      ':exp': num(Math.floor((Date.parse(`${day}T00:00:00Z`) + LEDGER_TTL_MS) / 1000)),
      ':one': num(sum.n),
      ':failed': num(sum.failed),
      ':p': num(sum.p),
      ':c': num(sum.c),
      ':ca': num(sum.ca),
      ':cost': num(sum.cost),
      ':u': num(sum.u),
    },
  };
}

export class RollupsStore {
  constructor(
    private readonly client: Dynamo,
    readonly tableName: string,
    private readonly usageTable: string,
  ) {}

  /**
   * Adds one request's ledger item to its day's roll-up, once. `applied` when this call added
   * it; `duplicate` when it was in already (or its ledger item is gone); top-ups are not rolled up.
   */
  async apply(entry: LedgerEntry): Promise<'applied' | 'duplicate' | 'skipped'> {
    if (entry.kind !== 'request') return 'skipped';
    try {
      await this.client.call('TransactWriteItems', {
        // Derived from the ledger item: a resend after a lost answer is applied once.
        ClientRequestToken: `r${entry.id}`.slice(0, 36),
        TransactItems: [{ Update: this.mark(entry) }, { Update: rollupAddition(this.tableName, entry) }],
      });
      return 'applied';
    } catch (err) {
      if (isDynamoError(err, 'TransactionCanceledException') && err.CancellationReasons?.[0]?.Code === 'ConditionalCheckFailed') return 'duplicate';
      throw err;
    }
  }

  /**
   * Adds several requests' ledger items to their roll-ups in one transaction (`catchUp`): each
   * ledger item's mark on condition that it is absent, and one `ADD` per roll-up item of the sums
   * of its entries. All or nothing, so each item is still added
   * once; when any is in already (or gone) the transaction is cancelled and nothing lands, and
   * the entries are applied one by one, each with its own answer. At most `MAX_BATCH` entries.
   */
  async applyMany(entries: LedgerEntry[]): Promise<Array<PromiseSettledResult<'applied' | 'duplicate' | 'skipped'>>> {
    const requests = entries.filter((e) => e.kind === 'request');
    // In their order, as settlements roll up one at a time (the roll-up keeps the last one's time).
    const oneByOne = async () => {
      const out: Array<PromiseSettledResult<'applied' | 'duplicate' | 'skipped'>> = [];
      for (const e of entries) {
        try {
          out.push({ status: 'fulfilled', value: await this.apply(e) });
        } catch (reason) {
          out.push({ status: 'rejected', reason });
        }
      }
      return out;
    };
    if (requests.length <= 1) return oneByOne();
    if (requests.length > MAX_BATCH) throw new RangeError(`at most ${MAX_BATCH} roll-ups in one transaction`);
    const ids = requests.map((e) => e.id).join('\n');
    try {
      await this.client.call('TransactWriteItems', {
        // Derived from the ledger items: a resend after a lost answer is applied once.
        ClientRequestToken: `rb${createHash('sha256').update(ids).digest('base64url').slice(0, 34)}`,
        TransactItems: [
          ...requests.map((e) => ({ Update: this.mark(e) })),
          ...rollupAdditions(this.tableName, requests).map((u) => ({ Update: u })),
        ],
      });
    } catch {
      // One of them in already (a replay raced it), or no answer (it may have landed: the marks
      // then make each of these a duplicate): one by one, each with its own answer or error.
      return oneByOne();
    }
    return entries.map((e) => ({ status: 'fulfilled', value: e.kind === 'request' ? 'applied' : 'skipped' }));
  }

  /** The ledger item's roll-up mark, on condition that it exists and is not marked yet. */
  private mark(entry: LedgerEntry) {
    return {
      TableName: this.usageTable,
      Key: { account_id: { S: entry.accountId }, sk: { S: ledgerSortKey(entry) } },
      UpdateExpression: `SET ${ROLLED_UP_ATTRIBUTE} = :t`,
      ConditionExpression: `attribute_exists(sk) AND attribute_not_exists(${ROLLED_UP_ATTRIBUTE})`,
      ExpressionAttributeValues: { ':t': { BOOL: true } },
    };
  }

  /**
   * Rolls up every request item of the usage table not marked yet (local mode, at start: ledger
   * items from before settlements carried their roll-up, or written by a version that did not).
   * Scans the table; returns how many it added. A settlement's own ledger item is put marked,
   * with its roll-up, in local mode (`SettleWrite.rollupsTable`): none of those is left for this.
   */
  async catchUp(): Promise<number> {
    let added = 0;
    let start: Item | undefined;
    do {
      const page = await this.client.call('Scan', {
        TableName: this.usageTable,
        FilterExpression: `attribute_not_exists(${ROLLED_UP_ATTRIBUTE}) AND NOT begins_with(sk, :topup)`,
        ExpressionAttributeValues: { ':topup': { S: 'topup#' } },
        ExclusiveStartKey: start,
      });
      const entries = (page.Items ?? []).map(ledgerFromItem);
      // A backlog (data from before roll-ups, a process killed before folding existed): up to MAX_BATCH a write.
      for (let i = 0; i < entries.length; i += MAX_BATCH) {
        for (const r of await this.applyMany(entries.slice(i, i + MAX_BATCH))) if (r.status === 'fulfilled' && r.value === 'applied') added++;
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return added;
  }

  /** The account's roll-ups from day `from` to day `to` (`YYYY-MM-DD`, both included). */
  async range(accountId: string, from: string, to: string): Promise<Rollup[]> {
    const out: Rollup[] = [];
    let start: Item | undefined;
    do {
      const page = await this.client.call('Query', {
        TableName: this.tableName,
        KeyConditionExpression: 'account_id = :a AND sk BETWEEN :from AND :to',
        ExpressionAttributeValues: { ':a': { S: accountId }, ':from': { S: from }, ':to': { S: `${to}#~` } },
        ExclusiveStartKey: start,
      });
      out.push(...(page.Items ?? []).map(rollupFromItem));
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }
}

/** A key's use as the console and the admin API show it. */
export interface KeyUsage {
  last30DaysMicroUsd: number;
  thisMonthMicroUsd: number;
  /** The latest request in the window read (the current month and the 30 days before today). */
  lastUsedAtMs?: number;
}

const DAY_MS = 24 * 3600 * 1000;

/** The days `keyUsage` needs: from the earlier of the month's first day and 29 days before today, to today. */
export function keyUsageRange(nowMs: number): { from: string; to: string } {
  const today = isoDay(nowMs);
  const thirty = isoDay(nowMs - 29 * DAY_MS);
  const monthStart = `${today.slice(0, 8)}01`;
  return { from: thirty < monthStart ? thirty : monthStart, to: today };
}

/** Spend per key over the last 30 days (today included) and this calendar month (UTC), and when each was last used. */
export function keyUsage(rollups: Rollup[], nowMs: number): Map<string, KeyUsage> {
  const today = isoDay(nowMs);
  const thirty = isoDay(nowMs - 29 * DAY_MS);
  const month = today.slice(0, 7);
  const byKey = new Map<string, KeyUsage>();
  for (const r of rollups) {
    const u = byKey.get(r.keyId) ?? { last30DaysMicroUsd: 0, thisMonthMicroUsd: 0 };
    if (r.day >= thirty && r.day <= today) u.last30DaysMicroUsd += r.costMicroUsd;
    if (r.day.startsWith(month)) u.thisMonthMicroUsd += r.costMicroUsd;
    if (r.requests > 0 && (u.lastUsedAtMs === undefined || r.lastAtMs > u.lastUsedAtMs)) u.lastUsedAtMs = r.lastAtMs;
    byKey.set(r.keyId, u);
  }
  return byKey;
}

/** Reads what `keyUsage` needs: one query of the account's roll-ups. */
export async function readKeyUsage(rollups: Pick<RollupsStore, 'range'>, accountId: string, nowMs: number): Promise<Map<string, KeyUsage>> {
  const { from, to } = keyUsageRange(nowMs);
  return keyUsage(await rollups.range(accountId, from, to), nowMs);
}

/** Entries in one `applyMany` transaction: one mark each and at most one roll-up each, within DynamoDB's 100 items. */
export const MAX_BATCH = 50;
