import { GatewayError, upstreamError, upstreamTimeout } from '../contract/errors';

export type DeadlineKind = 'first_byte' | 'idle' | 'total';

/**
 * One upstream call's abort signal: the client's signal plus timers that can be armed and
 * cleared (a first-byte timer must not cut a stream that is already flowing).
 */
export class UpstreamDeadline {
  private readonly controller = new AbortController();
  private readonly timers = new Map<DeadlineKind, { timer: NodeJS.Timeout; ms: number }>();
  private expired: { kind: DeadlineKind; ms: number } | undefined;
  private readonly onCallerAbort = () => this.controller.abort(this.caller.reason);

  constructor(
    private readonly caller: AbortSignal,
    private readonly upstream: string,
  ) {
    if (caller.aborted) this.controller.abort(caller.reason);
    else caller.addEventListener('abort', this.onCallerAbort, { once: true });
  }

  /** A whole (`stream: false`) call's deadline: the call's total time armed from now. */
  static whole(call: { signal: AbortSignal; timeouts: { totalMs: number } }, upstream: string): UpstreamDeadline {
    const deadline = new UpstreamDeadline(call.signal, upstream);
    deadline.arm('total', call.timeouts.totalMs);
    return deadline;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  arm(kind: DeadlineKind, ms: number): void {
    this.disarm(kind);
    const timer = setTimeout(() => {
      this.expired = { kind, ms };
      this.controller.abort(new Error(`${this.upstream}: ${kind} timeout after ${ms} ms`));
    }, ms);
    this.timers.set(kind, { timer, ms });
  }

  disarm(kind: DeadlineKind): void {
    const entry = this.timers.get(kind);
    if (entry) clearTimeout(entry.timer);
    this.timers.delete(kind);
  }

  /** Stops every timer and forgets the caller's signal; aborts the upstream call if asked to. */
  dispose(abortUpstream = false): void {
    for (const kind of [...this.timers.keys()]) this.disarm(kind);
    this.caller.removeEventListener('abort', this.onCallerAbort);
    if (abortUpstream && !this.controller.signal.aborted) this.controller.abort(new Error('done'));
  }

  /** An error thrown while the call was in flight, in the gateway's words. */
  failure(err: unknown, fallback: boolean): GatewayError {
    if (this.expired) {
      const what = this.expired.kind === 'idle' ? 'sent nothing for' : 'did not answer within';
      return upstreamTimeout(`${this.upstream} ${what} ${this.expired.ms} ms.`, { fallback, cause: err });
    }
    if (this.caller.aborted) return upstreamError('The request was cancelled.', { cause: err });
    if (err instanceof GatewayError) return err;
    return upstreamError(`${this.upstream} could not be reached or broke off.`, { fallback, cause: err });
  }
}
