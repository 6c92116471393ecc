import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { minuteOf, WINDOW_MS, type WindowCounts } from '../admission/sliding-window';
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
    counts: { window: n('win'), requests: n('req'), tokens: n('tok'), prevRequests: n('preq'), prevTokens: n('ptok') },
  };
  if (item.rpm?.N !== undefined) a.rpm = Number(item.rpm.N);
  if (item.tpm?.N !== undefined) a.tpm = Number(item.tpm.N);
  return a;
}

/** The admission write's inputs: what to add, and the conditions computed from the item last seen. */
export interface AdmitWrite {
  accountId: string;
  nowMs: number;
  /** The window the writer believes the item holds, with that window's immutable previous counts. */
  believed: WindowCounts;
  /** The tier and custom limits the conditions were computed from; a mismatch fails the write. */
  limits: { tier: string; rpm?: number; tpm?: number };
  holdMicroUsd: number;
  tokens: number;
  /** Highest current-minute request/token count at which this request still fits; undefined = no limit. */
  maxRequestsBefore?: number;
  maxTokensBefore?: number;
  /** For a rollover write: highest count the *ending* minute may have for this request to fit. */
  maxPrevRequests?: number;
  maxPrevTokens?: number;
}

export type AdmitResult = { ok: true; account: Account } | { ok: false; account: Account | undefined };

export interface SettleWrite {
  accountId: string;
  /** The minute the request was admitted in: its token count gets the correction. */
  admittedWindow: number;
  refundMicroUsd: number;
  tokenCorrection: number;
  ledger: LedgerEntry;
}

const num = (v: number): AttributeValue => ({ N: String(v) });

/** The accounts table: balance and the minute counters on one item, so admission is one write. */
export class AccountsStore {
  constructor(
    private readonly client: DynamoDBClient,
    readonly tableName: string,
    private readonly usageTable: string,
  ) {}

  async create(account: Omit<Account, 'counts'>): Promise<Account> {
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
    };
    if (account.rpm !== undefined) item.rpm = num(account.rpm);
    if (account.tpm !== undefined) item.tpm = num(account.tpm);
    await this.client.send(new PutItemCommand({ TableName: this.tableName, Item: item, ConditionExpression: 'attribute_not_exists(account_id)' }));
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
   * item comes back to decide (stale, rate limited or unaffordable).
   */
  async admit(w: AdmitWrite): Promise<AdmitResult> {
    const minute = minuteOf(w.nowMs);
    const names: Record<string, string> = { '#st': 'st' };
    const values: Item = { ':active': { S: 'active' }, ':hold': num(w.holdMicroUsd), ':one': num(1), ':tok': num(w.tokens), ':m': num(minute) };
    const conditions = ['attribute_exists(account_id)', '#st = :active', 'balance >= :hold', 'tier = :tier'];
    values[':tier'] = { S: w.limits.tier };
    for (const field of ['rpm', 'tpm'] as const) {
      const value = w.limits[field];
      if (value === undefined) conditions.push(`attribute_not_exists(${field})`);
      else {
        conditions.push(`${field} = :l${field}`);
        values[`:l${field}`] = num(value);
      }
    }
    let update: string;
    if (w.believed.window === minute) {
      conditions.push('win = :m', 'preq = :preq', 'ptok = :ptok');
      values[':preq'] = num(w.believed.prevRequests);
      values[':ptok'] = num(w.believed.prevTokens);
      if (w.maxRequestsBefore !== undefined) {
        conditions.push('req <= :maxReq');
        values[':maxReq'] = num(w.maxRequestsBefore);
      }
      if (w.maxTokensBefore !== undefined) {
        conditions.push('tok <= :maxTok');
        values[':maxTok'] = num(w.maxTokensBefore);
      }
      update = 'SET req = req + :one, tok = tok + :tok, balance = balance - :hold';
    } else if (w.believed.window === minute - 1) {
      conditions.push('win = :prevMinute');
      values[':prevMinute'] = num(minute - 1);
      if (w.maxPrevRequests !== undefined) {
        conditions.push('req <= :maxPrevReq');
        values[':maxPrevReq'] = num(w.maxPrevRequests);
      }
      if (w.maxPrevTokens !== undefined) {
        conditions.push('tok <= :maxPrevTok');
        values[':maxPrevTok'] = num(w.maxPrevTokens);
      }
      update = 'SET preq = req, ptok = tok, req = :one, tok = :tok, win = :m, balance = balance - :hold';
    } else {
      conditions.push('win < :prevMinute');
      values[':prevMinute'] = num(minute - 1);
      values[':zero'] = num(0);
      update = 'SET preq = :zero, ptok = :zero, req = :one, tok = :tok, win = :m, balance = balance - :hold';
    }
    try {
      const out = await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { account_id: { S: w.accountId } },
          UpdateExpression: update,
          ConditionExpression: conditions.join(' AND '),
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { ok: true, account: accountFromItem(out.Attributes!) };
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        return { ok: false, account: err.Item ? accountFromItem(err.Item) : undefined };
      }
      throw err;
    }
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
      try {
        await this.client.send(
          new TransactWriteItemsCommand({
            TransactItems: [
              {
                Put: {
                  TableName: this.usageTable,
                  Item: ledgerToItem(s.ledger),
                  ConditionExpression: 'attribute_not_exists(sk)',
                },
              },
              {
                Update: {
                  TableName: this.tableName,
                  Key: { account_id: { S: s.accountId } },
                  UpdateExpression: update,
                  ConditionExpression: condition,
                  ExpressionAttributeValues: values,
                  ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
                },
              },
            ],
          }),
        );
        return true;
      } catch (err) {
        if (!(err instanceof TransactionCanceledException)) throw err;
        const [ledger, account] = err.CancellationReasons ?? [];
        if (ledger?.Code === 'ConditionalCheckFailed') return false;
        if (account?.Code !== 'ConditionalCheckFailed' || !account.Item) throw err;
        sameWindow = Number(account.Item.win?.N ?? 0) === s.admittedWindow;
      }
    }
    throw new Error(`settlement of ${s.ledger.id} did not converge on the account's window`);
  }

  /** Adds credits once per reference: the ledger item and the balance change are one transaction. */
  async topUp(accountId: string, amountMicroUsd: number, reference: string, nowMs = Date.now()): Promise<'added' | 'duplicate' | 'no-account'> {
    try {
      await this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.usageTable,
                Item: ledgerToItem({ accountId, kind: 'topup', atMs: nowMs, id: reference, amountMicroUsd }),
                ConditionExpression: 'attribute_not_exists(sk)',
              },
            },
            {
              Update: {
                TableName: this.tableName,
                Key: { account_id: { S: accountId } },
                UpdateExpression: 'SET balance = balance + :amount',
                ConditionExpression: 'attribute_exists(account_id)',
                ExpressionAttributeValues: { ':amount': num(amountMicroUsd) },
              },
            },
          ],
        }),
      );
      return 'added';
    } catch (err) {
      if (!(err instanceof TransactionCanceledException)) throw err;
      const [ledger, account] = err.CancellationReasons ?? [];
      if (account?.Code === 'ConditionalCheckFailed') return 'no-account';
      if (ledger?.Code === 'ConditionalCheckFailed') return 'duplicate';
      throw err;
    }
  }
}

export { WINDOW_MS };
