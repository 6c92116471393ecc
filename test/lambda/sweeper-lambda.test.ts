import { type Dynamo } from '../../lambda/store/dynamo';
import { parseCatalog } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { requestSettlement } from '../../lambda/money/settlement';
import { createStores, type Stores } from '../../lambda/runtime';
import { holdToItem } from '../../lambda/store/holds';
import type { KeyRecord } from '../../lambda/store/keys';
import { tableEnv, type TableNames } from '../../lambda/store/tables';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fundedAccount } from '../support/accounts';
import { createTestTables, testDynamoEndpoint } from '../support/dynamo';
import { chatAdmission, completed, moneyOver } from '../support/money';

/**
 * The sweeper function (lambda/entry/sweeper-lambda.ts) as Lambda invokes it: the schedule, the
 * settlement queue (SQS) and the holds table's stream, against DynamoDB Local.
 */

type Handler = (event: unknown) => Promise<{ batchItemFailures: Array<{ itemIdentifier: string }> } | void>;

const model = parseCatalog(DEFAULT_CATALOG, 'test').get('gpt-4o-mini')!;
let tables: TableNames;
let client: Dynamo;
let stores: Stores;
let handler: Handler;
let key: KeyRecord;
/** A loopback SNS stand-in (the SDK speaks the query protocol: form bodies, XML answers). */
let sns: Server;
const snsCalls: URLSearchParams[] = [];
let snsPublishStatus = 200;
let snsSubscribeStatus = 200;
const TOPIC_ARN = 'arn:aws:sns:us-east-1:123456789012:itapi-alerts';
const ALERT_QUEUE_ARN = 'arn:aws:sqs:us-east-1:123456789012:itapi-alerts';
const CREDITS = 1_000_000;
const request = parseChatCompletionRequest({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }], max_tokens: 100 });

beforeAll(async () => {
  const made = await createTestTables();
  tables = made.tables;
  client = made.client;
  stores = createStores(made.client, made.tables);
  await stores.tiers.seed();
  sns = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(parts).toString('utf8'));
      snsCalls.push(form);
      const action = form.get('Action');
      const ns = 'xmlns="http://sns.amazonaws.com/doc/2010-03-31/"';
      const failWith = action === 'Publish' ? snsPublishStatus : action === 'Subscribe' ? snsSubscribeStatus : 200;
      if (failWith !== 200) {
        const [type, code] = failWith >= 500 ? ['Receiver', 'InternalError'] : ['Sender', 'InvalidParameter'];
        res.writeHead(failWith, { 'content-type': 'text/xml' });
        res.end(`<ErrorResponse ${ns}><Error><Type>${type}</Type><Code>${code}</Code><Message>refused</Message></Error><RequestId>r</RequestId></ErrorResponse>`);
        return;
      }
      const result = action === 'Subscribe' ? '<SubscriptionArn>pending confirmation</SubscriptionArn>' : '<MessageId>msg-1</MessageId>';
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(`<${action}Response ${ns}><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></${action}Response>`);
    });
  });
  await new Promise<void>((resolve) => sns.listen(0, '127.0.0.1', resolve));
  Object.assign(process.env, {
    ITAPI_SNS_ENDPOINT: `http://127.0.0.1:${(sns.address() as AddressInfo).port}`,
    ITAPI_ALERT_TOPIC_ARN: TOPIC_ARN,
    ITAPI_ALERT_QUEUE_ARN: ALERT_QUEUE_ARN,
    ITAPI_DYNAMODB_ENDPOINT: testDynamoEndpoint(),
    ...tableEnv(tables),
    ITAPI_SWEEP_GRACE_S: '0.05',
  });
  jest.isolateModules(() => {
    handler = (require('../../lambda/entry/sweeper-lambda') as { handler: Handler }).handler;
  });
});

afterAll(async () => {
  sns.closeAllConnections();
  await new Promise((resolve) => sns.close(resolve));
});

async function account(): Promise<string> {
  const funded = await fundedAccount(stores, { tier: 'enterprise', creditsMicroUsd: CREDITS, rpm: 1000, tpm: 1_000_000, createdAtMs: 0, storeKey: false });
  key = funded.record;
  return funded.accountId;
}

async function expectBooks(accountId: string) {
  const a = (await stores.accounts.get(accountId))!;
  const ledger = await stores.usage.all(accountId);
  expect(a.balanceMicroUsd).toBe(ledger.reduce((s, i) => s + i.amountMicroUsd, 0));
  expect(a).toMatchObject({ heldMicroUsd: 0, inFlight: 0 });
  expect(await stores.holds.ofAccount(accountId)).toEqual([]);
  return ledger.filter((i) => i.kind === 'request');
}

it('sweeps holds past their deadline on the schedule', async () => {
  const id = await account();
  await moneyOver(stores, tables, Date.now, { maxRequestMs: 1 }).admission.admit(chatAdmission('req_sched', key, model, request, Date.now() - 1000));
  await handler({ source: 'aws.events', 'detail-type': 'Scheduled Event' });
  const [item] = await expectBooks(id);
  expect(item).toMatchObject({ id: 'req_sched', status: 'abandoned' });
});

it('applies queued settlements once each, and hands back the ones it cannot read', async () => {
  const id = await account();
  const admitted = await moneyOver(stores, tables).admission.admit(chatAdmission('req_queued', key, model, request, Date.now()));
  const [hold] = await stores.holds.ofAccount(id);
  const write = requestSettlement(hold, model, completed({ prompt_tokens: 8, completion_tokens: 40, total_tokens: 48 }), tables.keys);
  const body = JSON.stringify(write);
  const result = await handler({
    Records: [
      { eventSource: 'aws:sqs', messageId: 'm1', body },
      { eventSource: 'aws:sqs', messageId: 'm2', body }, // delivered twice, as SQS may
      { eventSource: 'aws:sqs', messageId: 'm3', body: '{not json' },
    ],
  });
  expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: 'm3' }] });
  const [item] = await expectBooks(id);
  expect(item).toMatchObject({ id: 'req_queued', status: 'completed', completionTokens: 40 });
  // The request's own settlement, arriving late, changes nothing.
  await admitted.settle(completed({ prompt_tokens: 8, completion_tokens: 40, total_tokens: 48 }));
  expect(await expectBooks(id)).toHaveLength(1);
});

it('settles a hold the table’s TTL removed, from the stream’s old image, once', async () => {
  const id = await account();
  await moneyOver(stores, tables).admission.admit(chatAdmission('req_ttl', key, model, request, Date.now()));
  const [hold] = await stores.holds.ofAccount(id);
  // What TTL does: the item vanishes, with nothing settled.
  await client.call('DeleteItem', { TableName: tables.holds, Key: { request_id: { S: hold.requestId } } });
  const record = (eventID: string, principalId: string) => ({
    eventSource: 'aws:dynamodb',
    eventName: 'REMOVE',
    eventID,
    userIdentity: { type: 'Service', principalId },
    dynamodb: { OldImage: holdToItem(hold), SequenceNumber: eventID },
  });
  const result = await handler({ Records: [record('1', 'dynamodb.amazonaws.com'), record('2', 'dynamodb.amazonaws.com'), record('3', 'someone-else')] });
  expect(result).toEqual({ batchItemFailures: [] });
  const [item] = await expectBooks(id);
  expect(item).toMatchObject({ id: 'req_ttl', status: 'abandoned', amountMicroUsd: -hold.promptMicroUsd });
  expect((await stores.accounts.get(id))!.balanceMicroUsd).toBe(CREDITS - hold.promptMicroUsd);
});

describe('late settlements (issue 17)', () => {
  const usage = { prompt_tokens: 8, completion_tokens: 60, total_tokens: 68 };

  it('applies a queued settlement redelivered after the sweep as one late_settlement item, however often SQS delivers it', async () => {
    const id = await account();
    // The request's instance could not write its settlement and queued it; meanwhile its hold went past deadline and grace.
    await moneyOver(stores, tables, Date.now, { maxRequestMs: 1 }).admission.admit(chatAdmission('req_late', key, model, request, Date.now() - 1000));
    const [hold] = await stores.holds.ofAccount(id);
    const write = requestSettlement(hold, model, completed(usage), tables.keys);
    await handler({ source: 'aws.events', 'detail-type': 'Scheduled Event' });
    const [abandoned] = await expectBooks(id);
    expect(abandoned).toMatchObject({ id: 'req_late', status: 'abandoned', amountMicroUsd: -hold.promptMicroUsd });

    // The visibility timeout passes: SQS delivers the settlement, twice in one batch and once more later.
    const body = JSON.stringify(write);
    const sqs = (messageId: string) => ({ eventSource: 'aws:sqs', messageId, body });
    expect(await handler({ Records: [sqs('a'), sqs('b')] })).toEqual({ batchItemFailures: [] });
    expect(await handler({ Records: [sqs('c')] })).toEqual({ batchItemFailures: [] });

    const items = await expectBooks(id);
    expect(items.map((i) => i.status).sort()).toEqual(['abandoned', 'late_settlement']);
    const late = items.find((i) => i.status === 'late_settlement')!;
    expect(late).toMatchObject({ id: 'req_late#late', settles: 'req_late', completionTokens: 60 });
    // Together they charge exactly what the settlement charges, to the micro-dollar.
    expect(abandoned.amountMicroUsd + late.amountMicroUsd).toBe(-write.costMicroUsd);
    expect(late.amountMicroUsd).toBe(-(write.costMicroUsd - hold.promptMicroUsd));
    expect((await stores.accounts.get(id))!.balanceMicroUsd).toBe(CREDITS - write.costMicroUsd);
  });

  it('refunds through a late_settlement when the request cost less than the sweep charged', async () => {
    const id = await account();
    const admitted = await moneyOver(stores, tables, Date.now, { maxRequestMs: 1 }).admission.admit(chatAdmission('req_refund', key, model, request, Date.now() - 1000));
    const [hold] = await stores.holds.ofAccount(id);
    await handler({ source: 'aws.events', 'detail-type': 'Scheduled Event' });
    // The request's own settlement, after the sweep: the upstream had failed before answering (nothing billable).
    await admitted.settle({ status: 'failed', httpStatus: 502, completionText: '', latencyMs: 1, stream: false });
    await admitted.settle({ status: 'failed', httpStatus: 502, completionText: '', latencyMs: 1, stream: false });
    const items = await expectBooks(id);
    expect(items).toHaveLength(2);
    expect(items.find((i) => i.status === 'late_settlement')).toMatchObject({ amountMicroUsd: hold.promptMicroUsd });
    expect((await stores.accounts.get(id))!.balanceMicroUsd).toBe(CREDITS);
  });

  it('settles a TTL-removed hold for its prompt plus the output it checkpointed', async () => {
    const id = await account();
    const admitted = await moneyOver(stores, tables).admission.admit(chatAdmission('req_ttl_out', key, model, { ...request, stream: true }, Date.now()));
    await admitted.checkpoint!(30);
    await admitted.checkpoint!(20); // only upward
    const [hold] = await stores.holds.ofAccount(id);
    expect(hold).toMatchObject({ outputTokens: 30, outputMicroUsd: Math.ceil((30 * model.price.outputPerToken) / 1000) });
    await client.call('DeleteItem', { TableName: tables.holds, Key: { request_id: { S: hold.requestId } } });
    const record = { eventSource: 'aws:dynamodb', eventName: 'REMOVE', eventID: 'x', userIdentity: { type: 'Service', principalId: 'dynamodb.amazonaws.com' }, dynamodb: { OldImage: holdToItem(hold), SequenceNumber: 'x' } };
    expect(await handler({ Records: [record] })).toEqual({ batchItemFailures: [] });
    const [item] = await expectBooks(id);
    expect(item).toMatchObject({ status: 'abandoned', completionTokens: 30, amountMicroUsd: -(hold.promptMicroUsd + hold.outputMicroUsd!) });
  });
});

describe('the daily reconciliation (issue 17)', () => {
  it('reports an account whose held has no hold item behind it (a TTL removal whose stream record was lost)', async () => {
    const healthy = await account();
    await moneyOver(stores, tables).admission.admit(chatAdmission('req_healthy', key, model, request, Date.now()));
    const broken = await account();
    await moneyOver(stores, tables).admission.admit(chatAdmission('req_lost', key, model, request, Date.now()));
    const [lost] = await stores.holds.ofAccount(broken);
    await client.call('DeleteItem', { TableName: tables.holds, Key: { request_id: { S: lost.requestId } } });

    const lines: string[] = [];
    const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (lines.push(String(chunk)), true));
    try {
      await handler({ action: 'reconcile' });
    } finally {
      write.mockRestore();
    }
    const mismatches = lines.filter((l) => l.includes('"held_mismatch"')).map((l) => JSON.parse(l));
    expect(mismatches).toEqual([expect.objectContaining({ account_id: broken, held_micro_usd: lost.holdMicroUsd, in_flight: 1, hold_items_micro_usd: 0, hold_items: 0 })]);
    expect(mismatches.some((m) => m.account_id === healthy)).toBe(false);
    // The metric the alarm reads: the count of mismatched accounts, on every run.
    const emf = lines.filter((l) => l.includes('HoldsMismatchedAccounts')).map((l) => JSON.parse(l));
    expect(emf.at(-1).HoldsMismatchedAccounts).toBeGreaterThanOrEqual(1);
  });
});

describe('e-mail low-balance alerts through SNS (issue 21)', () => {
  const queued = (id: string, eventId: string) => ({
    eventSource: 'aws:sqs',
    eventSourceARN: ALERT_QUEUE_ARN,
    messageId: `m_${eventId}`,
    body: JSON.stringify({ id: eventId, event: { type: 'balance.low', account_id: id, balance_micro_usd: 400_000, threshold_micro_usd: 2_500_000, at: '2026-12-05T21:00:00.000Z' } }),
  });

  it('subscribes the address with a filter on the account and publishes the alert with account_id as an attribute', async () => {
    const id = await account();
    await stores.accounts.setBalanceAlert(id, { thresholdMicroUsd: 2_500_000, email: 'billing@example.com' });
    snsCalls.length = 0;
    const result = await handler({ Records: [queued(id, 'evt_mail1')] });
    expect(result).toEqual({ batchItemFailures: [] });
    expect(snsCalls.map((c) => c.get('Action'))).toEqual(['Subscribe', 'Publish']);
    const [subscribe, publish] = snsCalls;
    expect(subscribe.get('TopicArn')).toBe(TOPIC_ARN);
    expect(subscribe.get('Protocol')).toBe('email');
    expect(subscribe.get('Endpoint')).toBe('billing@example.com');
    const attrs = new Map<string, string>();
    for (let n = 1; subscribe.get(`Attributes.entry.${n}.key`); n++) attrs.set(subscribe.get(`Attributes.entry.${n}.key`)!, subscribe.get(`Attributes.entry.${n}.value`)!);
    expect(JSON.parse(attrs.get('FilterPolicy')!)).toEqual({ account_id: [id] });
    expect(attrs.get('FilterPolicyScope')).toBe('MessageAttributes');

    expect(publish.get('TopicArn')).toBe(TOPIC_ARN);
    const message = publish.get('Message')!;
    expect(message).toContain('$0.40');
    expect(message).toContain('$2.50');
    expect(JSON.parse(message.split('\n').at(-1)!)).toMatchObject({ type: 'balance.low', account_id: id, balance_micro_usd: 400_000, threshold_micro_usd: 2_500_000 });
    const messageAttrs = new Map<string, string>();
    for (let n = 1; publish.get(`MessageAttributes.entry.${n}.Name`); n++) {
      expect(publish.get(`MessageAttributes.entry.${n}.Value.DataType`)).toBe('String');
      messageAttrs.set(publish.get(`MessageAttributes.entry.${n}.Name`)!, publish.get(`MessageAttributes.entry.${n}.Value.StringValue`)!);
    }
    expect(Object.fromEntries(messageAttrs)).toEqual({ account_id: id, event_type: 'balance.low', event_id: 'evt_mail1' });
  });

  it('publishes nothing for an account without an address, and hands back an alert SNS refused', async () => {
    const quiet = await account();
    await stores.accounts.setBalanceAlert(quiet, { thresholdMicroUsd: 2_500_000, webhookUrl: undefined, email: undefined });
    const mailed = await account();
    await stores.accounts.setBalanceAlert(mailed, { thresholdMicroUsd: 2_500_000, email: 'ops@example.com' });
    snsCalls.length = 0;
    snsPublishStatus = 400;
    try {
      const result = await handler({ Records: [queued(quiet, 'evt_quiet'), queued(mailed, 'evt_refused')] });
      expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: 'm_evt_refused' }] });
    } finally {
      snsPublishStatus = 200;
    }
    // Only the account with an address reached SNS: three attempts within the receive, each subscribing and publishing.
    expect(snsCalls.every((c) => c.get('Endpoint') === null || c.get('Endpoint') === 'ops@example.com')).toBe(true);
    expect(snsCalls.filter((c) => c.get('Action') === 'Publish')).toHaveLength(3);
  }, 30_000);

  describe('an address saved in the console', () => {
    const subscription = (id: string, email: string, messageId: string) => ({
      eventSource: 'aws:sqs' as const,
      eventSourceARN: ALERT_QUEUE_ARN,
      messageId,
      body: JSON.stringify({ type: 'subscribe', account_id: id, email }),
    });
    const filterOf = (call: URLSearchParams) => {
      const attrs = new Map<string, string>();
      for (let n = 1; call.get(`Attributes.entry.${n}.key`); n++) attrs.set(call.get(`Attributes.entry.${n}.key`)!, call.get(`Attributes.entry.${n}.value`)!);
      return { policy: JSON.parse(attrs.get('FilterPolicy')!), scope: attrs.get('FilterPolicyScope') };
    };

    it('is subscribed at once with the account filter, and nothing is published', async () => {
      snsCalls.length = 0;
      const result = await handler({ Records: [subscription('acct_saved', 'new@example.com', 'm_sub1')] });
      expect(result).toEqual({ batchItemFailures: [] });
      expect(snsCalls.map((c) => c.get('Action'))).toEqual(['Subscribe']);
      expect(snsCalls[0].get('TopicArn')).toBe(TOPIC_ARN);
      expect(snsCalls[0].get('Protocol')).toBe('email');
      expect(snsCalls[0].get('Endpoint')).toBe('new@example.com');
      expect(filterOf(snsCalls[0])).toEqual({ policy: { account_id: ['acct_saved'] }, scope: 'MessageAttributes' });
    });

    it('is handed back when SNS fails, and dropped when SNS refuses the address', async () => {
      snsCalls.length = 0;
      snsSubscribeStatus = 500;
      try {
        const failed = await handler({ Records: [subscription('acct_a', 'a@example.com', 'm_sub_500')] });
        expect(failed).toEqual({ batchItemFailures: [{ itemIdentifier: 'm_sub_500' }] });
        snsSubscribeStatus = 400;
        const refused = await handler({ Records: [subscription('acct_b', 'b@example.com', 'm_sub_400')] });
        expect(refused).toEqual({ batchItemFailures: [] });
      } finally {
        snsSubscribeStatus = 200;
      }
      expect(snsCalls.some((c) => c.get('Endpoint') === 'a@example.com')).toBe(true);
      expect(snsCalls.filter((c) => c.get('Endpoint') === 'b@example.com')).toHaveLength(1);
      expect(snsCalls.every((c) => c.get('Action') === 'Subscribe')).toBe(true);
    }, 30_000);

    it('hands back a record it cannot read without failing the others', async () => {
      snsCalls.length = 0;
      const result = await handler({ Records: [{ ...subscription('x', 'x@example.com', 'm_bad'), body: '{not json' }, subscription('acct_c', 'c@example.com', 'm_ok')] });
      expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: 'm_bad' }] });
      expect(snsCalls.map((c) => c.get('Endpoint'))).toEqual(['c@example.com']);
    });
  });
});
