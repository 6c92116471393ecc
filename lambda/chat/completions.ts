import { GatewayError, upstreamError } from '../contract/errors';
import type { ChatCompletion } from '../contract/openai';
import { parseChatCompletionRequest } from '../contract/request';
import { SSE_DONE, sseData, sseError } from '../contract/sse';
import type { KeyRecord } from '../store/keys';
import { modelFor, openCompletion, type CompletionDeps, type RequestScope } from './pipeline';

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
  const opened = await openCompletion(deps, scope, key, model, request);
  if (opened.kind === 'json') {
    return new Response(JSON.stringify(opened.completion satisfies ChatCompletion), {
      status: 200,
      headers: { 'content-type': 'application/json', ...scope.responseHeaders },
    });
  }

  const chunks = opened.chunks;
  const includeUsage = request.stream_options?.include_usage === true;
  const body$ = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          const next = await chunks.next();
          if (next.done) {
            controller.enqueue(SSE_DONE);
            controller.close();
            return;
          }
          const chunk = next.value;
          if (chunk.choices.length === 0) {
            // The usage chunk goes out only when the client asked for it.
            if (includeUsage && chunk.usage) {
              controller.enqueue(sseData(chunk));
              return;
            }
            continue;
          }
          if (!includeUsage && chunk.usage !== undefined) delete chunk.usage;
          controller.enqueue(sseData(chunk));
          return;
        }
      } catch (err) {
        const error = err instanceof GatewayError ? err : upstreamError('The upstream failed mid-stream.', { cause: err });
        controller.enqueue(sseError(error.toBody()));
        controller.enqueue(SSE_DONE);
        controller.close();
      }
    },
    async cancel() {
      await chunks.return();
    },
  });
  return new Response(body$, { status: 200, headers: { ...SSE_HEADERS, ...scope.responseHeaders } });
}
