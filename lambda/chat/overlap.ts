import type { ModelEntry, RouteConfig } from '../catalog';
import { GatewayError } from '../contract/errors';
import type { PromptEstimate } from '../money/tokens';
import type { AdmissionRequest } from '../money/types';
import type { AnswerProvider, ProviderCall } from '../providers/types';
import type { KeyRecord } from '../store/keys';
import { admitRun, callRoute, clientClosed, KeyChanged, routeName, type AdmittedRun, type CompletionDeps, type RequestScope } from './pipeline';

/**
 * Overlapped admission (issue 22): when the account's view says the request will almost surely
 * be admitted (money/speculation.ts), the first route's call starts while the admission write is
 * in flight. Its answer is held, nothing reaches the client, until admission has succeeded; a
 * refusal cuts the call and is answered as before, with no hold and nothing charged, and counted.
 */

/** The first route's call, already under way when the route loop starts. */
export interface RouteHead<T> {
  startedAtMs: number;
  value: Promise<T>;
}

/**
 * Why a speculative call was cut: admission refused it, admitted it with another output limit, the
 * client left first, or the key's read under way (`scope.keyCheck`) refused it or changed its terms.
 */
export type SpeculationCancelReason = 'refused' | 'limit_changed' | 'client_closed' | 'key_refused' | 'key_changed';

export interface SpeculationCancelled {
  requestId: string;
  accountId: string;
  model: string;
  route: string;
  reason: SpeculationCancelReason;
  /** The upstream had already answered (its answer held, never forwarded): the provider may bill the gateway for it. */
  answered: boolean;
}

/** The upstream side of a completion, as the overlap needs it. */
export interface OverlappedUpstream<T, R> {
  /** The upstream request with this output limit (the one admission fits). */
  requestFor(outputTokens: number): R;
  attempt(provider: AnswerProvider, call: ProviderCall<R>): Promise<T>;
  /** Closes an answer that will not be relayed (a stream's iterator). */
  release?(value: T): Promise<void>;
}

/** What admission is asked, the prompt as its estimate: counted before admission, or, speculating, behind the upstream call. */
type AdmissionInput = Pick<AdmissionRequest, 'outputLimit' | 'n' | 'stream' | 'billing'> & { prompt: PromptEstimate };

/**
 * Admission, overlapped with the first route's call when the rule allows: resolves with the run
 * (and the call under way, for the route loop to take as its first attempt), or throws admission's
 * error exactly as `admitRun` does, after cutting the call.
 */
export async function admitOverlapped<T, R>(
  deps: CompletionDeps,
  scope: RequestScope,
  key: KeyRecord,
  model: ModelEntry,
  input: AdmissionInput,
  upstream: OverlappedUpstream<T, R>,
): Promise<{ run: AdmittedRun; head?: RouteHead<T> }> {
  const route = model.routes[0];
  const { prompt, ...asked } = input;
  const foresee = (promptTokens: number) =>
    route && !scope.signal?.aborted ? deps.admission.foresee?.({ requestId: scope.requestId, key, model, startedAtMs: scope.startedAtMs, ...asked, promptTokens }) : undefined;
  // The rule reads the prompt's bound (never below its count), the tokenizer not run yet; admission
  // counts it behind the call. A margin only the bound breaks (a long prompt on a tighter minute or
  // balance) is read again with the count, taken now: the call then waits for the tokenizer, not
  // for the admission write too.
  let verdict = foresee(prompt.bound);
  let counted: number | undefined;
  if (verdict && !verdict.speculate && BOUND_SENSITIVE.has(verdict.reason) && prompt.tokens() < prompt.bound) {
    counted = prompt.tokens();
    verdict = foresee(counted);
  }
  if (!verdict?.speculate) return { run: await admitRun(deps, scope, key, model, { ...asked, promptTokens: prompt.tokens() }) };
  const promptAsked = counted === undefined ? { promptTokens: prompt.bound, countPrompt: () => prompt.tokens() } : { promptTokens: counted };

  const call = new SpeculativeCall(deps, scope, model, route, upstream, verdict.outputTokens);
  const cancel = (reason: SpeculationCancelReason) => {
    const answered = call.cancel();
    deps.observeSpeculationCancelled?.({ requestId: scope.requestId, accountId: key.accountId, model: model.id, route: routeName(route), reason, answered });
  };
  // The client leaving cuts the call at once; admission, a write already sent, runs to its end.
  let clientLeft = false;
  const clientGone = () => {
    clientLeft = true;
    call.controller.abort(clientClosed());
  };
  scope.signal?.addEventListener('abort', clientGone, { once: true });
  let run: AdmittedRun;
  try {
    // Counted in flight now (the next request's `foresee` sees it), its write sent once the upstream
    // call is on the wire (issue 22): speculating, admission is off the critical path, the
    // upstream's first byte takes far longer than the write. A key given ahead of its read
    // (auth/index.ts `authenticateAhead`) is read again inside admission, before that write. So is
    // the prompt counted (the tokenizer, tens of ms on a long prompt): in flight until then with its bound, then with its count.
    run = await admitRun(deps, scope, key, model, { ...asked, ...promptAsked, afterUpstreamCall: true });
  } catch (err) {
    cancel(clientLeft ? 'client_closed' : err instanceof KeyChanged ? 'key_changed' : isKeyRefusal(err) ? 'key_refused' : 'refused');
    throw err;
  } finally {
    scope.signal?.removeEventListener('abort', clientGone);
  }
  run.adopt(call.controller);
  const limitChanged = run.admitted.outputTokens !== verdict.outputTokens;
  // The client left during admission: no answer of this call will be relayed (none came, or it has
  // the wrong limit), and no other call is made for a client that is gone.
  if (clientLeft && (limitChanged || !call.answered)) {
    // Nothing reaches the client and nothing admitted was answered: the hold is given back whole (an
    // answer with the wrong limit already in is the gateway's cost, counted as answered).
    cancel('client_closed');
    const error = clientClosed();
    run.failed(error);
    throw error;
  }
  if (limitChanged) {
    // The body sent is not the one admission produced: cut it, and the route loop sends the admitted one.
    cancel('limit_changed');
    return { run };
  }
  return { run, head: { startedAtMs: call.startedAtMs, value: call.value } };
}

/** The rule's refusals that a smaller prompt may lift: read again with the prompt's count when its bound was refused. */
const BOUND_SENSITIVE = new Set<string>(['balance', 'tokens', 'spend_cap']);

/** A 401: only the key's read again (`confirmedKey`) refuses with it once the request is under way. */
function isKeyRefusal(err: unknown): boolean {
  return err instanceof GatewayError && err.status === 401;
}

/** The first route's call made before admission, with its own abort (tied to the run's once admitted). */
class SpeculativeCall<T, R> {
  readonly controller = new AbortController();
  readonly startedAtMs = Date.now();
  readonly value: Promise<T>;
  /** True once the upstream answered (JSON whole, or a stream's first event). */
  answered = false;

  constructor(
    private readonly deps: CompletionDeps,
    scope: RequestScope,
    model: ModelEntry,
    route: RouteConfig,
    private readonly upstream: OverlappedUpstream<T, R>,
    outputTokens: number,
  ) {
    this.value = callRoute(deps, model, route, upstream.requestFor(outputTokens), upstream.attempt, this.controller.signal, deps.timeouts, scope.requestId);
    // Handled here so that a failure while admission is pending is never an unhandled rejection; the route loop awaits it again.
    this.value.then(
      () => (this.answered = true),
      () => undefined,
    );
  }

  /** Cuts the call (its socket closed) and closes a held answer in the background; says whether the upstream had answered. */
  cancel(): boolean {
    const answered = this.answered;
    if (!this.controller.signal.aborted) this.controller.abort(new Error('speculative call cancelled'));
    const release = this.upstream.release;
    if (release) {
      this.deps.background.run(async () => {
        const held = await this.value.then(
          (value) => ({ value }),
          () => undefined,
        );
        if (held) await release(held.value);
      });
    }
    return answered;
  }
}
