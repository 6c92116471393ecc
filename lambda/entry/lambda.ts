import { streamHandle } from 'hono/aws-lambda';
import { loadCatalog } from '../catalog';
import { sqsSettlementQueue } from '../money/settlement-queue';
import { emfMetrics } from '../observability/metrics';
import { createGateway } from '../runtime';
import { secretsManagerProviderKeys } from '../secrets/provider-keys';
import { createDynamoClient } from '../store/client';
import { responsesTtlDaysFromEnv } from '../store/responses';
import { tableNamesFromEnv } from '../store/tables';

type StreamingHandler = (event: unknown, responseStream: unknown, context: unknown) => Promise<void>;
declare const awslambda: { streamifyResponse(handler: StreamingHandler): StreamingHandler };

const gateway = createGateway({
  dynamo: createDynamoClient(process.env.ITAPI_DYNAMODB_ENDPOINT),
  tables: tableNamesFromEnv(),
  catalog: loadCatalog(),
  providerKeys: secretsManagerProviderKeys(process.env.ITAPI_PROVIDER_SECRET_ID ?? 'itapi/provider-keys'),
  metrics: emfMetrics(),
  corsOrigins: process.env.ITAPI_CORS_ORIGINS?.split(',').filter(Boolean),
  // The stack sets it to the function's timeout less a margin in which the settlement is written.
  maxRequestMs: process.env.ITAPI_MAX_REQUEST_S ? Number(process.env.ITAPI_MAX_REQUEST_S) * 1000 : undefined,
  settlementQueue: process.env.ITAPI_SETTLEMENT_QUEUE_URL ? sqsSettlementQueue(process.env.ITAPI_SETTLEMENT_QUEUE_URL) : undefined,
  responsesTtlDays: responsesTtlDaysFromEnv(),
});

// Hono's adapter turns Function URL (v2) and REST (v1) events into Requests and streams the
// Response. We take its inner function so that settlement, which runs after the client has its
// last byte, finishes before the invocation ends (a Lambda may freeze as soon as it returns).
const original = awslambda.streamifyResponse;
let relay: StreamingHandler | undefined;
awslambda.streamifyResponse = (handler) => (relay = handler);
try {
  streamHandle(gateway.app);
} finally {
  awslambda.streamifyResponse = original;
}
const relayHandler = relay!;

export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  try {
    await relayHandler(event, responseStream, context);
  } finally {
    await gateway.background.drain();
  }
});
