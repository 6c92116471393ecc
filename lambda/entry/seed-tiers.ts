import type { CdkCustomResourceEvent, CdkCustomResourceResponse } from 'aws-lambda';
import { createDynamoClient } from '../store/client';
import { parseTierSeeds, seedTiers } from '../store/tier-seed';

/** Resource properties the `ItapiTierSeed` construct passes (CloudFormation turns values into strings). */
interface SeedTiersProperties {
  ServiceToken: string;
  TableName: string;
  TiersJson: string;
}

const client = createDynamoClient(process.env.ITAPI_DYNAMODB_ENDPOINT);

/**
 * Custom resource handler (the `custom-resources` Provider framework's onEvent contract):
 * on Create and Update it seeds tiers that do not exist yet; on Delete it leaves the data alone.
 */
export async function handler(event: CdkCustomResourceEvent<SeedTiersProperties>): Promise<CdkCustomResourceResponse> {
  const { TableName, TiersJson } = event.ResourceProperties;
  const physicalResourceId = `itapi-tier-seed:${TableName}`;
  if (event.RequestType === 'Delete') return { PhysicalResourceId: event.PhysicalResourceId };
  const result = await seedTiers(client, TableName, parseTierSeeds(TiersJson));
  console.log(JSON.stringify({ msg: 'tiers seeded', table: TableName, ...result }));
  return { PhysicalResourceId: physicalResourceId, Data: { Created: result.created.join(','), Kept: result.kept.join(',') } };
}
