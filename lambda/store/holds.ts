import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { type Dynamo, isDynamoError } from './dynamo';

/**
 * One admitted request's hold, an item of its own from admission until settlement deletes it,
 * so that the account item stays the same size whatever the account's concurrency.
 */
export interface HoldRecord {
  requestId: string;
  accountId: string;
  keyId: string;
  /** Only for keys with caps of their own: their counters get the settlement's correction too. */
  keyHash?: string;
  model: string;
  holdMicroUsd: number;
  /** What settling it as abandoned charges: the estimated prompt's cost (never above the hold). */
  promptMicroUsd: number;
  promptTokens: number;
  /** Tokens counted against the minute's limit at admission. */
  rateTokens: number;
  /** The minute (ms / 60,000) the account's counters counted it in, and the key's when capped. */
  window: number;
  keyWindow?: number;
  /** Only for keys with a monthly spend cap: the month (see monthOf) the hold was added to. */
  spendMonth?: number;
  startedAtMs: number;
  /** When the request must have ended (ITAPI_MAX_REQUEST_S after it started). */
  deadlineMs: number;
  stream: boolean;
  /**
   * Output delivered so far, as last checkpointed by the request's instance (at least every 5 s
   * of streaming): what the sweeper charges beyond the prompt if that instance dies.
   */
  outputTokens?: number;
  /** Those tokens at the model's output price, never more than the hold less the prompt. */
  outputMicroUsd?: number;
}

/** A hold item outlives its deadline by this much at most: the sweeper settles it long before. */
export const HOLD_TTL_AFTER_DEADLINE_MS = 24 * 3600 * 1000;

type Item = Record<string, AttributeValue>;
const num = (v: number): AttributeValue => ({ N: String(v) });

export function holdToItem(h: HoldRecord): Item {
  const item: Item = {
    request_id: { S: h.requestId },
    account_id: { S: h.accountId },
    key_id: { S: h.keyId },
    model: { S: h.model },
    hold: num(h.holdMicroUsd),
    prompt_micro_usd: num(h.promptMicroUsd),
    prompt_tokens: num(h.promptTokens),
    rate_tokens: num(h.rateTokens),
    win: num(h.window),
    started_at_ms: num(h.startedAtMs),
    deadline_ms: num(h.deadlineMs),
    stream: { BOOL: h.stream },
    expires_at: num(Math.floor((h.deadlineMs + HOLD_TTL_AFTER_DEADLINE_MS) / 1000)),
  };
  if (h.keyHash) item.key_hash = { S: h.keyHash };
  if (h.keyWindow !== undefined) item.key_win = num(h.keyWindow);
  if (h.outputTokens !== undefined) item.out_tok = num(h.outputTokens);
  if (h.outputMicroUsd !== undefined) item.out_usd = num(h.outputMicroUsd);
  if (h.spendMonth !== undefined) item.spend_month = num(h.spendMonth);
  return item;
}

export function holdFromItem(item: Item): HoldRecord {
  const n = (name: string) => Number(item[name]?.N ?? 0);
  const hold: HoldRecord = {
    requestId: item.request_id.S!,
    accountId: item.account_id?.S ?? '',
    keyId: item.key_id?.S ?? '',
    model: item.model?.S ?? '',
    holdMicroUsd: n('hold'),
    promptMicroUsd: n('prompt_micro_usd'),
    promptTokens: n('prompt_tokens'),
    rateTokens: n('rate_tokens'),
    window: n('win'),
    startedAtMs: n('started_at_ms'),
    deadlineMs: n('deadline_ms'),
    stream: item.stream?.BOOL ?? false,
  };
  if (item.key_hash?.S) hold.keyHash = item.key_hash.S;
  if (item.key_win?.N !== undefined) hold.keyWindow = Number(item.key_win.N);
  if (item.out_tok?.N !== undefined) hold.outputTokens = Number(item.out_tok.N);
  if (item.out_usd?.N !== undefined) hold.outputMicroUsd = Number(item.out_usd.N);
  if (item.spend_month?.N !== undefined) hold.spendMonth = Number(item.spend_month.N);
  return hold;
}

/** The holds table, read side; holds are written and deleted in transactions with the account (accounts.ts). */
export class HoldsStore {
  constructor(
    private readonly client: Dynamo,
    readonly tableName: string,
  ) {}

  /**
   * Holds whose deadline passed before `beforeMs`, page by page. The table holds only requests in
   * flight, so a scan reads about as many items as there are requests running right now.
   */
  async *overdue(beforeMs: number, pageSize = 500): AsyncGenerator<HoldRecord[]> {
    let start: Item | undefined;
    do {
      const page = await this.client.call('Scan', {
          TableName: this.tableName,
          FilterExpression: 'deadline_ms < :before',
          ExpressionAttributeValues: { ':before': num(beforeMs) },
          ExclusiveStartKey: start,
          Limit: pageSize,
          ConsistentRead: true,
        },
      );
      const holds = (page.Items ?? []).map(holdFromItem);
      if (holds.length) yield holds;
      start = page.LastEvaluatedKey;
    } while (start);
  }

  /**
   * Records the output a request has delivered so far on its hold item (never on the account
   * item), so that the sweeper can charge it if the instance dies. Written only while the hold is
   * there with its amount, and only upward; false when the hold is gone (settled meanwhile) or
   * already records as much. One write of the small hold item: 1 write unit.
   */
  async checkpoint(hold: Pick<HoldRecord, 'requestId' | 'holdMicroUsd'>, outputTokens: number, outputMicroUsd: number, atMs = Date.now()): Promise<boolean> {
    try {
      await this.client.call('UpdateItem', {
        TableName: this.tableName,
        Key: { request_id: { S: hold.requestId } },
        UpdateExpression: 'SET out_tok = :tok, out_usd = :usd, out_at_ms = :at',
        ConditionExpression: 'attribute_exists(request_id) AND #amount = :amount AND (attribute_not_exists(out_tok) OR out_tok < :tok)',
        ExpressionAttributeNames: { '#amount': 'hold' },
        ExpressionAttributeValues: { ':tok': num(outputTokens), ':usd': num(outputMicroUsd), ':at': num(atMs), ':amount': num(hold.holdMicroUsd) },
      });
      return true;
    } catch (err) {
      if (isDynamoError(err, 'ConditionalCheckFailedException')) return false;
      throw err;
    }
  }

  /** Every account's holds, summed: amount and count (the daily reconciliation; scans the table). */
  async sums(): Promise<Map<string, { microUsd: number; count: number }>> {
    const out = new Map<string, { microUsd: number; count: number }>();
    let start: Item | undefined;
    do {
      const page = await this.client.call('Scan', {
        TableName: this.tableName,
        ProjectionExpression: 'account_id, #amount',
        ExpressionAttributeNames: { '#amount': 'hold' },
        ExclusiveStartKey: start,
        ConsistentRead: true,
      });
      for (const item of page.Items ?? []) {
        const id = item.account_id?.S ?? '';
        const sum = out.get(id) ?? { microUsd: 0, count: 0 };
        sum.microUsd += Number(item.hold?.N ?? 0);
        sum.count++;
        out.set(id, sum);
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }

  /** Every hold of one account (tests and admin checks; scans the table). */
  async ofAccount(accountId: string): Promise<HoldRecord[]> {
    const out: HoldRecord[] = [];
    let start: Item | undefined;
    do {
      const page = await this.client.call('Scan', {
          TableName: this.tableName,
          FilterExpression: 'account_id = :a',
          ExpressionAttributeValues: { ':a': { S: accountId } },
          ExclusiveStartKey: start,
          ConsistentRead: true,
        },
      );
      out.push(...(page.Items ?? []).map(holdFromItem));
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }
}
