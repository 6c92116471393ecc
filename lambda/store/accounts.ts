import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  type TransactWriteItem,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import { minuteOf, WINDOW_MS, type WindowCounts } from '../admission/sliding-window';
import { ItemExistsError } from './errors';
import { type LedgerEntry, ledgerToItem } from './usage';

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
  /** Holds of requests admitted and not yet settled, by request id (micro-USD); absent on items made before holds were kept. */
  holds?: Record<string, number>;
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
  };
  if (item.rpm?.N !== undefined) a.rpm = Number(item.rpm.N);
  if (item.tpm?.N !== undefined) a.tpm = Number(item.tpm.N);
  if (item.holds?.M) a.holds = Object.fromEntries(Object.entries(item.holds.M).map(([id, v]) => [id, Number(v.N ?? 0)]));
  return a;
}

/** One set of minute counters to advance, with the conditions computed from the item last seen. */
export interface CounterWrite {
  /** The window the writer believes the item holds, with that window's immutable previous counts. */
  believed: WindowCounts;
  tokens: number;
  /** Highest current-minute request/token count at which this request still fits; undefined = no limit. */
  maxRequestsBefore?: number;
  maxTokensBefore?: number;
  /** For a rollover write: highest count the *ending* minute may have for this request to fit. */
  maxPrevRequests?: number;
  maxPrevTokens?: number;
}

/** The admission write's inputs: the account's counters and hold, and a capped key's own counters. */
export interface AdmitWrite extends CounterWrite {
  accountId: string;
  /** Kept in the account's `holds` until settled: a resent write finds it and changes nothing. */
  requestId: string;
  nowMs: number;
  /** The tier and custom limits the conditions were computed from; a mismatch fails the write. */
  limits: { tier: string; rpm?: number; tpm?: number };
  holdMicroUsd: number;
  /** Only for keys with their own caps: their counters live on the key item (a second write). */
  key?: CounterWrite & { keysTable: string; keyHash: string };
}

export type AdmitResult =
  /** `account` is absent after a transaction (it returns no items): `accountCounts` has the new counters. */
  | { ok: true; account?: Account; accountCounts: WindowCounts; keyCounts?: WindowCounts }
  | { ok: false; account: Account | undefined; keyCounts?: WindowCounts; accountFailed: boolean; keyFailed: boolean };

export interface SettleWrite {
  accountId: string;
  /** The minute the request was admitted in: its token count gets the correction. */
  admittedWindow: number;
  refundMicroUsd: number;
  tokenCorrection: number;
  ledger: LedgerEntry;
}

const num = (v: number): AttributeValue => ({ N: String(v) });

export function countsFromItem(item: Item): WindowCounts {
  const n = (name: string) => Number(item[name]?.N ?? 0);
  return { window: n('win'), requests: n('req'), tokens: n('tok'), prevRequests: n('preq'), prevTokens: n('ptok') };
}

/**
 * The counter part of an admission write, in one of three forms by the believed window: same
 * minute (add), the minute before (roll over and add), older (start afresh).
 */
function counterUpdate(c: CounterWrite, nowMs: number): { conditions: string[]; sets: string[]; values: Item } {
  const minute = minuteOf(nowMs);
  const values: Item = { ':one': num(1), ':tok': num(c.tokens), ':m': num(minute) };
  const conditions: string[] = [];
  const bound = (condition: string, name: string, value: number | undefined) => {
    if (value === undefined) return;
    conditions.push(condition);
    values[name] = num(value);
  };
  if (c.believed.window === minute) {
    conditions.push('win = :m', 'preq = :preq', 'ptok = :ptok');
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

/** The accounts table: balance and the minute counters on one item, so admission is one write. */
export class AccountsStore {
  constructor(
    private readonly client: DynamoDBClient,
    readonly tableName: string,
    private readonly usageTable: string,
  ) {}

  async create(account: Omit<Account, 'counts' | 'holds'>): Promise<Account> {
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
      holds: { M: {} },
    };
    if (account.rpm !== undefined) item.rpm = num(account.rpm);
    if (account.tpm !== undefined) item.tpm = num(account.tpm);
    try {
      await this.client.send(new PutItemCommand({ TableName: this.tableName, Item: item, ConditionExpression: 'attribute_not_exists(account_id)' }));
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) throw new ItemExistsError('account', account.id);
      throw err;
    }
    return accountFromItem(item);
  }

  async get(id: string, consistent = true): Promise<Account | undefined> {
    const out = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: { account_id: { S: id } }, ConsistentRead: consistent }),
    );
    return out.Item ? accountFromItem(out.Item) : undefined;
  }

  /**
   * Admission: one conditional UpdateItem that counts the request and its tokens in the current
   * minute and takes the hold from the balance. Which of three forms it takes depends on the
   * window the writer believes the item is in; a wrong belief fails the condition and the old
   * item comes back to decide (stale, rate limited or unaffordable). A key with caps of its own
   * adds its counters in the same transaction.
   */
  async admit(w: AdmitWrite): Promise<AdmitResult> {
    const counters = counterUpdate(w, w.nowMs);
    const values: Item = { ...counters.values, ':active': { S: 'active' }, ':hold': num(w.holdMicroUsd), ':tier': { S: w.limits.tier } };
    const conditions = [
      'attribute_exists(account_id)',
      '#st = :active',
      'balance >= :hold',
      'tier = :tier',
      'attribute_exists(holds)',
      'attribute_not_exists(holds.#rid)',
      ...counters.conditions,
    ];
    for (const field of ['rpm', 'tpm'] as const) {
      const value = w.limits[field];
      if (value === undefined) conditions.push(`attribute_not_exists(${field})`);
      else {
        conditions.push(`${field} = :l${field}`);
        values[`:l${field}`] = num(value);
      }
    }
    const accountUpdate = {
      TableName: this.tableName,
      Key: { account_id: { S: w.accountId } },
      UpdateExpression: `SET ${[...counters.sets, 'balance = balance - :hold', 'holds.#rid = :hold'].join(', ')}`,
      ConditionExpression: conditions.join(' AND '),
      ExpressionAttributeNames: { '#st': 'st', '#rid': w.requestId },
      ExpressionAttributeValues: values,
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const,
    };
    if (w.key) return this.admitWithKey(w, accountUpdate);
    try {
      const out = await this.client.send(new UpdateItemCommand({ ...accountUpdate, ReturnValues: 'ALL_NEW' }));
      const account = accountFromItem(out.Attributes!);
      return { ok: true, account, accountCounts: account.counts };
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        return { ok: false, account: err.Item ? accountFromItem(err.Item) : undefined, accountFailed: true, keyFailed: false };
      }
      throw err;
    }
  }

  /** Account and key counters in one transaction; the new account item is computed, not re-read. */
  private async admitWithKey(w: AdmitWrite, accountUpdate: UpdateItemCommandInput): Promise<AdmitResult> {
    const key = w.key!;
    const keyCounters = counterUpdate(key, w.nowMs);
    try {
      await this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Update: accountUpdate as NonNullable<TransactWriteItem['Update']> },
            {
              Update: {
                TableName: key.keysTable,
                Key: { key_hash: { S: key.keyHash } },
                UpdateExpression: `SET ${keyCounters.sets.join(', ')}`,
                ConditionExpression: ['attribute_exists(key_hash)', ...keyCounters.conditions].join(' AND '),
                ExpressionAttributeValues: keyCounters.values,
                ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
              },
            },
          ],
        }),
      );
    } catch (err) {
      if (!(err instanceof TransactionCanceledException)) throw err;
      const [account, keyReason] = err.CancellationReasons ?? [];
      const accountFailed = account?.Code === 'ConditionalCheckFailed';
      const keyFailed = keyReason?.Code === 'ConditionalCheckFailed';
      if (!accountFailed && !keyFailed) throw err;
      // Only the items whose condition failed come back; the other is re-read so both are known.
      const old = account?.Item ? accountFromItem(account.Item) : accountFailed ? undefined : await this.get(w.accountId);
      return { ok: false, account: old, keyCounts: keyReason?.Item ? countsFromItem(keyReason.Item) : undefined, accountFailed, keyFailed };
    }
    // The transaction returns no items: the new state is the believed one advanced by this request.
    const minute = minuteOf(w.nowMs);
    const advance = (c: CounterWrite): WindowCounts => {
      const b = c.believed;
      if (b.window === minute) return { ...b, requests: b.requests + 1, tokens: b.tokens + c.tokens };
      const prev = b.window === minute - 1 ? { prevRequests: b.requests, prevTokens: b.tokens } : { prevRequests: 0, prevTokens: 0 };
      return { window: minute, requests: 1, tokens: c.tokens, ...prev };
    };
    return { ok: true, accountCounts: advance(w), keyCounts: advance(key) };
  }

  /**
   * Settlement: the ledger item (written only if absent) and the account's refund and token
   * correction in one transaction. Returns false when the ledger item already existed: the
   * request was settled before, and nothing changed.
   */
  async settle(s: SettleWrite, nowMs = Date.now()): Promise<boolean> {
    // The token correction goes to the minute the tokens were counted in, while it is still the
    // current one; a minute that is over stays as it was (its counts are immutable, ARCHITECTURE §3).
    let sameWindow = minuteOf(nowMs) === s.admittedWindow;
    for (let attempt = 0; attempt < 3; attempt++) {
      const values: Item = { ':refund': num(s.refundMicroUsd) };
      let update = 'SET balance = balance + :refund';
      const remove = ' REMOVE holds.#rid';
      let condition = 'attribute_exists(account_id)';
      if (s.tokenCorrection !== 0) {
        values[':w'] = num(s.admittedWindow);
        if (sameWindow) {
          values[':delta'] = num(s.tokenCorrection);
          update += ', tok = tok + :delta';
          condition += ' AND win = :w';
        } else {
          condition += ' AND win <> :w';
        }
      }
      const result = await this.ledgerTransaction(s.ledger, {
        TableName: this.tableName,
        Key: { account_id: { S: s.accountId } },
        UpdateExpression: update + remove,
        ConditionExpression: condition,
        ExpressionAttributeNames: { '#rid': s.ledger.id },
        ExpressionAttributeValues: values,
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      });
      if (result === 'written') return true;
      if (result === 'ledger-exists') return false;
      if (!result.accountItem) throw new Error(`settlement of ${s.ledger.id}: the account is gone`);
      sameWindow = Number(result.accountItem.win?.N ?? 0) === s.admittedWindow;
    }
    throw new Error(`settlement of ${s.ledger.id} did not converge on the account's window`);
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
      const out = await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { account_id: { S: id } },
          UpdateExpression: [sets.length ? `SET ${sets.join(', ')}` : '', removes.length ? `REMOVE ${removes.join(', ')}` : ''].join(' ').trim(),
          ConditionExpression: 'attribute_exists(account_id)',
          ExpressionAttributeNames: change.name !== undefined ? { '#name': 'name' } : undefined,
          ExpressionAttributeValues: Object.keys(values).length ? values : undefined,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return accountFromItem(out.Attributes!);
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return undefined;
      throw err;
    }
  }

  /**
   * Gives back a hold whose admission write may have landed though its answer was lost (the
   * client saw 503). Changes nothing unless the hold is there, so it can be sent more than once.
   */
  async releaseHold(accountId: string, requestId: string, holdMicroUsd: number): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { account_id: { S: accountId } },
          UpdateExpression: 'SET balance = balance + :hold REMOVE holds.#rid',
          ConditionExpression: 'holds.#rid = :hold',
          ExpressionAttributeNames: { '#rid': requestId },
          ExpressionAttributeValues: { ':hold': num(holdMicroUsd) },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /** Adds the holds map to an account item made before holds were kept. */
  async ensureHolds(accountId: string): Promise<void> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { account_id: { S: accountId } },
          UpdateExpression: 'SET holds = :empty',
          ConditionExpression: 'attribute_exists(account_id) AND attribute_not_exists(holds)',
          ExpressionAttributeValues: { ':empty': { M: {} } },
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  /** Adds credits once per reference: the ledger item and the balance change are one transaction. */
  async topUp(accountId: string, amountMicroUsd: number, reference: string, nowMs = Date.now()): Promise<'added' | 'duplicate' | 'no-account'> {
    const result = await this.ledgerTransaction(
      { accountId, kind: 'topup', atMs: nowMs, id: reference, amountMicroUsd },
      {
        TableName: this.tableName,
        Key: { account_id: { S: accountId } },
        UpdateExpression: 'SET balance = balance + :amount',
        ConditionExpression: 'attribute_exists(account_id)',
        ExpressionAttributeValues: { ':amount': num(amountMicroUsd) },
      },
    );
    if (result === 'written') return 'added';
    return result === 'ledger-exists' ? 'duplicate' : 'no-account';
  }

  /**
   * The exactly-once step under settlement and top-ups: the ledger item, put only if absent, and
   * the account's change, in one transaction. Says which condition failed, if one did.
   */
  private async ledgerTransaction(
    entry: LedgerEntry,
    accountUpdate: NonNullable<TransactWriteItem['Update']>,
  ): Promise<'written' | 'ledger-exists' | { accountItem: Item | undefined }> {
    try {
      await this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Put: { TableName: this.usageTable, Item: ledgerToItem(entry), ConditionExpression: 'attribute_not_exists(sk)' } },
            { Update: accountUpdate },
          ],
        }),
      );
      return 'written';
    } catch (err) {
      if (!(err instanceof TransactionCanceledException)) throw err;
      const [ledger, account] = err.CancellationReasons ?? [];
      if (ledger?.Code === 'ConditionalCheckFailed') return 'ledger-exists';
      if (account?.Code === 'ConditionalCheckFailed') return { accountItem: account.Item };
      throw err;
    }
  }
}

export { WINDOW_MS };
