import { randomBytes } from 'node:crypto';
import type { AttributeValue, TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { type Dynamo, isDynamoError } from './dynamo';
import { minuteOf, WINDOW_MS, type WindowCounts } from '../limits/sliding-window';
import { ItemExistsError } from './errors';
import { type HoldRecord, holdFromItem, holdToItem } from './holds';
import { type KeySpend, keySpendFromItem } from './keys';
import { type LedgerEntry, ledgerFromItem, ledgerSortKey, ledgerToItem } from './usage';
import { ROLLED_UP_ATTRIBUTE, rollupAddition, rollupAdditions } from './rollups';

export interface Account {
  id: string;
  name: string;
  tier: string;
  balanceMicroUsd: number;
  /** Custom limits; absent means the tier's. */
  rpm?: number;
  tpm?: number;
  status: 'active' | 'disabled';
  createdAtMs: number;
  counts: WindowCounts;
  /** Sum of the holds outstanding (taken from the balance, not yet settled), and their count. */
  heldMicroUsd: number;
  inFlight: number;
  /** What refunds and disputes took back beyond the balance (the balance never goes below zero). */
  owedMicroUsd: number;
  /** The holder's low-balance alert, when set. */
  alert?: BalanceAlertSettings;
}

/** A low-balance alert: fired once when the balance falls below the threshold, re-armed by a top-up above it. */
export interface BalanceAlertSettings {
  thresholdMicroUsd: number;
  webhookUrl?: string;
  /** The webhook's signing secret (HMAC-SHA256 key); never logged. */
  secret?: string;
  email?: string;
  /** True until the alert fires; set again when the balance is topped up above the threshold. */
  armed: boolean;
}

type Item = Record<string, AttributeValue>;

export function accountFromItem(item: Item): Account {
  const n = (name: string) => Number(item[name]?.N ?? 0);
  const a: Account = {
    id: item.account_id.S!,
    name: item.name?.S ?? '',
    tier: item.tier?.S ?? 'free',
    balanceMicroUsd: n('balance'),
    status: (item.st?.S as Account['status']) ?? 'active',
    createdAtMs: n('created_at_ms'),
    counts: countsFromItem(item),
    heldMicroUsd: n('held'),
    inFlight: n('inflight'),
    owedMicroUsd: n('owed'),
  };
  if (item.alert_below?.N !== undefined) {
    a.alert = {
      thresholdMicroUsd: Number(item.alert_below.N),
      webhookUrl: item.alert_url?.S,
      secret: item.alert_secret?.S,
      email: item.alert_email?.S,
      armed: item.alert_armed?.BOOL === true,
    };
  }
  if (item.rpm?.N !== undefined) a.rpm = Number(item.rpm.N);
  if (item.tpm?.N !== undefined) a.tpm = Number(item.tpm.N);
  return a;
}

/** One set of minute counters to advance, with the conditions computed from the item last seen. */
export interface CounterWrite {
  /** The window the writer believes the item holds, with that window's previous counts. */
  believed: WindowCounts;
  tokens: number;
  /** Highest current-minute request/token count at which this request still fits; undefined = no limit. */
  maxRequestsBefore?: number;
  maxTokensBefore?: number;
  /** For a rollover write: highest count the *ending* minute may have for this request to fit. */
  maxPrevRequests?: number;
  maxPrevTokens?: number;
}

/** The admission write's inputs: the account's counters and balance, the hold item, a capped key's counters. */
export interface AdmitWrite extends CounterWrite {
  accountId: string;
  nowMs: number;
  /** The tier and custom limits the conditions were computed from; a mismatch fails the write. */
  limits: { tier: string; rpm?: number; tpm?: number };
  hold: HoldRecord;
  /**
   * The transaction's ClientRequestToken (at most 36 characters): the same write sent again with
   * the same token, after an answer that never came, is applied once.
   */
  token: string;
  /** Only for keys with their own caps: their counters live on the key item. */
  key?: CounterWrite & { keysTable: string; keyHash: string };
  /** Only for keys with a monthly spend cap: the month's spend and holds live on the key item. */
  keySpend?: KeySpendWrite;
}

/**
 * The spend-cap part of an admission, on the key item: the hold added to the month's spend and
 * holds (`cap_used`), on condition that the cap is the one believed and that the month's total
 * before it is at most `maxUsedBefore` (cap − hold); a new month starts afresh at the hold.
 */
export interface KeySpendWrite {
  keysTable: string;
  keyHash: string;
  month: number;
  /** The month the writer believes the item is in (0: none yet). */
  believedMonth: number;
  capMicroUsd: number;
  holdMicroUsd: number;
  maxUsedBefore: number;
}

function spendUpdate(w: KeySpendWrite): { conditions: string[]; sets: string[]; values: Item } {
  const values: Item = { ':scap': num(w.capMicroUsd), ':smonth': num(w.month), ':shold': num(w.holdMicroUsd) };
  // A hold beyond the cap itself fits in no month: the same-month form, which then always fails.
  if (w.believedMonth === w.month || w.maxUsedBefore < 0) {
    values[':sroom'] = num(w.maxUsedBefore);
    return { conditions: ['cap_musd = :scap', 'cap_month = :smonth', 'cap_used <= :sroom'], sets: ['cap_used = cap_used + :shold'], values };
  }
  return {
    conditions: ['cap_musd = :scap', '(attribute_not_exists(cap_month) OR cap_month < :smonth)'],
    sets: ['cap_month = :smonth', 'cap_used = :shold'],
    values,
  };
}

export type AdmitResult =
  /** Counted and held; the counters as they now stand (the believed ones advanced by this request). */
  | { ok: true; accountCounts: WindowCounts; keyCounts?: WindowCounts }
  /** The hold item exists: an earlier send of this very admission landed. */
  | { ok: false; reason: 'admitted'; hold: HoldRecord | undefined }
  /** Another transaction held one of the items (real DynamoDB only): nothing was applied, send again. */
  | { ok: false; reason: 'conflict' }
  /** A condition failed: the items as they are decide why (stale belief, rate limit, balance). */
  | { ok: false; reason: 'condition'; account: Account | undefined; keyCounts?: WindowCounts; keySpend?: KeySpend; accountFailed: boolean; keyFailed: boolean };

/** One finished request's settlement: the hold deleted, the cost charged, the ledger item written. */
export interface SettleWrite {
  hold: Pick<HoldRecord, 'requestId' | 'accountId' | 'holdMicroUsd' | 'window' | 'keyHash' | 'keyWindow' | 'spendMonth'>;
  /** What the request cost. Beyond the hold it is charged only as far as the balance goes. */
  costMicroUsd: number;
  /** Actual tokens less those counted at admission, for the minute they were counted in. */
  tokenCorrection: number;
  /** Where a capped key's counters live. */
  keysTable?: string;
  /** The ledger item; its amount is what was charged. */
  ledger: Omit<LedgerEntry, 'amountMicroUsd' | 'unchargedMicroUsd'>;
  /** The hold item is gone already (expired by its TTL): the ledger item alone makes this once. */
  holdGone?: boolean;
  /**
   * Local mode (`rollupsInline`): the roll-ups table. The usage roll-up's additions for the ledger
   * item ride in the settlement's own transaction, and the ledger item is put marked as rolled up
   * (so `RollupsStore.catchUp` and `apply` never add it again): the put only if absent makes both
   * once. Absent in AWS, where the usage table's stream rolls the item up.
   */
  rollupsTable?: string;
  /**
   * The release of an admission whose answer never came and whose client got an error: when no
   * hold is there (the write never landed, or has not yet), the ledger item is written alone, so
   * that a hold landing after all is an orphan the sweeper gives back whole.
   */
  release?: boolean;
}

export type SettleResult =
  | { settled: true; chargedMicroUsd: number; refundMicroUsd: number; unchargedMicroUsd: number }
  /**
   * The hold was settled before (a retry, or the sweeper and the request raced): nothing changed.
   * `orphan`: the request's ledger item exists while a hold is still there (an admission write that
   * landed after its request had given up and released it); `releaseOrphan` gives it back.
   */
  | { settled: false; orphan?: boolean; late?: LateSettleResult };

/** What a late settlement did: `applied` false when its `#late` item existed already (a redelivery). */
export interface LateSettleResult {
  applied: boolean;
  /** Charged by this late item (negative: refunded). */
  chargedMicroUsd: number;
  unchargedMicroUsd: number;
  /** What the sweep had charged. */
  abandonedMicroUsd: number;
}

const num = (v: number): AttributeValue => ({ N: String(v) });

export function countsFromItem(item: Item): WindowCounts {
  const n = (name: string) => Number(item[name]?.N ?? 0);
  return { window: n('win'), requests: n('req'), tokens: n('tok'), prevRequests: n('preq'), prevTokens: n('ptok') };
}

/**
 * The counter part of an admission write, in one of three forms by the believed window: same
 * minute (add), the minute before (roll over and add), older (start afresh). The previous
 * minute's token count moves after the turn (a settlement's correction: down for output a request
 * did not use, up for a prompt counted low); the write asks it to be at most as believed, so the
 * bounds computed from it are never looser than the item's (a higher count refuses the write).
 */
function counterUpdate(c: CounterWrite, nowMs: number, requests = 1): { conditions: string[]; sets: string[]; values: Item } {
  const minute = minuteOf(nowMs);
  // `requests` > 1 only for a group's summed write (admitGroup), always within the believed minute.
  const values: Item = { ':one': num(requests), ':tok': num(c.tokens), ':m': num(minute) };
  const conditions: string[] = [];
  const bound = (condition: string, name: string, value: number | undefined) => {
    if (value === undefined) return;
    conditions.push(condition);
    values[name] = num(value);
  };
  if (c.believed.window === minute) {
    conditions.push('win = :m', 'preq = :preq', 'ptok <= :ptok');
    values[':preq'] = num(c.believed.prevRequests);
    values[':ptok'] = num(c.believed.prevTokens);
    bound('req <= :maxReq', ':maxReq', c.maxRequestsBefore);
    bound('tok <= :maxTok', ':maxTok', c.maxTokensBefore);
    return { conditions, sets: ['req = req + :one', 'tok = tok + :tok'], values };
  }
  values[':prevMinute'] = num(minute - 1);
  if (c.believed.window === minute - 1) {
    conditions.push('win = :prevMinute');
    bound('req <= :maxPrevReq', ':maxPrevReq', c.maxPrevRequests);
    bound('tok <= :maxPrevTok', ':maxPrevTok', c.maxPrevTokens);
    return { conditions, sets: ['preq = req', 'ptok = tok', 'req = :one', 'tok = :tok', 'win = :m'], values };
  }
  conditions.push('(attribute_not_exists(win) OR win < :prevMinute)');
  values[':zero'] = num(0);
  return { conditions, sets: ['preq = :zero', 'ptok = :zero', 'req = :one', 'tok = :tok', 'win = :m'], values };
}

/** The believed counters advanced by one admitted request (a transaction returns no items). */
function advanced(c: CounterWrite, minute: number): WindowCounts {
  const b = c.believed;
  if (b.window === minute) return { ...b, requests: b.requests + 1, tokens: b.tokens + c.tokens };
  const prev = b.window === minute - 1 ? { prevRequests: b.requests, prevTokens: b.tokens } : { prevRequests: 0, prevTokens: 0 };
  return { window: minute, requests: 1, tokens: c.tokens, ...prev };
}

/**
 * Where a token correction for minute `admitted` goes, given the minute the item is in: that
 * minute's count while it is current, the previous-minute count once the item has rolled over,
 * and nowhere once the minute has left the sliding window (it no longer counts).
 */
type CorrectionTarget = 'current' | 'previous' | 'none';

function correctionTarget(admitted: number, itemWindow: number): CorrectionTarget {
  if (itemWindow <= admitted) return 'current';
  return itemWindow === admitted + 1 ? 'previous' : 'none';
}

/** The update and condition that put a correction where it belongs, on the condition that the item is in that state. */
function correctionUpdate(target: CorrectionTarget, admitted: number, delta: number): { set?: string; condition: string; values: Item } {
  if (target === 'current') return { set: 'tok = tok + :delta', condition: 'win = :cw', values: { ':delta': num(delta), ':cw': num(admitted) } };
  if (target === 'previous') return { set: 'ptok = ptok + :delta', condition: 'win = :cw', values: { ':delta': num(delta), ':cw': num(admitted + 1) } };
  return { condition: 'win > :cw', values: { ':cw': num(admitted + 1) } };
}

/** A ledger item as put; marked as rolled up when its roll-up rides in the same transaction (local mode). */
function ledgerItem(entry: LedgerEntry, rollupsTable: string | undefined): Item {
  const item = ledgerToItem(entry);
  if (rollupsTable) item[ROLLED_UP_ATTRIBUTE] = { BOOL: true };
  return item;
}

/** Settlements in one `settleGroup` transaction: a hold delete, a ledger put and at most one roll-up each, and the account, within DynamoDB's 100 items. */
export const MAX_SETTLE_GROUP = 25;

/**
 * Whether a settlement may share a transaction with others of its account (`settleGroup`): a
 * request's own, with its hold there, charged within its hold, and no key item to correct (a key
 * with limits or a spend cap of its own settles alone, as does everything else).
 */
export function groupable(s: SettleWrite): boolean {
  return !s.holdGone && !s.release && s.costMicroUsd >= 0 && s.costMicroUsd <= s.hold.holdMicroUsd && s.hold.keyWindow === undefined && s.hold.spendMonth === undefined;
}

/** Whether two groupable settlements can share one transaction: one account, one admitted minute, one roll-ups table. */
export function sameGroup(a: SettleWrite, b: SettleWrite): boolean {
  return a.hold.accountId === b.hold.accountId && a.hold.window === b.hold.window && a.rollupsTable === b.rollupsTable;
}

/** Admissions in one transaction at most (`admitGroup`: their hold items and the account). */
export const MAX_ADMIT_GROUP = 25;

/**
 * Whether an admission may share a transaction with others of its account (`admitGroup`): one
 * with no key item to update (a key with limits or a spend cap of its own is admitted alone),
 * written within the minute it believes the item is in (a write that rolls the minute over goes alone).
 */
export function admitGroupable(w: AdmitWrite): boolean {
  return !w.key && !w.keySpend && w.believed.window === minuteOf(w.nowMs);
}

/** Whether two groupable admissions can share one transaction: one account, limits, minute and belief about it. */
export function sameAdmitGroup(a: AdmitWrite, b: AdmitWrite): boolean {
  return (
    a.accountId === b.accountId &&
    a.limits.tier === b.limits.tier &&
    a.limits.rpm === b.limits.rpm &&
    a.limits.tpm === b.limits.tpm &&
    a.believed.window === b.believed.window &&
    minuteOf(a.nowMs) === minuteOf(b.nowMs) &&
    a.believed.prevRequests === b.believed.prevRequests &&
    a.believed.prevTokens === b.believed.prevTokens &&
    (a.maxRequestsBefore === undefined) === (b.maxRequestsBefore === undefined) &&
    (a.maxTokensBefore === undefined) === (b.maxTokensBefore === undefined)
  );
}

/** Attempts of one settlement: each failed condition tells the next one what the items hold. */
const SETTLE_ATTEMPTS = 8;

/** The accounts table: balance and the minute counters on one item of constant size. */
export class AccountsStore {
  constructor(
    private readonly client: Dynamo,
    readonly tableName: string,
    private readonly usageTable: string,
    readonly holdsTable: string,
  ) {}

  async create(account: Omit<Account, 'counts' | 'heldMicroUsd' | 'inFlight' | 'owedMicroUsd' | 'alert'>): Promise<Account> {
    const item: Item = {
      account_id: { S: account.id },
      name: { S: account.name },
      tier: { S: account.tier },
      balance: num(account.balanceMicroUsd),
      st: { S: account.status },
      created_at_ms: num(account.createdAtMs),
      win: num(0),
      req: num(0),
      tok: num(0),
      preq: num(0),
      ptok: num(0),
      held: num(0),
      inflight: num(0),
    };
    if (account.rpm !== undefined) item.rpm = num(account.rpm);
    if (account.tpm !== undefined) item.tpm = num(account.tpm);
    try {
      await this.client.call('PutItem', { TableName: this.tableName, Item: item, ConditionExpression: 'attribute_not_exists(account_id)' });
    } catch (err) {
      if (isDynamoError(err, 'ConditionalCheckFailedException')) throw new ItemExistsError('account', account.id);
      throw err;
    }
    return accountFromItem(item);
  }

  /** Every account's `held` and `inflight`, page by page (the daily reconciliation; scans the table). */
  async *heldSums(): AsyncGenerator<Array<{ accountId: string; heldMicroUsd: number; inFlight: number }>> {
    let start: Item | undefined;
    do {
      const page = await this.client.call('Scan', {
        TableName: this.tableName,
        ProjectionExpression: 'account_id, held, inflight',
        ExclusiveStartKey: start,
        ConsistentRead: true,
      });
      yield (page.Items ?? []).map((item: Item) => ({ accountId: item.account_id.S!, heldMicroUsd: Number(item.held?.N ?? 0), inFlight: Number(item.inflight?.N ?? 0) }));
      start = page.LastEvaluatedKey;
    } while (start);
  }

  async get(id: string, consistent = true): Promise<Account | undefined> {
    const out = await this.client.call('GetItem', { TableName: this.tableName, Key: { account_id: { S: id } }, ConsistentRead: consistent },
    );
    return out.Item ? accountFromItem(out.Item) : undefined;
  }

  /**
   * Admission, one transaction: the account's counters advanced and the hold taken from its
   * balance (on condition of the window, the allowance, the limits believed and `balance >= hold`),
   * the hold's own item put (on condition that it is absent, so one request holds once), and a
   * capped key's counters. A failed condition brings the items back to say why.
   */
  async admit(w: AdmitWrite): Promise<AdmitResult> {
    const items: TransactWriteItem[] = [
      { Update: { ...this.accountAdmission(w, w.hold.holdMicroUsd, 1), ReturnValuesOnConditionCheckFailure: 'ALL_OLD' } },
      {
        Put: {
          TableName: this.holdsTable,
          Item: holdToItem(w.hold),
          ConditionExpression: 'attribute_not_exists(request_id)',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        },
      },
    ];
    const key = w.key;
    const spend = w.keySpend;
    if (key || spend) {
      // One update of the key item, whether it carries rate caps, a spend cap or both.
      const parts = [key ? counterUpdate(key, w.nowMs) : undefined, spend ? spendUpdate(spend) : undefined].filter((p) => p !== undefined);
      items.push({
        Update: {
          TableName: (key?.keysTable ?? spend?.keysTable)!,
          Key: { key_hash: { S: (key?.keyHash ?? spend?.keyHash)! } },
          UpdateExpression: `SET ${parts.flatMap((p) => p.sets).join(', ')}`,
          ConditionExpression: ['attribute_exists(key_hash)', ...parts.flatMap((p) => p.conditions)].join(' AND '),
          ExpressionAttributeValues: Object.assign({}, ...parts.map((p) => p.values)),
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        },
      });
    }
    try {
      // No resend here when the answer is lost: admission resends it (same token), tracking the hold.
      await this.client.call('TransactWriteItems', { TransactItems: items, ClientRequestToken: w.token }, { resendWithoutAnswer: false });
    } catch (err) {
      if (!(isDynamoError(err, 'TransactionCanceledException'))) throw err;
      const [account, hold, keyReason] = err.CancellationReasons ?? [];
      if (hold?.Code === 'ConditionalCheckFailed') return { ok: false, reason: 'admitted', hold: hold.Item ? holdFromItem(hold.Item) : undefined };
      const accountFailed = account?.Code === 'ConditionalCheckFailed';
      const keyFailed = keyReason?.Code === 'ConditionalCheckFailed';
      if (!accountFailed && !keyFailed) {
        if (isConflict(err)) return { ok: false, reason: 'conflict' };
        throw err;
      }
      // Only the items whose condition failed come back; the account is re-read when it is needed.
      const old = account?.Item ? accountFromItem(account.Item) : accountFailed ? undefined : await this.get(w.accountId);
      return {
        ok: false,
        reason: 'condition',
        account: old,
        keyCounts: keyReason?.Item ? countsFromItem(keyReason.Item) : undefined,
        keySpend: keyReason?.Item ? keySpendFromItem(keyReason.Item) : undefined,
        accountFailed,
        keyFailed,
      };
    }
    const minute = minuteOf(w.nowMs);
    return { ok: true, accountCounts: advanced(w, minute), keyCounts: key ? advanced(key, minute) : undefined };
  }

  /**
   * The account item's part of an admission of `requests` requests holding `holdMicroUsd` in all:
   * the minute's counters (their conditions from the believed item), the hold taken from the
   * balance, the request(s) in flight; on condition that the account is active, pays the hold,
   * and has the tier and custom limits the conditions were computed from.
   */
  private accountAdmission(c: CounterWrite & Pick<AdmitWrite, 'accountId' | 'nowMs' | 'limits'>, holdMicroUsd: number, requests: number) {
    const counters = counterUpdate(c, c.nowMs, requests);
    const values: Item = { ...counters.values, ':active': { S: 'active' }, ':hold': num(holdMicroUsd), ':tier': { S: c.limits.tier }, ':zero': num(0) };
    const conditions = ['attribute_exists(account_id)', '#st = :active', 'balance >= :hold', 'tier = :tier', ...counters.conditions];
    for (const field of ['rpm', 'tpm'] as const) {
      const value = c.limits[field];
      if (value === undefined) conditions.push(`attribute_not_exists(${field})`);
      else {
        conditions.push(`${field} = :l${field}`);
        values[`:l${field}`] = num(value);
      }
    }
    return {
      TableName: this.tableName,
      Key: { account_id: { S: c.accountId } },
      UpdateExpression: `SET ${[...counters.sets, 'balance = balance - :hold', 'held = if_not_exists(held, :zero) + :hold', 'inflight = if_not_exists(inflight, :zero) + :one'].join(', ')}`,
      ConditionExpression: conditions.join(' AND '),
      ExpressionAttributeNames: { '#st': 'st' },
      ExpressionAttributeValues: values,
    };
  }

  /**
   * Group commit of admissions (local mode): `admitGroupable` writes of one account with the same
   * beliefs (`sameAdmitGroup`), at most `MAX_ADMIT_GROUP`, in ONE transaction: each hold item put
   * on its own condition (absent), and one account update with the summed requests, tokens and
   * holds, on conditions that hold only if every one of them would be admitted alone, one after
   * the other, in any order: the minute's requests leave room for all of them under the tightest
   * of their bounds, its tokens for their sum, the balance pays the summed hold. True when the
   * group landed; false when it was refused (a condition, a conflict): nothing landed, and each is
   * then sent alone, whose own conditions decide exactly (a group refused where each alone would
   * pass costs a write, never a wrong answer). Anything else (an answer that may be lost) throws.
   */
  async admitGroup(writes: AdmitWrite[]): Promise<boolean> {
    const first = writes[0];
    if (writes.length > MAX_ADMIT_GROUP || !writes.every((w) => admitGroupable(w) && sameAdmitGroup(w, first))) throw new RangeError('admitGroup: writes that cannot share a transaction');
    let hold = 0;
    let tokens = 0;
    // Each write's room: the most requests (tokens) the minute may hold with it in; for one write,
    // its `max…Before` plus itself. The group fits when the sum fits the least room.
    let requestRoom = Number.POSITIVE_INFINITY;
    let tokenRoom = Number.POSITIVE_INFINITY;
    for (const w of writes) {
      hold += w.hold.holdMicroUsd;
      tokens += w.tokens;
      if (w.maxRequestsBefore !== undefined) requestRoom = Math.min(requestRoom, w.maxRequestsBefore + 1);
      if (w.maxTokensBefore !== undefined) tokenRoom = Math.min(tokenRoom, w.maxTokensBefore + w.tokens);
    }
    const summed: CounterWrite & Pick<AdmitWrite, 'accountId' | 'nowMs' | 'limits'> = {
      accountId: first.accountId,
      nowMs: first.nowMs,
      limits: first.limits,
      believed: first.believed,
      tokens,
      maxRequestsBefore: first.maxRequestsBefore === undefined ? undefined : requestRoom - writes.length,
      maxTokensBefore: first.maxTokensBefore === undefined ? undefined : tokenRoom - tokens,
    };
    const items: TransactWriteItem[] = [
      { Update: this.accountAdmission(summed, hold, writes.length) },
      ...writes.map((w) => ({ Put: { TableName: this.holdsTable, Item: holdToItem(w.hold), ConditionExpression: 'attribute_not_exists(request_id)' } })),
    ];
    try {
      await this.client.call('TransactWriteItems', { TransactItems: items }, { resendWithoutAnswer: false });
      return true;
    } catch (err) {
      if (isDynamoError(err, 'TransactionCanceledException')) return false;
      throw err;
    }
  }

  /**
   * Settlement, one transaction: the hold item deleted (on condition that it exists: whoever
   * deletes it, the request or the sweeper, is the one settlement), the account refunded
   * `hold − cost` and its token count corrected, the ledger item put (only if absent), and a
   * capped key's count corrected. A cost beyond the hold is charged as far as the balance goes
   * and the rest recorded as uncharged. `guessWindow` is the minute the caller believes the
   * account item is in; a wrong guess costs one more attempt, never a wrong correction.
   */
  async settle(s: SettleWrite, nowMs = Date.now(), guessWindow = minuteOf(nowMs)): Promise<SettleResult> {
    const { hold } = s;
    const minute = minuteOf(nowMs);
    // Corrections for a minute that has left the sliding window change nothing that still counts.
    const stillCounts = (admitted: number) => minute <= admitted + 1;
    let accountTarget = correctionTarget(hold.window, guessWindow);
    let keyTarget = hold.keyWindow !== undefined ? correctionTarget(hold.keyWindow, guessWindow) : 'none';
    // A spend-capped key's month total takes `charged − hold`, while the item is still in the hold's month.
    let spendApplies = hold.spendMonth !== undefined;
    let charged = s.costMicroUsd;
    for (let attempt = 0; attempt < SETTLE_ATTEMPTS; attempt++) {
      const refund = hold.holdMicroUsd - charged;
      const values: Item = { ':refund': num(refund), ':hold': num(hold.holdMicroUsd), ':one': num(1) };
      const sets = ['balance = balance + :refund', 'held = held - :hold', 'inflight = inflight - :one'];
      const conditions = ['attribute_exists(account_id)'];
      if (refund < 0) {
        conditions.push('balance >= :extra');
        values[':extra'] = num(-refund);
      }
      const correctAccount = s.tokenCorrection !== 0 && stillCounts(hold.window);
      if (correctAccount) {
        const c = correctionUpdate(accountTarget, hold.window, s.tokenCorrection);
        if (c.set) sets.push(c.set);
        conditions.push(c.condition);
        Object.assign(values, c.values);
      }
      const entry: LedgerEntry = { ...s.ledger, amountMicroUsd: -charged, unchargedMicroUsd: s.costMicroUsd > charged ? s.costMicroUsd - charged : undefined };
      const items: TransactWriteItem[] = [];
      if (!s.holdGone) {
        items.push({
          Delete: {
            TableName: this.holdsTable,
            Key: { request_id: { S: hold.requestId } },
            // The amount too: a release sent for one admission write must not settle another's hold.
            ConditionExpression: 'attribute_exists(request_id) AND #amount = :amount',
            ExpressionAttributeNames: { '#amount': 'hold' },
            ExpressionAttributeValues: { ':amount': num(hold.holdMicroUsd) },
          },
        });
      }
      items.push(
        {
          Update: {
            TableName: this.tableName,
            Key: { account_id: { S: hold.accountId } },
            UpdateExpression: `SET ${sets.join(', ')}`,
            ConditionExpression: conditions.join(' AND '),
            ExpressionAttributeValues: values,
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          },
        },
        {
          Put: {
            TableName: this.usageTable,
            Item: ledgerItem(entry, s.rollupsTable),
            ConditionExpression: 'attribute_not_exists(sk)',
          },
        },
      );
      const correctKey = s.tokenCorrection !== 0 && hold.keyHash && s.keysTable && hold.keyWindow !== undefined && stillCounts(hold.keyWindow);
      const spendDelta = charged - hold.holdMicroUsd;
      const correctSpend = spendApplies && spendDelta !== 0 && hold.keyHash && s.keysTable;
      if (correctKey || correctSpend) {
        const keySets: string[] = [];
        const keyConditions = ['attribute_exists(key_hash)'];
        const keyValues: Item = {};
        if (correctKey) {
          const c = correctionUpdate(keyTarget, hold.keyWindow!, s.tokenCorrection);
          if (c.set) keySets.push(c.set);
          keyConditions.push(c.condition);
          Object.assign(keyValues, c.values);
        }
        if (correctSpend) {
          keySets.push('cap_used = cap_used + :sdelta');
          keyConditions.push('cap_month = :smonth');
          Object.assign(keyValues, { ':sdelta': num(spendDelta), ':smonth': num(hold.spendMonth!) });
        }
        items.push({
          Update: {
            TableName: s.keysTable!,
            Key: { key_hash: { S: hold.keyHash! } },
            UpdateExpression: keySets.length ? `SET ${keySets.join(', ')}` : 'SET key_hash = key_hash',
            ConditionExpression: keyConditions.join(' AND '),
            ExpressionAttributeValues: keyValues,
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          },
        });
      }
      // Last, so that the cancellation reasons above keep their places; it has no condition of its own.
      if (s.rollupsTable) items.push({ Update: rollupAddition(s.rollupsTable, entry) });
      try {
        await this.client.call('TransactWriteItems', { TransactItems: items });
        return { settled: true, chargedMicroUsd: charged, refundMicroUsd: refund, unchargedMicroUsd: s.costMicroUsd - charged };
      } catch (err) {
        if (!(isDynamoError(err, 'TransactionCanceledException'))) throw err;
        const reasons = err.CancellationReasons ?? [];
        const [holdReason, account, ledger, keyReason] = s.holdGone ? [undefined, ...reasons] : reasons;
        if (holdReason?.Code === 'ConditionalCheckFailed') {
          if (s.release) await this.putLedgerIfAbsent({ ...s.ledger, amountMicroUsd: 0 }, s.rollupsTable);
          return { settled: false };
        }
        if (ledger?.Code === 'ConditionalCheckFailed') return { settled: false, orphan: !s.holdGone };
        if (account?.Code === 'ConditionalCheckFailed') {
          if (!account.Item) throw new Error(`settlement of ${hold.requestId}: the account ${hold.accountId} is gone`);
          const old = accountFromItem(account.Item);
          accountTarget = correctionTarget(hold.window, old.counts.window);
          // Charge beyond the hold only what the balance has; the rest is recorded as uncharged.
          if (charged > hold.holdMicroUsd && old.balanceMicroUsd < charged - hold.holdMicroUsd) {
            charged = hold.holdMicroUsd + Math.max(0, old.balanceMicroUsd);
          }
        }
        if (keyReason?.Code === 'ConditionalCheckFailed' && keyReason.Item) {
          if (hold.keyWindow !== undefined) keyTarget = correctionTarget(hold.keyWindow, countsFromItem(keyReason.Item).window);
          // The month is over: its total no longer limits anything.
          if (hold.spendMonth !== undefined && keySpendFromItem(keyReason.Item).month !== hold.spendMonth) spendApplies = false;
        }
        const failed = [account, keyReason].some((r) => r?.Code === 'ConditionalCheckFailed');
        if (!failed) {
          // A conflict uses up an attempt like a failed condition does.
          if (!isConflict(err)) throw err;
          await conflictBackoff(attempt + 1);
        }
      }
    }
    throw new Error(`settlement of ${hold.requestId} did not converge`);
  }

  /**
   * Group commit (local mode): several settlements of one account in one transaction, each hold
   * deleted on its own condition (exists, with its amount), each ledger item put only if absent
   * (with its roll-up, summed per roll-up item, when `rollupsTable`), and ONE update of the
   * account with the summed refund, `held`, `inflight` and token correction. All or nothing:
   * undefined when it did not land (a condition, a conflict, no answer), and the caller then
   * applies each on its own with `settle` (a hold already gone, if a lost answer had landed,
   * changes nothing). Only `groupable` writes of one account, one admitted minute and one
   * roll-ups table, at most `MAX_SETTLE_GROUP`.
   */
  async settleGroup(writes: SettleWrite[], nowMs = Date.now(), guessWindow = minuteOf(nowMs)): Promise<Array<Extract<SettleResult, { settled: true }>> | undefined> {
    const first = writes[0];
    if (writes.length > MAX_SETTLE_GROUP || !writes.every((w) => groupable(w) && sameGroup(w, first))) throw new RangeError('settleGroup: writes that cannot share a transaction');
    const window = first.hold.window;
    let refund = 0;
    let held = 0;
    let correction = 0;
    for (const w of writes) {
      refund += w.hold.holdMicroUsd - w.costMicroUsd;
      held += w.hold.holdMicroUsd;
      correction += w.tokenCorrection;
    }
    const values: Item = { ':refund': num(refund), ':hold': num(held), ':n': num(writes.length) };
    const sets = ['balance = balance + :refund', 'held = held - :hold', 'inflight = inflight - :n'];
    const conditions = ['attribute_exists(account_id)'];
    if (correction !== 0 && minuteOf(nowMs) <= window + 1) {
      const c = correctionUpdate(correctionTarget(window, guessWindow), window, correction);
      if (c.set) sets.push(c.set);
      conditions.push(c.condition);
      Object.assign(values, c.values);
    }
    const entries: LedgerEntry[] = writes.map((w) => ({ ...w.ledger, amountMicroUsd: -w.costMicroUsd }));
    const items: TransactWriteItem[] = [
      ...writes.map((w) => ({
        Delete: {
          TableName: this.holdsTable,
          Key: { request_id: { S: w.hold.requestId } },
          ConditionExpression: 'attribute_exists(request_id) AND #amount = :amount',
          ExpressionAttributeNames: { '#amount': 'hold' },
          ExpressionAttributeValues: { ':amount': num(w.hold.holdMicroUsd) },
        },
      })),
      ...entries.map((e) => ({ Put: { TableName: this.usageTable, Item: ledgerItem(e, first.rollupsTable), ConditionExpression: 'attribute_not_exists(sk)' } })),
      { Update: { TableName: this.tableName, Key: { account_id: { S: first.hold.accountId } }, UpdateExpression: `SET ${sets.join(', ')}`, ConditionExpression: conditions.join(' AND '), ExpressionAttributeValues: values } },
      ...(first.rollupsTable ? rollupAdditions(first.rollupsTable, entries).map((u) => ({ Update: u })) : []),
    ];
    try {
      await this.client.call('TransactWriteItems', { TransactItems: items });
    } catch {
      return undefined;
    }
    return writes.map((w) => ({ settled: true, chargedMicroUsd: w.costMicroUsd, refundMicroUsd: w.hold.holdMicroUsd - w.costMicroUsd, unchargedMicroUsd: 0 }));
  }

  /**
   * A request's own settlement that found its hold settled already. When the sweeper settled it
   * as `abandoned` (the request's settlement was queued, or delayed past the sweep), the
   * difference between what this settlement charges and what the sweep charged is applied as a
   * ledger item of its own (`<request id>#late`, status `late_settlement`, put only if absent:
   * exactly once), with the account's balance, in one transaction conditioned on the abandoned
   * item. A charge beyond the balance is charged as far as it goes, the rest recorded as
   * uncharged. The minute's token counters are left alone: that minute has long left the window.
   * Returns undefined when there is nothing to apply (no abandoned item: the request settled
   * itself before, or was released).
   */
  async settleLate(s: SettleWrite): Promise<LateSettleResult | undefined> {
    const { hold } = s;
    const requestKey = { account_id: { S: hold.accountId }, sk: { S: ledgerSortKey(s.ledger) } };
    const got = await this.client.call('GetItem', { TableName: this.usageTable, Key: requestKey, ConsistentRead: true });
    if (!got.Item) return undefined;
    const abandoned = ledgerFromItem(got.Item);
    if (abandoned.status !== 'abandoned') return undefined;
    const difference = s.costMicroUsd - -abandoned.amountMicroUsd;
    let charged = difference;
    for (let attempt = 0; attempt < SETTLE_ATTEMPTS; attempt++) {
      const values: Item = { ':change': num(-charged) };
      const conditions = ['attribute_exists(account_id)'];
      if (charged > 0) {
        conditions.push('balance >= :extra');
        values[':extra'] = num(charged);
      }
      const entry: LedgerEntry = {
        ...s.ledger,
        id: `${s.ledger.id}#late`,
        status: 'late_settlement',
        settles: s.ledger.id,
        amountMicroUsd: -charged,
        unchargedMicroUsd: difference > charged ? difference - charged : undefined,
        // The tokens this settlement adds to (or takes from) the abandoned item's, so that sums stay true.
        promptTokens: (s.ledger.promptTokens ?? 0) - (abandoned.promptTokens ?? 0),
        completionTokens: (s.ledger.completionTokens ?? 0) - (abandoned.completionTokens ?? 0),
        holdMicroUsd: undefined,
      };
      try {
        await this.client.call('TransactWriteItems', {
          TransactItems: [
            {
              ConditionCheck: {
                TableName: this.usageTable,
                Key: requestKey,
                ConditionExpression: '#st = :abandoned AND amount_micro_usd = :amount',
                ExpressionAttributeNames: { '#st': 'status' },
                ExpressionAttributeValues: { ':abandoned': { S: 'abandoned' }, ':amount': num(abandoned.amountMicroUsd) },
              },
            },
            {
              Update: {
                TableName: this.tableName,
                Key: { account_id: { S: hold.accountId } },
                UpdateExpression: 'SET balance = balance + :change',
                ConditionExpression: conditions.join(' AND '),
                ExpressionAttributeValues: values,
                ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
              },
            },
            { Put: { TableName: this.usageTable, Item: ledgerItem(entry, s.rollupsTable), ConditionExpression: 'attribute_not_exists(sk)' } },
            ...(s.rollupsTable ? [{ Update: rollupAddition(s.rollupsTable, entry) }] : []),
          ],
        });
        return { applied: true, chargedMicroUsd: charged, unchargedMicroUsd: difference - charged, abandonedMicroUsd: -abandoned.amountMicroUsd };
      } catch (err) {
        if (!isDynamoError(err, 'TransactionCanceledException')) throw err;
        const [check, account, late] = err.CancellationReasons ?? [];
        if (late?.Code === 'ConditionalCheckFailed' || check?.Code === 'ConditionalCheckFailed') {
          return { applied: false, chargedMicroUsd: 0, unchargedMicroUsd: 0, abandonedMicroUsd: -abandoned.amountMicroUsd };
        }
        if (account?.Code === 'ConditionalCheckFailed') {
          if (!account.Item) throw new Error(`late settlement of ${hold.requestId}: the account ${hold.accountId} is gone`);
          charged = Math.max(0, Math.min(charged, accountFromItem(account.Item).balanceMicroUsd));
        } else if (isConflict(err)) await conflictBackoff(attempt + 1);
        else throw err;
      }
    }
    throw new Error(`late settlement of ${hold.requestId} did not converge`);
  }

  /** A release's ledger item, only if absent; in local mode with its roll-up, in one transaction. */
  private async putLedgerIfAbsent(entry: LedgerEntry, rollupsTable?: string): Promise<void> {
    const put = { TableName: this.usageTable, Item: ledgerItem(entry, rollupsTable), ConditionExpression: 'attribute_not_exists(sk)' };
    try {
      if (rollupsTable) await this.client.call('TransactWriteItems', { TransactItems: [{ Put: put }, { Update: rollupAddition(rollupsTable, entry) }] });
      else await this.client.call('PutItem', put);
    } catch (err) {
      if (isDynamoError(err, 'ConditionalCheckFailedException')) return;
      if (isDynamoError(err, 'TransactionCanceledException') && err.CancellationReasons?.[0]?.Code === 'ConditionalCheckFailed') return;
      throw err;
    }
  }

  /**
   * Gives back in full a hold whose request's ledger item already exists (see SettleResult):
   * deleted on condition that it exists, and only while that ledger item does.
   */
  async releaseOrphan(hold: Pick<HoldRecord, 'requestId' | 'accountId' | 'holdMicroUsd' | 'startedAtMs'>): Promise<boolean> {
    try {
      await retryConflicts(() =>
        this.client.call('TransactWriteItems', {
            TransactItems: [
              { Delete: { TableName: this.holdsTable, Key: { request_id: { S: hold.requestId } }, ConditionExpression: 'attribute_exists(request_id)' } },
              {
                ConditionCheck: {
                  TableName: this.usageTable,
                  Key: { account_id: { S: hold.accountId }, sk: { S: ledgerSortKey({ kind: 'request', atMs: hold.startedAtMs, id: hold.requestId }) } },
                  ConditionExpression: 'attribute_exists(sk)',
                },
              },
              {
                Update: {
                  TableName: this.tableName,
                  Key: { account_id: { S: hold.accountId } },
                  UpdateExpression: 'SET balance = balance + :hold, held = held - :hold, inflight = inflight - :one',
                  ConditionExpression: 'attribute_exists(account_id)',
                  ExpressionAttributeValues: { ':hold': num(hold.holdMicroUsd), ':one': num(1) },
                },
              },
            ],
          },
        ),
      );
      return true;
    } catch (err) {
      if (isDynamoError(err, 'TransactionCanceledException') && (err.CancellationReasons ?? []).some((r) => r.Code === 'ConditionalCheckFailed')) return false;
      throw err;
    }
  }

  /**
   * Changes an account's name, tier, custom limits (null removes one) or status. Admission
   * conditions name the tier and limits they were computed from, so the next request on every
   * instance sees the change at once.
   */
  async update(
    id: string,
    change: { name?: string; tier?: string; rpm?: number | null; tpm?: number | null; status?: Account['status'] },
  ): Promise<Account | undefined> {
    const sets: string[] = [];
    const removes: string[] = [];
    const values: Item = {};
    if (change.name !== undefined) {
      sets.push('#name = :name');
      values[':name'] = { S: change.name };
    }
    if (change.tier !== undefined) {
      sets.push('tier = :tier');
      values[':tier'] = { S: change.tier };
    }
    if (change.status !== undefined) {
      sets.push('st = :st');
      values[':st'] = { S: change.status };
    }
    for (const field of ['rpm', 'tpm'] as const) {
      const value = change[field];
      if (value === null) removes.push(field);
      else if (value !== undefined) {
        sets.push(`${field} = :${field}`);
        values[`:${field}`] = num(value);
      }
    }
    if (!sets.length && !removes.length) return this.get(id);
    try {
      const out = await retryConflicts(() =>
        this.client.call('UpdateItem', {
            TableName: this.tableName,
            Key: { account_id: { S: id } },
            UpdateExpression: [sets.length ? `SET ${sets.join(', ')}` : '', removes.length ? `REMOVE ${removes.join(', ')}` : ''].join(' ').trim(),
            ConditionExpression: 'attribute_exists(account_id)',
            ExpressionAttributeNames: change.name !== undefined ? { '#name': 'name' } : undefined,
            ExpressionAttributeValues: Object.keys(values).length ? values : undefined,
            ReturnValues: 'ALL_NEW',
          },
        ),
      );
      return accountFromItem(out.Attributes!);
    } catch (err) {
      if (isDynamoError(err, 'ConditionalCheckFailedException')) return undefined;
      throw err;
    }
  }

  /**
   * Adds credits once per reference (`credit`, reporting only whether it added). What the account
   * owes is paid first: see `credit`.
   */
  async topUp(
    accountId: string,
    amountMicroUsd: number,
    reference: string,
    nowMs = Date.now(),
    payment?: CardPayment,
  ): Promise<'added' | 'duplicate' | 'no-account'> {
    return (await this.credit(accountId, amountMicroUsd, reference, nowMs, payment)).result;
  }

  /**
   * Adds credits once per reference: the ledger item and the balance change are one transaction.
   * What the account owes (refunds and disputes beyond its balance) is paid first, in the same
   * transaction: the balance gets `amount − paid`, `owed` goes down by `paid` (on condition that it
   * is the amount read, so a reversal landing meanwhile makes it read again), and an `owed_payment`
   * ledger item (`owed#<reference>`) says so. The first attempt assumes nothing is owed (one write,
   * no read, for almost every account); a failed condition brings the item back.
   * Each attempt's token is its own, so that the client's resend after a lost answer lands once and
   * still reports `added`, while another call with the same reference (a webhook delivered again)
   * is another write that finds the ledger item: `duplicate`.
   */
  async credit(accountId: string, amountMicroUsd: number, reference: string, nowMs = Date.now(), payment?: CardPayment): Promise<TopUpOutcome> {
    // A card payment also claims its Checkout session and PaymentIntent, whatever the account.
    const claims: TransactWriteItem[] = payment
      ? [
          {
            Put: {
              TableName: this.usageTable,
              Item: { account_id: { S: PAYMENTS_PARTITION }, sk: { S: `checkout#${payment.checkoutSessionId}` }, owner: { S: accountId } },
              ConditionExpression: 'attribute_not_exists(sk)',
            },
          },
          {
            Put: {
              TableName: this.usageTable,
              Item: paymentToItem({ ...payment, accountId, creditedMicroUsd: amountMicroUsd, takenMicroUsd: 0, atMs: nowMs }),
              ConditionExpression: 'attribute_not_exists(sk)',
            },
          },
        ]
      : [];
    let owedSeen = 0;
    for (let attempt = 1; ; attempt++) {
      const paid = Math.min(owedSeen, amountMicroUsd);
      const owedItem: TransactWriteItem[] =
        paid > 0
          ? [
              {
                Put: {
                  TableName: this.usageTable,
                  Item: ledgerToItem({ accountId, kind: 'owed_payment', atMs: nowMs, id: reference, amountMicroUsd: -paid, owedMicroUsd: -paid, paymentReference: reference }),
                  ConditionExpression: 'attribute_not_exists(sk)',
                },
              },
            ]
          : [];
      try {
        await retryConflicts(() =>
          this.client.call('TransactWriteItems', {
            ClientRequestToken: randomBytes(16).toString('hex'),
            TransactItems: [
              {
                Put: {
                  TableName: this.usageTable,
                  Item: ledgerToItem({ accountId, kind: 'topup', atMs: nowMs, id: reference, amountMicroUsd, receiptUrl: payment?.receiptUrl }),
                  ConditionExpression: 'attribute_not_exists(sk)',
                },
              },
              {
                Update: {
                  TableName: this.tableName,
                  Key: { account_id: { S: accountId } },
                  UpdateExpression: paid > 0 ? 'SET balance = balance + :amount, owed = owed - :paid' : 'SET balance = balance + :amount',
                  ConditionExpression: `attribute_exists(account_id) AND ${owedSeen > 0 ? 'owed = :seen' : '(attribute_not_exists(owed) OR owed <= :seen)'}`,
                  ExpressionAttributeValues: { ':amount': num(amountMicroUsd - paid), ':seen': num(owedSeen), ...(paid > 0 ? { ':paid': num(paid) } : {}) },
                  ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
                },
              },
              ...claims,
              ...owedItem,
            ],
          }),
        );
        await this.rearmBalanceAlert(accountId);
        return { result: 'added', owedPaidMicroUsd: paid, balanceAddedMicroUsd: amountMicroUsd - paid };
      } catch (err) {
        if (!isDynamoError(err, 'TransactionCanceledException')) throw err;
        const [ledger, account, ...others] = err.CancellationReasons ?? [];
        if (ledger?.Code === 'ConditionalCheckFailed' || others.some((r) => r.Code === 'ConditionalCheckFailed')) return { result: 'duplicate' };
        if (account?.Code !== 'ConditionalCheckFailed') throw err;
        if (!account.Item) return { result: 'no-account' };
        // What is owed changed since it was read (or was never read): pay what is owed now.
        owedSeen = Number(account.Item.owed?.N ?? 0);
        if (attempt >= SETTLE_ATTEMPTS) throw new Error(`the top-up ${reference} did not converge`);
      }
    }
  }

  /** The card payment that credited an account, by its PaymentIntent. */
  async payment(paymentIntentId: string): Promise<PaymentRecord | undefined> {
    const out = await this.client.call('GetItem', {
      TableName: this.usageTable,
      Key: { account_id: { S: PAYMENTS_PARTITION }, sk: { S: `pi#${paymentIntentId}` } },
      ConsistentRead: true,
    });
    return out.Item ? paymentFromItem(out.Item) : undefined;
  }

  /**
   * Takes back what a refund or a dispute reversed of a card payment, once per `reference`: as
   * much as the balance has, the rest recorded as owed. `cumulativeMicroUsd` (a refund's
   * `amount_refunded`) takes what it says less what earlier reversals of the payment took;
   * `amountMicroUsd` (a dispute) takes that amount, both within what the payment credited.
   */
  async takeBack(r: {
    paymentIntentId: string;
    reference: string;
    kind: 'refund' | 'dispute';
    /** A dispute's id: a `won` closing delivered before it makes it take nothing. */
    disputeId?: string;
    cumulativeMicroUsd?: number;
    amountMicroUsd?: number;
    nowMs: number;
  }): Promise<
    | { result: 'taken'; accountId: string; takenMicroUsd: number; owedMicroUsd: number; checkoutSessionId: string }
    | { result: 'nothing' | 'duplicate'; accountId: string }
    | { result: 'unknown-payment' }
  > {
    for (let attempt = 1; attempt <= SETTLE_ATTEMPTS; attempt++) {
      const payment = await this.payment(r.paymentIntentId);
      if (!payment) return { result: 'unknown-payment' };
      const { accountId } = payment;
      const left = payment.creditedMicroUsd - payment.takenMicroUsd;
      const delta =
        r.cumulativeMicroUsd !== undefined
          ? Math.min(r.cumulativeMicroUsd, payment.creditedMicroUsd) - payment.takenMicroUsd
          : Math.min(r.amountMicroUsd ?? 0, left);
      if (delta <= 0) return { result: 'nothing', accountId };
      const account = await this.get(accountId);
      if (!account) return { result: 'unknown-payment' };
      const fromBalance = Math.min(Math.max(0, account.balanceMicroUsd), delta);
      const owed = delta - fromBalance;
      // A dispute already closed in the holder's favour (its `won` delivered first) takes nothing.
      const closed: TransactWriteItem[] =
        r.kind === 'dispute' && r.disputeId
          ? [{ ConditionCheck: { TableName: this.usageTable, Key: { account_id: { S: accountId }, sk: { S: ledgerSortKey({ kind: 'reversal', atMs: 0, id: disputeWonReference(r.disputeId) }) } }, ConditionExpression: 'attribute_not_exists(sk)' } }]
          : [];
      try {
        await this.client.call('TransactWriteItems', {
          TransactItems: [
            {
              Update: {
                TableName: this.usageTable,
                Key: { account_id: { S: PAYMENTS_PARTITION }, sk: { S: `pi#${r.paymentIntentId}` } },
                UpdateExpression: 'SET taken = taken + :delta',
                ConditionExpression: 'taken = :seen',
                ExpressionAttributeValues: { ':delta': num(delta), ':seen': num(payment.takenMicroUsd) },
              },
            },
            {
              Put: {
                TableName: this.usageTable,
                Item: ledgerToItem({
                  accountId,
                  kind: 'reversal',
                  atMs: r.nowMs,
                  id: r.reference,
                  amountMicroUsd: -fromBalance,
                  owedMicroUsd: owed || undefined,
                  reason: r.kind,
                  paymentReference: payment.checkoutSessionId,
                }),
                ConditionExpression: 'attribute_not_exists(sk)',
              },
            },
            {
              Update: {
                TableName: this.tableName,
                Key: { account_id: { S: accountId } },
                UpdateExpression: 'SET balance = balance - :from, owed = if_not_exists(owed, :zero) + :owed',
                // Something is owed only when the balance is emptied: a top-up landing meanwhile makes it read again.
                ConditionExpression: `attribute_exists(account_id) AND ${owed > 0 ? 'balance = :from' : 'balance >= :from'}`,
                ExpressionAttributeValues: { ':from': num(fromBalance), ':owed': num(owed), ':zero': num(0) },
              },
            },
            ...closed,
          ],
        });
        return { result: 'taken', accountId, takenMicroUsd: fromBalance, owedMicroUsd: owed, checkoutSessionId: payment.checkoutSessionId };
      } catch (err) {
        if (!isDynamoError(err, 'TransactionCanceledException')) throw err;
        const [, ledger, , closedCheck] = err.CancellationReasons ?? [];
        if (ledger?.Code === 'ConditionalCheckFailed') return { result: 'duplicate', accountId };
        if (closedCheck?.Code === 'ConditionalCheckFailed') return { result: 'nothing', accountId };
        // Another reversal of the payment, or a charge on the balance, came first: read again.
        if (!(err.CancellationReasons ?? []).some((x) => x.Code === 'ConditionalCheckFailed') && !isConflict(err)) throw err;
        await conflictBackoff(attempt);
      }
    }
    throw new Error(`the reversal ${r.reference} did not converge`);
  }

  /**
   * Gives back what a dispute took once it is closed in the holder's favour (`won`), once per
   * dispute: what its `dispute:<id>` reversal took (from the balance and as owed) goes first to
   * what the account owes now, the rest to the balance; the payment's `taken` goes down by it (a
   * later refund may take it again). One transaction with the `dispute_won:<id>` ledger item (only
   * if absent). A dispute that took nothing (nothing left of its payment, or its `created` not
   * delivered yet) gets that ledger item at zero, so that a `created` delivered late takes nothing.
   */
  async reinstateDispute(r: { paymentIntentId: string; disputeId: string; nowMs: number }): Promise<
    | { result: 'reinstated'; accountId: string; toBalanceMicroUsd: number; owedPaidMicroUsd: number; checkoutSessionId: string }
    | { result: 'nothing' | 'duplicate'; accountId: string }
    | { result: 'unknown-payment' }
  > {
    const reference = disputeWonReference(r.disputeId);
    for (let attempt = 1; attempt <= SETTLE_ATTEMPTS; attempt++) {
      const payment = await this.payment(r.paymentIntentId);
      if (!payment) return { result: 'unknown-payment' };
      const { accountId } = payment;
      const ledgerKey = (id: string) => ({ account_id: { S: accountId }, sk: { S: ledgerSortKey({ kind: 'reversal', atMs: 0, id }) } });
      const [takenItem, account] = await Promise.all([
        this.client.call('GetItem', { TableName: this.usageTable, Key: ledgerKey(`dispute:${r.disputeId}`), ConsistentRead: true }),
        this.get(accountId),
      ]);
      if (!account) return { result: 'unknown-payment' };
      const wonItem = (amountMicroUsd: number, owedMicroUsd: number) =>
        ledgerToItem({
          accountId,
          kind: 'reversal',
          atMs: r.nowMs,
          id: reference,
          amountMicroUsd,
          owedMicroUsd: owedMicroUsd || undefined,
          reason: 'dispute_won',
          paymentReference: payment.checkoutSessionId,
        });
      try {
        if (!takenItem.Item) {
          await this.client.call('TransactWriteItems', {
            TransactItems: [
              { Put: { TableName: this.usageTable, Item: wonItem(0, 0), ConditionExpression: 'attribute_not_exists(sk)' } },
              // Its `created` landing meanwhile makes this read again.
              { ConditionCheck: { TableName: this.usageTable, Key: ledgerKey(`dispute:${r.disputeId}`), ConditionExpression: 'attribute_not_exists(sk)' } },
            ],
          });
          return { result: 'nothing', accountId };
        }
        const taken = ledgerFromItem(takenItem.Item);
        const total = -taken.amountMicroUsd + (taken.owedMicroUsd ?? 0);
        const owedPaid = Math.min(account.owedMicroUsd, total);
        const toBalance = total - owedPaid;
        await this.client.call('TransactWriteItems', {
          TransactItems: [
            { Put: { TableName: this.usageTable, Item: wonItem(toBalance, -owedPaid), ConditionExpression: 'attribute_not_exists(sk)' } },
            {
              Update: {
                TableName: this.usageTable,
                Key: { account_id: { S: PAYMENTS_PARTITION }, sk: { S: `pi#${r.paymentIntentId}` } },
                UpdateExpression: 'SET taken = taken - :total',
                ConditionExpression: 'taken = :seen',
                ExpressionAttributeValues: { ':total': num(total), ':seen': num(payment.takenMicroUsd) },
              },
            },
            {
              Update: {
                TableName: this.tableName,
                Key: { account_id: { S: accountId } },
                UpdateExpression: 'SET balance = balance + :to, owed = if_not_exists(owed, :zero) - :paid',
                ConditionExpression: `attribute_exists(account_id) AND ${account.owedMicroUsd > 0 ? 'owed = :owed' : '(attribute_not_exists(owed) OR owed <= :owed)'}`,
                ExpressionAttributeValues: { ':to': num(toBalance), ':paid': num(owedPaid), ':owed': num(account.owedMicroUsd), ':zero': num(0) },
              },
            },
          ],
        });
        await this.rearmBalanceAlert(accountId);
        return { result: 'reinstated', accountId, toBalanceMicroUsd: toBalance, owedPaidMicroUsd: owedPaid, checkoutSessionId: payment.checkoutSessionId };
      } catch (err) {
        if (!isDynamoError(err, 'TransactionCanceledException')) throw err;
        const [won] = err.CancellationReasons ?? [];
        if (won?.Code === 'ConditionalCheckFailed') return { result: 'duplicate', accountId };
        // A reversal of the payment, a top-up or its `created` came first: read again.
        if (!(err.CancellationReasons ?? []).some((x) => x.Code === 'ConditionalCheckFailed') && !isConflict(err)) throw err;
        await conflictBackoff(attempt);
      }
    }
    throw new Error(`the reinstatement ${reference} did not converge`);
  }

  /**
   * Sets (or with null removes) the account's low-balance alert; a saved alert is armed. Returns
   * the account, or undefined when it does not exist.
   */
  async setBalanceAlert(id: string, settings: Omit<BalanceAlertSettings, 'armed'> | null): Promise<Account | undefined> {
    const fields = ['alert_below', 'alert_url', 'alert_secret', 'alert_email', 'alert_armed'];
    let update: string;
    let values: Item | undefined;
    if (!settings) update = `REMOVE ${fields.join(', ')}`;
    else {
      values = { ':below': num(settings.thresholdMicroUsd), ':armed': { BOOL: true } };
      const sets = ['alert_below = :below', 'alert_armed = :armed'];
      const removes: string[] = [];
      for (const [field, value] of [
        ['alert_url', settings.webhookUrl],
        ['alert_secret', settings.secret],
        ['alert_email', settings.email],
      ] as const) {
        if (value) {
          sets.push(`${field} = :${field}`);
          values[`:${field}`] = { S: value };
        } else removes.push(field);
      }
      update = `SET ${sets.join(', ')}${removes.length ? ` REMOVE ${removes.join(', ')}` : ''}`;
    }
    try {
      const out = await retryConflicts(() =>
        this.client.call('UpdateItem', {
          TableName: this.tableName,
          Key: { account_id: { S: id } },
          UpdateExpression: update,
          ConditionExpression: 'attribute_exists(account_id)',
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return accountFromItem(out.Attributes!);
    } catch (err) {
      if (isDynamoError(err, 'ConditionalCheckFailedException')) return undefined;
      throw err;
    }
  }

  /**
   * The one write that fires a low-balance alert: disarms it on condition that it is armed and
   * the balance is below its threshold, so of any number of concurrent callers exactly one wins
   * (`fired`, with the item after the write). Otherwise the item as it was (`alert` undefined:
   * the account has none).
   */
  async disarmBalanceAlert(id: string): Promise<{ fired: true; account: Account } | { fired: false; account: Account | undefined }> {
    try {
      const out = await this.client.call('UpdateItem', {
        TableName: this.tableName,
        Key: { account_id: { S: id } },
        UpdateExpression: 'SET alert_armed = :off',
        ConditionExpression: 'alert_armed = :on AND balance < alert_below',
        ExpressionAttributeValues: { ':on': { BOOL: true }, ':off': { BOOL: false } },
        ReturnValues: 'ALL_NEW',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      });
      return { fired: true, account: accountFromItem(out.Attributes!) };
    } catch (err) {
      if (!isDynamoError(err, 'ConditionalCheckFailedException')) throw err;
      const item = (err as { Item?: Item }).Item;
      return { fired: false, account: item ? accountFromItem(item) : undefined };
    }
  }

  /** Arms a fired alert again once the balance is back at or above its threshold; true when it did. */
  async rearmBalanceAlert(id: string): Promise<boolean> {
    try {
      await retryConflicts(() =>
        this.client.call('UpdateItem', {
          TableName: this.tableName,
          Key: { account_id: { S: id } },
          UpdateExpression: 'SET alert_armed = :on',
          ConditionExpression: 'alert_armed = :off AND balance >= alert_below',
          ExpressionAttributeValues: { ':on': { BOOL: true }, ':off': { BOOL: false } },
        }),
      );
      return true;
    } catch (err) {
      if (isDynamoError(err, 'ConditionalCheckFailedException')) return false;
      throw err;
    }
  }
}

/** The ledger reference of a dispute closed in the holder's favour (`reversal#dispute_won:<id>`). */
export const disputeWonReference = (disputeId: string) => `dispute_won:${disputeId}`;

/** Card payments live in the usage table under this partition (account ids cannot contain `#`). */
export const PAYMENTS_PARTITION = '#stripe';

/** What ties a card payment to the top-up it paid for. */
export interface CardPayment {
  checkoutSessionId: string;
  paymentIntentId: string;
  receiptUrl?: string;
}

/** What a top-up did: `owedPaidMicroUsd` of it paid what the account owed, the rest went to the balance. */
export type TopUpOutcome =
  | { result: 'added'; owedPaidMicroUsd: number; balanceAddedMicroUsd: number }
  | { result: 'duplicate' | 'no-account' };

export interface PaymentRecord extends CardPayment {
  accountId: string;
  creditedMicroUsd: number;
  /** What refunds and disputes took back so far (from the balance or as owed). */
  takenMicroUsd: number;
  atMs: number;
}

function paymentToItem(p: PaymentRecord): Item {
  const item: Item = {
    account_id: { S: PAYMENTS_PARTITION },
    sk: { S: `pi#${p.paymentIntentId}` },
    owner: { S: p.accountId },
    checkout_session: { S: p.checkoutSessionId },
    credited: num(p.creditedMicroUsd),
    taken: num(p.takenMicroUsd),
    at_ms: num(p.atMs),
  };
  if (p.receiptUrl) item.receipt_url = { S: p.receiptUrl };
  return item;
}

function paymentFromItem(item: Item): PaymentRecord {
  return {
    accountId: item.owner.S!,
    paymentIntentId: item.sk.S!.slice('pi#'.length),
    checkoutSessionId: item.checkout_session.S!,
    receiptUrl: item.receipt_url?.S,
    creditedMicroUsd: Number(item.credited.N),
    takenMicroUsd: Number(item.taken.N),
    atMs: Number(item.at_ms.N),
  };
}

/**
 * True when DynamoDB refused a write because another transaction held one of its items (never
 * seen on DynamoDB Local): nothing was applied, and the same write may be sent again.
 */
export function isConflict(err: unknown): boolean {
  if (isDynamoError(err, 'TransactionConflictException')) return true;
  if (isDynamoError(err, 'TransactionCanceledException')) return (err.CancellationReasons ?? []).some((r) => r.Code === 'TransactionConflict');
  return false;
}

/** A few milliseconds, growing and jittered, so that writers on one hot item spread out. */
export function conflictBackoff(attempt: number): Promise<void> {
  const ms = Math.min(200, 5 * 2 ** attempt) * (0.5 + Math.random());
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function retryConflicts<T>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (!isConflict(err) || attempt >= SETTLE_ATTEMPTS) throw err;
      await conflictBackoff(attempt);
    }
  }
}

export { WINDOW_MS };
