import { GatewayError } from '../contract/errors';
import type { CompletionUsage } from '../contract/openai';

/** One answered request, as the app's outermost layer saw it: the source of the access log and the request metrics. */
export interface RequestObservation {
  requestId: string;
  method: string;
  path: string;
  /** The HTTP status the client got (200 for a stream, even one that ended with an error event). */
  status: number;
  /** OpenAI error type of an error answer, or of the error event that ended a stream. */
  errorType?: string;
  errorCode?: string;
  /** True when the answer was a failure of the gateway or its upstream (a 5xx, or a stream cut by an error event). */
  serverError: boolean;
  latencyMs: number;
  keyId?: string;
  accountId?: string;
  /** Set once the request was admitted (credits held): it will be settled. */
  admitted: boolean;
  model?: string;
  /** `provider:model` of the route that served it. */
  route?: string;
  stream?: boolean;
  timeToFirstTokenMs?: number;
  usage?: CompletionUsage;
  clientAborted?: boolean;
  /** How an admitted request ended, as the ledger records it (completed, failed, interrupted, aborted). */
  outcome?: string;
}

/**
 * What an endpoint reports when an admitted request has ended (after its last byte). Declared here,
 * where it is read, so observability imports nothing of the endpoints (chat's `RequestRecord` is one).
 */
export interface AdmittedRequestEnd {
  /** How it ended, as the ledger records it: completed, failed, interrupted, aborted. */
  status: string;
  errorCode?: string;
  model: string;
  /** `provider:model` of the route that served it. */
  route?: string;
  stream: boolean;
  usage?: CompletionUsage;
  latencyMs: number;
  timeToFirstTokenMs?: number;
}

/** One call of the route loop to an upstream route, answered or failed. */
export interface UpstreamAttempt {
  requestId: string;
  provider: string;
  /** `provider:model`, the upstream's own model id. */
  route: string;
  /** 200 when the route answered (its first chunk, for a stream); else the status of the error it failed with. */
  status: number;
  errorCode?: string;
  /** True when the upstream (or the gateway's access to it) failed, as opposed to refusing the client's request (4xx). */
  failed: boolean;
  /** What the failure said, for the operator's log: only for `failed` calls (a 4xx may quote the request). */
  message?: string;
  latencyMs: number;
}

/** The record of one attempt, from the route it tried, when it started and what it failed with (undefined when it answered). */
export function upstreamAttempt(
  requestId: string,
  route: { provider: string; model: string },
  startedAtMs: number,
  failure: unknown,
): UpstreamAttempt {
  const status = failure === undefined ? 200 : failure instanceof GatewayError ? failure.status : 500;
  return {
    requestId,
    provider: route.provider,
    route: `${route.provider}:${route.model}`,
    status,
    errorCode: failure === undefined ? undefined : failure instanceof GatewayError ? failure.code : 'internal_error',
    failed: status >= 500,
    message: status >= 500 && failure instanceof GatewayError ? failure.message.slice(0, 500) : undefined,
    latencyMs: Date.now() - startedAtMs,
  };
}

/**
 * Assembles the one record of a request from what the outer layer knows (status, error, key)
 * and what the chat route reports when an admitted request ends (model, route, usage), and hands
 * it on exactly once: at the answer, or for a stream still running then, at its end.
 */
export class RequestRecorder {
  private answer?: { status: number; keyId?: string; accountId?: string };
  private error?: GatewayError;
  private chat?: AdmittedRequestEnd;
  private streamRunning = false;
  private emitted = false;

  constructor(
    private readonly requestId: string,
    private readonly method: string,
    private readonly path: string,
    private readonly startedAtMs: number,
    private readonly emit: (observation: RequestObservation) => void,
  ) {}

  /** The error the client was answered with. */
  failed(error: GatewayError): void {
    this.error = error;
  }

  /** The chat route's own record, once an admitted request has ended (after its last byte). */
  chatEnded(record: AdmittedRequestEnd): void {
    this.chat = record;
    this.flush();
  }

  /** The chat route returned a Response: without its record yet, a stream is still running and reports when it ends. */
  chatAnswered(): void {
    this.streamRunning = this.chat === undefined;
  }

  /** The answer left the app's outermost layer. */
  answered(status: number, key?: { keyId: string; accountId: string }): void {
    this.answer = { status, keyId: key?.keyId, accountId: key?.accountId };
    this.flush();
  }

  private flush(): void {
    if (this.emitted || !this.answer || (this.streamRunning && !this.chat)) return;
    this.emitted = true;
    const { chat, error, answer } = this;
    // A stream's error arrives as its last event, after the 200: its code is all there is.
    const streamErrorCode = chat?.status === 'interrupted' && chat.errorCode && !error ? chat.errorCode : undefined;
    this.emit({
      requestId: this.requestId,
      method: this.method,
      // A client's path may be anything up to the URL limit: enough of it to read.
      path: this.path.slice(0, 256),
      status: answer.status,
      errorType: error?.type ?? (streamErrorCode ? (streamErrorCode === 'server_overloaded' ? 'server_overloaded' : 'api_error') : undefined),
      errorCode: error?.code ?? streamErrorCode,
      serverError: answer.status >= 500 || streamErrorCode !== undefined,
      latencyMs: chat?.latencyMs ?? Date.now() - this.startedAtMs,
      keyId: answer.keyId,
      accountId: answer.accountId,
      admitted: chat !== undefined,
      model: chat?.model,
      route: chat?.route,
      stream: chat?.stream,
      timeToFirstTokenMs: chat?.timeToFirstTokenMs,
      usage: chat?.usage,
      clientAborted: chat?.status === 'aborted',
      outcome: chat?.status,
    });
  }
}
