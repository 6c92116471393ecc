import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';

/**
 * The one DynamoDB client of a process. With an endpoint (local mode, tests) it gets a static
 * region and credentials, so the SDK never probes the instance metadata address.
 */
export function createDynamoClient(endpoint?: string, extra: DynamoDBClientConfig = {}): DynamoDBClient {
  if (!endpoint) return new DynamoDBClient({ maxAttempts: 2, ...extra });
  return new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 2,
    ...extra,
  });
}
