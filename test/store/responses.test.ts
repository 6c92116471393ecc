import { type Dynamo } from '../../lambda/store/dynamo';
import { randomBytes } from 'node:crypto';
import type { ResponseObject, StoredItem } from '../../lambda/contract/responses';
import { ResponseIds } from '../../lambda/responses/response-ids';
import { PART_BYTES, ResponsesStore, responsesTtlDaysFromEnv, type StoredResponse } from '../../lambda/store/responses';
import type { TableNames } from '../../lambda/store/tables';
import { createTestTables, deleteTestTables } from '../support/dynamo';

let client: Dynamo;
let tables: TableNames;
/** Commands sent, by name: the request path's cost is one write per response. */
const sent: string[] = [];

beforeAll(async () => {
  ({ client, tables } = await createTestTables());
  client.intercept((operation, _input, next) => {
    sent.push(operation);
    return next();
  });
});

afterAll(async () => {
  await deleteTestTables(client, tables);
});

function record(text: string): StoredResponse {
  const ids = new ResponseIds();
  const input: StoredItem[] = [{ id: ids.input('msg', 0), type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_text', text }] }];
  const response = {
    id: ids.responseId,
    object: 'response',
    created_at: 1,
    status: 'completed',
    model: 'm',
    output: [{ id: ids.output('msg', 0), type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'ok', annotations: [], logprobs: [] }] }],
  } as unknown as ResponseObject;
  return { response, input, context: [] };
}

async function partsInTable(id: string): Promise<number> {
  const out = await client.call('Query', { TableName: tables.responses, KeyConditionExpression: 'response_id = :id', ExpressionAttributeValues: { ':id': { S: id } }, ConsistentRead: true });
  return out.Items?.length ?? 0;
}

describe('ResponsesStore', () => {
  const store = () => new ResponsesStore(client, tables.responses);

  it('writes a small response with one PutItem and reads it back for its account only', async () => {
    const r = record('hello');
    sent.length = 0;
    await store().put('acct_a', r);
    expect(sent).toEqual(['PutItem']);
    expect(await store().get('acct_a', r.response.id)).toEqual(r);
    expect(await store().get('acct_b', r.response.id)).toBeUndefined();
    expect(await store().delete('acct_b', r.response.id)).toBe(false);
    expect(await partsInTable(r.response.id)).toBe(1);
  });

  it('splits a large response across items under the 400 KB limit in one BatchWriteItem, and reads it back whole', async () => {
    // Random bytes as base64 (1.6 MB of text) compress only to about 1.2 MB: 6 bits of entropy a character.
    const r = record(randomBytes(1_200_000).toString('base64'));
    sent.length = 0;
    await store().put('acct_a', r);
    expect(sent).toEqual(['BatchWriteItem']);
    const parts = await partsInTable(r.response.id);
    expect(parts).toBeGreaterThanOrEqual(Math.floor(1_200_000 / PART_BYTES));
    expect(await store().get('acct_a', r.response.id)).toEqual(r);
    expect(await store().delete('acct_a', r.response.id)).toBe(true);
    expect(await partsInTable(r.response.id)).toBe(0);
    expect(await store().get('acct_a', r.response.id)).toBeUndefined();
  });

  it('reads a response with a part missing as absent, never as a truncated document', async () => {
    const r = record(randomBytes(500_000).toString('base64'));
    await store().put('acct_a', r);
    await client.call('DeleteItem', { TableName: tables.responses, Key: { response_id: { S: r.response.id }, part: { N: '1' } } });
    expect(await store().get('acct_a', r.response.id)).toBeUndefined();
  });

  it('expires responses after the TTL: the item carries expires_at, and a read past it finds nothing', async () => {
    let nowMs = Date.now();
    const clocked = new ResponsesStore(client, tables.responses, 2, () => nowMs);
    const r = record('short-lived');
    await clocked.put('acct_a', r);
    const out = await client.call('Query', { TableName: tables.responses, KeyConditionExpression: 'response_id = :id', ExpressionAttributeValues: { ':id': { S: r.response.id } } });
    expect(Number(out.Items![0].expires_at.N)).toBe(Math.floor((nowMs + 2 * 86_400_000) / 1000));
    nowMs += 2 * 86_400_000 + 1000;
    expect(await clocked.get('acct_a', r.response.id)).toBeUndefined();
  });

  it('takes its TTL from ITAPI_RESPONSES_TTL_DAYS, 30 days by default', () => {
    expect(responsesTtlDaysFromEnv({})).toBe(30);
    expect(responsesTtlDaysFromEnv({ ITAPI_RESPONSES_TTL_DAYS: '7' })).toBe(7);
    expect(() => responsesTtlDaysFromEnv({ ITAPI_RESPONSES_TTL_DAYS: '0' })).toThrow(/positive/);
  });
});
