import type { CdkCustomResourceEvent } from 'aws-lambda';
import { createDynamoClient } from '../../../lambda/store/client';

const endpoint = process.env.ITAPI_TEST_DYNAMODB_ENDPOINT!;
const table = `tiers-seed-${process.pid}-${Date.now()}`;
const dynamo = createDynamoClient(endpoint);

// The handler builds its client at load time from ITAPI_DYNAMODB_ENDPOINT.
process.env.ITAPI_DYNAMODB_ENDPOINT = endpoint;
const { handler } = require('../../../lambda/entry/seed-tiers') as typeof import('../../../lambda/entry/seed-tiers');

const DEFAULTS = [
  { id: 'free', rpm: 10, tpm: 20_000, description: 'Free' },
  { id: 'pro', rpm: 300, tpm: 500_000, models: ['gpt-4o', 'gpt-4o-mini'] },
  { id: 'enterprise', rpm: 0, tpm: 0 },
];

function event(type: 'Create' | 'Update' | 'Delete', tiers: unknown[]): CdkCustomResourceEvent<{ ServiceToken: string; TableName: string; TiersJson: string }> {
  const base = {
    ServiceToken: 'arn:aws:lambda:us-east-1:111122223333:function:x',
    ResponseURL: 'https://example.invalid',
    StackId: 'stack',
    RequestId: 'r',
    LogicalResourceId: 'TierSeed',
    ResourceType: 'Custom::ItapiTierSeed',
    ResourceProperties: { ServiceToken: 'x', TableName: table, TiersJson: JSON.stringify(tiers) },
  };
  if (type === 'Create') return { ...base, RequestType: 'Create' };
  if (type === 'Update') return { ...base, RequestType: 'Update', PhysicalResourceId: `itapi-tier-seed:${table}`, OldResourceProperties: base.ResourceProperties };
  return { ...base, RequestType: 'Delete', PhysicalResourceId: `itapi-tier-seed:${table}` };
}

async function tier(id: string): Promise<Record<string, unknown> | undefined> {
  const out = await dynamo.call('GetItem', { TableName: table, Key: { tier_id: { S: id } }, ConsistentRead: true });
  return out.Item;
}

beforeAll(async () => {
  await dynamo.call('CreateTable', {
      TableName: table,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'tier_id', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'tier_id', KeyType: 'HASH' }],
    },
  );
});

afterAll(() => dynamo.destroy());

describe('seed-tiers custom resource handler', () => {
  it('writes each tier with rpm, tpm, optional models and description on Create', async () => {
    const out = await handler(event('Create', DEFAULTS));
    expect(out.PhysicalResourceId).toBe(`itapi-tier-seed:${table}`);
    expect(out.Data).toEqual({ Created: 'free,pro,enterprise', Kept: '' });
    expect(await tier('free')).toEqual({ tier_id: { S: 'free' }, rpm: { N: '10' }, tpm: { N: '20000' }, description: { S: 'Free' } });
    expect((await tier('pro'))?.models).toEqual({ L: [{ S: 'gpt-4o' }, { S: 'gpt-4o-mini' }] });
    expect(await tier('enterprise')).toMatchObject({ rpm: { N: '0' }, tpm: { N: '0' } });
  });

  it('never overwrites a tier an operator changed, and adds new tiers on Update', async () => {
    await dynamo.call('UpdateItem', {
        TableName: table,
        Key: { tier_id: { S: 'free' } },
        UpdateExpression: 'SET rpm = :r',
        ExpressionAttributeValues: { ':r': { N: '25' } },
      },
    );
    const out = await handler(event('Update', [...DEFAULTS, { id: 'team', rpm: 120, tpm: 250_000 }]));
    expect(out.Data).toEqual({ Created: 'team', Kept: 'free,pro,enterprise' });
    expect((await tier('free'))?.rpm).toEqual({ N: '25' });
    expect((await tier('team'))?.tpm).toEqual({ N: '250000' });
  });

  it('leaves the data in place on Delete', async () => {
    const out = await handler(event('Delete', DEFAULTS));
    expect(out.PhysicalResourceId).toBe(`itapi-tier-seed:${table}`);
    expect(await tier('free')).toBeDefined();
  });

  it('fails the deploy on malformed tiers instead of writing half of them', async () => {
    await expect(handler(event('Update', [{ id: 'bad', rpm: -1, tpm: 5 }]))).rejects.toThrow(/tiers\[0\]/);
    expect(await tier('bad')).toBeUndefined();
  });
});
