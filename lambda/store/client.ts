import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';

/**
 * Options that make each call as cheap as the SDK allows (see docs/BENCHMARKS.md): the
 * middleware stack is resolved once per command class instead of on every send (nothing on the
 * request path adds middleware per call), and two attempts at most. Every write is safe to send
 * twice: admission records its request id in the account's `holds`, settlement and top-ups put
 * their ledger item only if absent.
 */
const CHEAP_CALLS: DynamoDBClientConfig = { maxAttempts: 2, cacheMiddleware: true };

/**
 * The one DynamoDB client of a process. With an endpoint (local mode, tests) it gets a static
 * region and credentials, so the SDK never probes the instance metadata address.
 */
export function createDynamoClient(endpoint?: string, extra: DynamoDBClientConfig = {}): DynamoDBClient {
  if (!endpoint) return new DynamoDBClient({ ...CHEAP_CALLS, ...extra });
  return new DynamoDBClient({
    ...CHEAP_CALLS,
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    ...extra,
  });
}
