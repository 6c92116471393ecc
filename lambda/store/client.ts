import { leanDynamo, type Dynamo, type DynamoOptions } from './dynamo';

/**
 * The one DynamoDB client of a process (store/dynamo.ts). With an endpoint (local mode, tests) it
 * gets a static region and credentials, so nothing ever probes the instance metadata address; in
 * Lambda it signs with the function's own credentials from its environment.
 */
export function createDynamoClient(endpoint?: string, extra: DynamoOptions = {}): Dynamo {
  if (!endpoint) return leanDynamo(extra);
  return leanDynamo({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, ...extra });
}
