import { AdmittedRun } from '../../lambda/chat/pipeline';
import { upstreamTimeout } from '../../lambda/contract/errors';
import type { Outcome } from '../../lambda/money/types';

/**
 * The upstream call's own timers are armed for the request's deadline too, and on a busy machine
 * they can fire before the run's deadline timer. A failure that arrives at the deadline must be
 * booked as the deadline's (`interrupted`: the prompt, which the provider worked on, is charged),
 * never as a plain upstream failure (`failed`: released whole). CI once saw the latter.
 */
function runWithDeadline(deadlineMs: number) {
  const settled: Outcome[] = [];
  const pending: Promise<unknown>[] = [];
  const deps = { background: { run: (task: () => Promise<unknown>) => void pending.push(task()) } };
  const admitted = { outputTokens: 10, headers: {}, deadlineMs, settle: async (o: Outcome) => void settled.push(o) };
  const run = new AdmittedRun(
    deps as never,
    { requestId: 'r', startedAtMs: Date.now() - 1_500, responseHeaders: {} } as never,
    { keyId: 'k', accountId: 'a' } as never,
    { id: 'm', routes: [] } as never,
    admitted as never,
    false,
  );
  return { run, settled, pending };
}

describe('a failure at the deadline, before the deadline timer has fired', () => {
  it('is booked as interrupted by the deadline, with the deadline error for the client', async () => {
    // The deadline has passed, but its timer (setTimeout 0) cannot have run yet: this code is synchronous.
    const { run, settled, pending } = runWithDeadline(Date.now() - 1);
    run.failed(upstreamTimeout('up did not answer within 1500 ms.'));
    await Promise.all(pending);
    expect(settled).toHaveLength(1);
    expect(settled[0]).toMatchObject({ status: 'interrupted', errorCode: 'upstream_timeout' });
    expect(run.deadlineError?.message).toMatch(/ITAPI_MAX_REQUEST_S/);
    expect(run.abort.signal.aborted).toBe(true);
  });

  it('is a plain failure, released whole, while the deadline is still ahead', async () => {
    const { run, settled, pending } = runWithDeadline(Date.now() + 60_000);
    run.failed(upstreamTimeout('up did not answer within 10 ms.'));
    await Promise.all(pending);
    expect(settled[0]).toMatchObject({ status: 'failed', errorCode: 'upstream_timeout' });
    expect(run.deadlineError).toBeUndefined();
  });
});
