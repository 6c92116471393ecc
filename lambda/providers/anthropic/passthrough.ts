import type { IncomingMessage } from 'node:http';
import { upstreamError } from '../../contract/errors';
import { postUpstream, providerMessage, readText, sseEvents } from '../http';
import type { ProviderCall } from '../types';
import type { UpstreamDeadline } from '../upstream-deadline';
import { ANTHROPIC_DEFAULT_BASE_URL, ANTHROPIC_VERSION } from './index';
import { anthropicError } from './errors';

/** A client's own Messages request, for an Anthropic route: sent as it came, but for what the gateway decides. */
export interface AnthropicPassthrough {
  /** The client's body with the route's `model` and admission's `max_tokens`. */
  body: Record<string, unknown>;
  /** The client's `anthropic-version`. @default 2023-06-01 */
  version?: string;
  /** The client's `anthropic-beta`, forwarded as is. */
  beta?: string;
  /** The client called `?beta=true` (the SDKs' beta namespace, Claude Code). */
  betaQuery?: boolean;
}

/** One event of Anthropic's stream, its data kept as the upstream wrote it. */
export interface RawAnthropicEvent {
  /** The `type` of the data (which Anthropic also writes as the `event:` line). */
  type: string;
  data: string;
  doc: Record<string, unknown>;
}

/**
 * `POST /v1/messages` on the route's Anthropic endpoint, with the route's key. Settles with the
 * response head; a status other than 2xx is thrown as the GatewayError Anthropic's error maps to
 * (fallback-able but for the client's own mistakes).
 */
export async function postAnthropicPassthrough(call: ProviderCall, passthrough: AnthropicPassthrough, deadline: UpstreamDeadline): Promise<IncomingMessage> {
  const base = (call.route.base_url ?? ANTHROPIC_DEFAULT_BASE_URL).replace(/\/+$/, '');
  const headers: Record<string, string> = {
    accept: passthrough.body.stream === true ? 'text/event-stream' : 'application/json',
    'anthropic-version': passthrough.version ?? ANTHROPIC_VERSION,
  };
  if (passthrough.beta) headers['anthropic-beta'] = passthrough.beta;
  if (call.apiKey) headers['x-api-key'] = call.apiKey;
  const url = `${base}/v1/messages${passthrough.betaQuery ? '?beta=true' : ''}`;
  deadline.arm('first_byte', call.timeouts.firstByteMs);
  let response: IncomingMessage;
  try {
    response = await postUpstream(url, headers, JSON.stringify(passthrough.body), deadline.signal);
  } catch (err) {
    throw deadline.failure(err, true);
  } finally {
    deadline.disarm('first_byte');
  }
  const status = response.statusCode ?? 0;
  if (status < 200 || status > 299) {
    const text = await readText(response).catch(() => '');
    throw anthropicError(errorType(text), providerMessage(text), status);
  }
  return response;
}

function errorType(text: string): string | undefined {
  try {
    const type = (JSON.parse(text) as { error?: { type?: unknown } }).error?.type;
    return typeof type === 'string' ? type : undefined;
  } catch {
    return undefined;
  }
}

/** The SSE body as raw events; a silence longer than `idleMs` ends it with a timeout. */
export async function* anthropicRawEvents(body: IncomingMessage, idleMs: number): AsyncGenerator<RawAnthropicEvent> {
  for await (const event of sseEvents(body, idleMs)) {
    let doc: unknown;
    try {
      doc = JSON.parse(event.data);
    } catch {
      doc = undefined;
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc) || typeof (doc as { type?: unknown }).type !== 'string') {
      throw upstreamError(`Anthropic sent a stream event that is not JSON (event: ${event.event ?? 'message'}).`);
    }
    yield { type: (doc as { type: string }).type, data: event.data, doc: doc as Record<string, unknown> };
  }
}
