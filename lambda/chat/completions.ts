import { GatewayError, upstreamError } from '../contract/errors';
import type { ChatCompletion } from '../contract/openai';
import { parseChatCompletionRequest } from '../contract/request';
import { SSE_DONE, sseData, sseError, sseText } from '../contract/sse';
import type { KeyRecord } from '../store/keys';
import { relayedForClient } from './passthrough';
import { modelFor, openCompletion, type CompletionDeps, type MeteredStream, type RequestScope } from './pipeline';

export { ROUTE_HEADER, type CompletionDeps as ChatDeps, type RequestRecord, type RequestScope } from './pipeline';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  // Tells nginx-style proxies not to buffer.
  'x-accel-buffering': 'no',
};

/** `POST /v1/chat/completions` once the key is known: validate, then the shared path, in OpenAI's shapes. */
export async function chatCompletion(deps: CompletionDeps, scope: RequestScope, key: KeyRecord, body: unknown): Promise<Response> {
  const request = parseChatCompletionRequest(body);
  const model = modelFor(deps, key, request.model);
  const opened = await openCompletion(deps, scope, key, model, request, { relayData: true });
  if (opened.kind === 'json') {
    return new Response(JSON.stringify(opened.completion satisfies ChatCompletion), {
      status: 200,
      headers: { 'content-type': 'application/json', ...scope.responseHeaders },
    });
  }

  const includeUsage = request.stream_options?.include_usage === true;
  const body$ =
    opened.kind === 'data'
      ? sseStream(opened.events, (event) => {
          // Relayed as the upstream wrote it (issue 12), the usage as the client asked.
          const json = relayedForClient(event, includeUsage);
          return json === undefined ? undefined : sseText(json);
        })
      : sseStream(opened.chunks, (chunk) => {
          if (chunk.choices.length === 0) return includeUsage && chunk.usage ? sseData(chunk) : undefined;
          if (!includeUsage && chunk.usage !== undefined) delete chunk.usage;
          return sseData(chunk);
        });
  return new Response(body$, { status: 200, headers: { ...SSE_HEADERS, ...scope.responseHeaders } });
}

/**
 * The SSE body of a metered stream: one frame per item (`frame` returns undefined for an item the
 * client does not get), `[DONE]` at the end, an error event then `[DONE]` when the upstream fails
 * mid-stream, and the upstream cut and the request billed when the client goes away.
 */
function sseStream<T>(items: MeteredStream<unknown, T>, frame: (item: T) => Uint8Array | undefined): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          const next = await items.next();
          if (next.done) {
            controller.enqueue(SSE_DONE);
            controller.close();
            return;
          }
          const bytes = frame(next.value);
          if (bytes) {
            controller.enqueue(bytes);
            return;
          }
        }
      } catch (err) {
        const error = err instanceof GatewayError ? err : upstreamError('The upstream failed mid-stream.', { cause: err });
        controller.enqueue(sseError(error.toBody()));
        controller.enqueue(SSE_DONE);
        controller.close();
      }
    },
    async cancel() {
      await items.return();
    },
  });
}
