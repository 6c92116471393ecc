import { startDynamoLocal } from '../../lambda/entry/local-server';

/** One in-memory DynamoDB Local for the whole run, on a free loopback port; tests read ITAPI_TEST_DYNAMODB_ENDPOINT. */
export default async function globalSetup(): Promise<void> {
  // Node 20 here, 24 in Lambda: the SDK's notice about future Node versions is noise in test output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const { child, endpoint } = await startDynamoLocal();
  (globalThis as { __DYNAMODB_LOCAL__?: unknown }).__DYNAMODB_LOCAL__ = child;
  process.env.ITAPI_TEST_DYNAMODB_ENDPOINT = endpoint;
}
