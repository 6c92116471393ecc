import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createH2cServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { RouteConfig } from '../../lambda/catalog';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { DEFAULT_TIMEOUTS, type AnswerCall, type AnswerProvider, type ProviderCall, type UpstreamTimeouts } from '../../lambda/providers/types';
import { ChatChunkEncoder, decodeChatRequest, encodeChatCompletion } from '../../lambda/codecs/openai-chat';
import { callFor, heldOutputLimit } from '../../lambda/core/call';
import type { ChatCompletion, ChatCompletionChunk } from '../../lambda/contract/openai';
import type { ChatCompletionRequest } from '../../lambda/contract/request';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** What the stand-in answers: a status, headers and body parts written one by one (with a pause between). */
export interface StandInReply {
  status?: number;
  headers?: Record<string, string>;
  parts?: Array<string | Uint8Array>;
  /** Pause before each part, so the client sees them as separate reads. */
  gapMs?: number;
  /** Never answer (for first-byte timeouts), or stop after the parts without ending (idle timeouts). */
  hang?: 'before_headers' | 'after_parts';
}

export type StandInHandler = (request: RecordedRequest) => StandInReply;

/** An HTTP server on 127.0.0.1 at a random port that records each request and answers as told. */
export class StandIn {
  readonly requests: RecordedRequest[] = [];
  handler: StandInHandler = () => ({ status: 500, parts: ['no handler'] });
  private server: Server | undefined;

  private h2Sessions = new Set<Http2Session>();

  /** `h2c` speaks HTTP/2 without TLS (prior knowledge), as the AWS SDK's HTTP/2 handler does against an http:// endpoint. */
  constructor(private readonly protocol: 'http1' | 'h2c' = 'http1') {}

  async start(): Promise<string> {
    const onRequest = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', async () => {
        const recorded: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(parts) };
        this.requests.push(recorded);
        const reply = this.handler(recorded);
        if (reply.hang === 'before_headers') return;
        res.writeHead(reply.status ?? 200, reply.headers ?? {});
        if ('flushHeaders' in res && typeof res.flushHeaders === 'function') res.flushHeaders();
        for (const part of reply.parts ?? []) {
          if (reply.gapMs) await new Promise((r) => setTimeout(r, reply.gapMs));
          if (res.destroyed) return;
          (res as { write(chunk: string | Uint8Array): boolean }).write(part);
        }
        if (reply.hang !== 'after_parts') res.end();
      });
    };
    if (this.protocol === 'h2c') {
      const server = createH2cServer(onRequest);
      server.on('session', (session) => {
        this.h2Sessions.add(session);
        session.on('close', () => this.h2Sessions.delete(session));
      });
      this.server = server as unknown as Server;
    } else {
      this.server = createServer(onRequest);
    }
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  lastJson<T = Record<string, unknown>>(): T {
    const last = this.requests[this.requests.length - 1];
    if (!last) throw new Error('the stand-in received no request');
    return JSON.parse(last.body.toString('utf8')) as T;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    for (const session of this.h2Sessions) session.destroy();
    if (this.protocol === 'http1') this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

/** A ProviderCall for a request body as a client would send it (validated like the gateway does). */
export function providerCall(
  body: Record<string, unknown>,
  route: RouteConfig,
  options: { apiKey?: string; timeouts?: Partial<UpstreamTimeouts>; signal?: AbortSignal; maxOutputTokens?: number } = {},
): ProviderCall {
  return {
    request: parseChatCompletionRequest({ model: 'gateway-model', ...body }),
    route,
    apiKey: options.apiKey,
    maxOutputTokens: options.maxOutputTokens ?? 4096,
    signal: options.signal ?? new AbortController().signal,
    timeouts: { ...DEFAULT_TIMEOUTS, ...options.timeouts },
    requestId: 'req_test_1',
  };
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** Runs `fn` and returns what it threw (failing the test when it does not throw). */
export async function thrown(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure, but the call succeeded');
}

/**
 * A canonical provider seen in Chat Completions' shapes, as `/v1/chat/completions` shows it to a
 * client: the Chat request decoded with the Chat codec into a `Call` (its output limit the one
 * given, else the call's ceiling), the answer encoded back with it. `validate` runs the 400s the
 * chat endpoint checks before a route's call. For provider tests written against Chat shapes.
 */
export function chatView(provider: AnswerProvider, validate?: (request: ChatCompletionRequest) => void) {
  const callOf = (call: ProviderCall): AnswerCall => {
    validate?.(call.request);
    const limit = call.request.max_completion_tokens ?? call.request.max_tokens ?? call.maxOutputTokens;
    return { ...call, request: callFor(decodeChatRequest(call.request), heldOutputLimit(limit)) };
  };
  const chatId = (id: string) => (id.startsWith('chatcmpl-') ? id : `chatcmpl-${id}`);
  return {
    async complete(call: ProviderCall): Promise<ChatCompletion> {
      const answer = await provider.answer(callOf(call));
      return encodeChatCompletion({ ...answer, id: chatId(answer.id) });
    },
    async stream(call: ProviderCall): Promise<AsyncIterable<ChatCompletionChunk>> {
      const events = await provider.answerStream(callOf(call));
      return (async function* () {
        const encoder = new ChatChunkEncoder();
        for await (const event of events) yield* encoder.push(event.type === 'start' ? { ...event, id: chatId(event.id) } : event);
        yield* encoder.end();
      })();
    },
  };
}
