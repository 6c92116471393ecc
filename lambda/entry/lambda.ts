import type { APIGatewayProxyEvent, LambdaFunctionURLEvent } from 'aws-lambda';
import { loadCatalog } from '../catalog';
import { internalError, invalidRequest } from '../contract/errors';
import { describeError } from '../observability/log';
import { join } from 'node:path';
import { sqsSettlementQueue } from '../money/settlement-queue';
import { loadTokenizersWhenAsked, warmWantedTokenizers } from '../money/tokens';
import { sqsAlertOutbox } from '../alerts/balance-alerts';
import { emfMetrics } from '../observability/metrics';
import { createGateway } from '../runtime';
import { secretsManagerProviderKeys } from '../secrets/provider-keys';
import { createDynamoClient } from '../store/client';
import { responsesTtlDaysFromEnv } from '../store/responses';
import { tableNamesFromEnv } from '../store/tables';
import { requestFromEvent, streamingRuntime, writeResponse } from './lambda-http';

/*
 * The chat function: Function URL (payload 2.0) and API Gateway REST (payload 1.0, STREAM mode)
 * events into the one Hono app, and its Response streamed back through the runtime's
 * `awslambda.streamifyResponse`, taken as it is (never replaced). Settlement and metrics run
 * after the client has its last byte; the handler awaits them (`background.drain()`), since on
 * Node.js 24 Lambda no longer waits for promises left pending once the handler settles.
 *
 * Hono 5 drops `hono/aws-lambda` for a separate `@hono/aws-lambda` package (not yet on npm as
 * of this writing). This entry needs neither: it converts events itself (lambda-http.ts). When
 * moving to Hono 5, port the admin function's `handle` (entry/admin-lambda.ts) to
 * `@hono/aws-lambda` and keep this entry as it is, unless that package lets a handler await work
 * after the stream ends and cancels the body when the client goes away, as this one does.
 */

const runtime = streamingRuntime();

// Nothing the first answer can do without is loaded at init (docs/BENCHMARKS.md, "Cold start"): the
// tokenizers load after an answer that asked for one has left, inside that invocation; until then
// counts are UTF-8 byte counts, never below the token count.
loadTokenizersWhenAsked();

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
  // The console is a file of its own beside index.js (lib/itapi-chat-function.ts), read on its first request only.
  loadConsole: () => import(process.env.ITAPI_CONSOLE_MODULE || join(__dirname, 'console.js')),
  responsesTtlDays: responsesTtlDaysFromEnv(),
  // Fired low-balance alerts go to a queue the sweeper function delivers from (public https only).
  alerts: { allowPrivateWebhooks: false, outbox: process.env.ITAPI_ALERT_QUEUE_URL ? sqsAlertOutbox(process.env.ITAPI_ALERT_QUEUE_URL) : undefined },
  warmTokenizerAtStart: false,
});

export const handler = runtime.streamifyResponse(async (event, responseStream, context) => {
  try {
    let request: Request;
    let body: Buffer | undefined;
    try {
      ({ request, body } = requestFromEvent(event as LambdaFunctionURLEvent | APIGatewayProxyEvent));
    } catch (err) {
      await writeResponse(runtime, responseStream, errorAnswer(invalidRequest('The HTTP request could not be read.', null, 'invalid_request').toBody(), 400));
      gateway.log.error('event_unreadable', describeError(err));
      return;
    }
    // `body`: a JSON API request's bytes, handed beside its Request (lambda-http.ts).
    const response = await gateway.app.fetch(request, { event, context, body });
    await writeResponse(runtime, responseStream, response).catch((err) => gateway.log.info('client_stream_failed', describeError(err)));
  } catch (err) {
    gateway.log.error('handler_failed', describeError(err));
    if (!responseStream.writableEnded && !responseStream.destroyed) {
      await writeResponse(runtime, responseStream, errorAnswer(internalError(err).toBody(), 500)).catch(() => undefined);
    }
  } finally {
    await gateway.background.drain();
    // After the settlement: the client has its last byte, and nothing else is in flight to stall.
    await warmWantedTokenizers();
  }
});

function errorAnswer(body: unknown, status: number): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}
