import type { AttributeValue, WriteRequest } from '@aws-sdk/client-dynamodb';
import { type Dynamo } from './dynamo';
import { promisify } from 'node:util';
import type { ResponseObject, StoredItem } from '../contract/responses';

/** A stored response: what `GET /v1/responses/{id}` answers, its input items and the conversation before them. */
export interface StoredResponse {
  response: ResponseObject;
  /** This request's own input items, each with an id, in order (`GET …/input_items`). */
  input: StoredItem[];
  /** What came before this request's input (earlier inputs and outputs), for a later `previous_response_id`. */
  context: StoredItem[];
  /**
   * Output reasoning item id → its `encrypted_content` (a Claude thinking signature or redacted
   * block), for the items the answer showed without it (no `include`): a later
   * `previous_response_id` or `item_reference` gives the provider its thinking back unchanged.
   */
  reasoning?: Record<string, string>;
}

/** Stored responses live this long unless told otherwise (ITAPI_RESPONSES_TTL_DAYS), as OpenAI keeps them. */
export const DEFAULT_RESPONSES_TTL_DAYS = 30;

/**
 * Bytes of compressed record per item: DynamoDB's item limit is 400 KB including attribute
 * names and the other attributes, so a part leaves room for them.
 */
export const PART_BYTES = 350_000;

/** BatchWriteItem takes at most 25 requests per call. */
const BATCH_SIZE = 25;
/** Retries of items DynamoDB left unprocessed (throttling) before the write counts as failed. */
const UNPROCESSED_RETRY_DELAYS_MS = [20, 80, 250];

// node:zlib loads on the first stored response, not at init (the chat function's cold start).
let zlibAsync: { gzip: (data: Buffer, options: import('node:zlib').ZlibOptions) => Promise<Buffer>; gunzip: (data: Buffer) => Promise<Buffer>; bestSpeed: number } | undefined;
function zlib(): NonNullable<typeof zlibAsync> {
  if (!zlibAsync) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a lazy load
    const { gzip, gunzip, constants } = require('node:zlib') as typeof import('node:zlib');
    zlibAsync = { gzip: promisify(gzip), gunzip: promisify(gunzip), bestSpeed: constants.Z_BEST_SPEED };
  }
  return zlibAsync;
}

type Item = Record<string, AttributeValue>;

/** The TTL in days from the environment (ITAPI_RESPONSES_TTL_DAYS), else 30. */
export function responsesTtlDaysFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.ITAPI_RESPONSES_TTL_DAYS;
  if (text === undefined || text === '') return DEFAULT_RESPONSES_TTL_DAYS;
  const days = Number(text);
  if (!Number.isFinite(days) || days <= 0) throw new Error(`ITAPI_RESPONSES_TTL_DAYS must be a positive number of days, got '${text}'`);
  return days;
}

/**
 * The responses table: key `response_id` + `part` (0, 1, …), TTL `expires_at`. A record is one
 * gzip-compressed JSON document split into parts of at most PART_BYTES, so one response is one
 * PutItem, or one BatchWriteItem per 25 parts when it is large. Part 0 carries the owner
 * (`account_id`) and the part count; a record whose parts are not all there reads as absent.
 */
export class ResponsesStore {
  private readonly ttlMs: number;

  constructor(
    private readonly client: Dynamo,
    readonly tableName: string,
    ttlDays: number = DEFAULT_RESPONSES_TTL_DAYS,
    private readonly now: () => number = Date.now,
  ) {
    if (!(ttlDays > 0)) throw new Error(`responses TTL must be a positive number of days, got ${ttlDays}`);
    this.ttlMs = Math.round(ttlDays * 24 * 3600 * 1000);
  }

  /** Writes a response (compression runs off the event loop, in libuv's thread pool). */
  async put(accountId: string, record: StoredResponse): Promise<void> {
    const id = record.response.id;
    // Level 1: most of the size gain for a fraction of the CPU of the default level.
    const bytes = await zlib().gzip(Buffer.from(JSON.stringify(record), 'utf8'), { level: zlib().bestSpeed });
    const parts = Math.max(1, Math.ceil(bytes.length / PART_BYTES));
    const nowMs = this.now();
    const expiresAt = { N: String(Math.floor((nowMs + this.ttlMs) / 1000)) };
    const items: Item[] = [];
    for (let part = 0; part < parts; part++) {
      const item: Item = {
        response_id: { S: id },
        part: { N: String(part) },
        account_id: { S: accountId },
        data: { B: bytes.subarray(part * PART_BYTES, (part + 1) * PART_BYTES) },
        expires_at: expiresAt,
      };
      if (part === 0) {
        item.parts = { N: String(parts) };
        item.created_at_ms = { N: String(nowMs) };
      }
      items.push(item);
    }
    if (items.length === 1) {
      await this.client.call('PutItem', { TableName: this.tableName, Item: items[0] });
      return;
    }
    const batches: WriteRequest[][] = [];
    for (let i = 0; i < items.length; i += BATCH_SIZE) batches.push(items.slice(i, i + BATCH_SIZE).map((Item) => ({ PutRequest: { Item } })));
    await Promise.all(batches.map((batch) => this.writeBatch(batch)));
  }

  /** The response, if it exists, has not expired and belongs to this account. */
  async get(accountId: string, id: string): Promise<StoredResponse | undefined> {
    const items = await this.parts(id, true);
    const head = items[0];
    if (!head || head.part?.N !== '0' || head.account_id?.S !== accountId) return undefined;
    // DynamoDB deletes expired items within days, not at once: an expired one is already gone for clients.
    if (Number(head.expires_at?.N ?? 0) * 1000 <= this.now()) return undefined;
    const count = Number(head.parts?.N ?? 1);
    if (items.length < count) return undefined;
    const bytes = Buffer.concat(items.slice(0, count).map((item) => item.data?.B ?? new Uint8Array()));
    return JSON.parse((await zlib().gunzip(bytes)).toString('utf8')) as StoredResponse;
  }

  /** Deletes every part of the response; false when there is none for this account. */
  async delete(accountId: string, id: string): Promise<boolean> {
    const items = await this.parts(id, false);
    const head = items[0];
    if (!head || head.part?.N !== '0' || head.account_id?.S !== accountId) return false;
    if (Number(head.expires_at?.N ?? 0) * 1000 <= this.now()) return false;
    const deletes: WriteRequest[] = items.map((item) => ({ DeleteRequest: { Key: { response_id: { S: id }, part: item.part! } } }));
    const batches: WriteRequest[][] = [];
    for (let i = 0; i < deletes.length; i += BATCH_SIZE) batches.push(deletes.slice(i, i + BATCH_SIZE));
    await Promise.all(batches.map((batch) => this.writeBatch(batch)));
    return true;
  }

  /** Every part of one response in part order, read consistently: a response is readable as soon as it was written. */
  private async parts(id: string, withData: boolean): Promise<Item[]> {
    // Aliases for every name: DATA and PARTS are among DynamoDB's reserved words.
    const names: Record<string, string> = { '#id': 'response_id', '#p': 'part', '#a': 'account_id', '#n': 'parts', '#e': 'expires_at' };
    if (withData) names['#d'] = 'data';
    const items: Item[] = [];
    let start: Item | undefined;
    do {
      const out = await this.client.call('Query', {
          TableName: this.tableName,
          KeyConditionExpression: '#id = :id',
          ExpressionAttributeValues: { ':id': { S: id } },
          ExpressionAttributeNames: names,
          ProjectionExpression: Object.keys(names).join(', '),
          ConsistentRead: true,
          ExclusiveStartKey: start,
        },
      );
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }

  private async writeBatch(requests: WriteRequest[]): Promise<void> {
    let pending = requests;
    for (let attempt = 0; ; attempt++) {
      const out = await this.client.call('BatchWriteItem', { RequestItems: { [this.tableName]: pending } });
      pending = out.UnprocessedItems?.[this.tableName] ?? [];
      if (pending.length === 0) return;
      const delayMs = UNPROCESSED_RETRY_DELAYS_MS[attempt];
      if (delayMs === undefined) throw new Error(`DynamoDB left ${pending.length} response parts unwritten after ${attempt + 1} attempts`);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}
