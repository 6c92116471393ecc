import type { ModelEntry } from '../catalog';
import { groupable, MAX_SETTLE_GROUP, sameGroup, type AccountsStore, type LateSettleResult, type SettleResult, type SettleWrite } from '../store/accounts';
import type { HoldRecord } from '../store/holds';
import type { LedgerEntry } from '../store/usage';
import { usageExtras } from '../contract/usage';
import { costOf, NO_USAGE, type BilledUsage } from './cost';
import { countTokens } from './tokens';
import type { Outcome } from './types';
import { GroupCommit } from './group-commit';

/**
 * Tokens to bill, as the provider bills them: nothing for a call that produced nothing; the
 * provider's numbers for an answer that ended, every class apart (cache reads and writes,
 * reasoning, server-tool calls, the tier answered); and for one cut short (client gone, upstream
 * failure, deadline) the prompt (reported, else estimated) plus the output delivered.
 */
export function billableUsage(outcome: Outcome, promptTokensEstimate: number): BilledUsage {
  if (outcome.status === 'failed') return NO_USAGE;
  const usage = outcome.usage;
  const extras = usageExtras(usage);
  const classes = (promptTokens: number) => {
    const cachedTokens = Math.min(usage?.prompt_tokens_details?.cached_tokens ?? 0, promptTokens);
    const cacheWrite1hTokens = Math.min(extras.cacheWrite1hTokens ?? 0, promptTokens - cachedTokens);
    return {
      cachedTokens,
      cacheWrite1hTokens,
      cacheWriteTokens: Math.min(extras.cacheWriteTokens ?? 0, promptTokens - cachedTokens - cacheWrite1hTokens),
      // A provider that bills calls without counting them (OpenAI's search models) is charged the calls the request implied.
      serverToolCalls: extras.serverToolCalls ?? outcome.impliedServerToolCalls ?? {},
      ...(extras.serviceTier !== undefined && { serviceTier: extras.serviceTier }),
    };
  };
  if (usage && outcome.status === 'completed') {
    return {
      promptTokens: usage.prompt_tokens,
      completionTokens: usage.completion_tokens,
      reasoningTokens: Math.min(usage.completion_tokens_details?.reasoning_tokens ?? 0, usage.completion_tokens),
      ...classes(usage.prompt_tokens),
      estimated: false,
    };
  }
  const promptTokens = usage?.prompt_tokens || promptTokensEstimate;
  const delivered = countTokens(outcome.completionText);
  const completionTokens = Math.max(usage?.completion_tokens ?? 0, delivered, outcome.outputTokensAtLeast ?? 0);
  return {
    promptTokens,
    completionTokens,
    reasoningTokens: Math.min(usage?.completion_tokens_details?.reasoning_tokens ?? 0, completionTokens),
    ...classes(promptTokens),
    estimated: !usage?.prompt_tokens || (usage.completion_tokens ?? 0) < Math.max(delivered, outcome.outputTokensAtLeast ?? 0),
  };
}

/**
 * A request's ledger item: what it takes from its hold, however it is settled, then `rest`.
 * (`rest` spread last, not the hold's fields spread first: on Node 20, each key written after a
 * spread costs about a microsecond and garbage, 30 µs for this item; docs/BENCHMARKS.md.)
 */
function holdLedger<R extends object>(hold: HoldRecord, rest: R) {
  return {
    accountId: hold.accountId,
    kind: 'request' as const,
    atMs: hold.startedAtMs,
    id: hold.requestId,
    keyId: hold.keyId,
    model: hold.model,
    estimatedTokens: hold.rateTokens,
    holdMicroUsd: hold.holdMicroUsd,
    ...rest,
  };
}

/** The settlement of a request that ended (or failed) while its instance was alive. */
export function requestSettlement(hold: HoldRecord, model: Pick<ModelEntry, 'price'>, outcome: Outcome, keysTable?: string): SettleWrite {
  const usage = billableUsage(outcome, hold.promptTokens);
  return {
    hold,
    costMicroUsd: costOf(usage, model.price, outcome.requestedServiceTier),
    tokenCorrection: usage.promptTokens + usage.completionTokens - hold.rateTokens,
    keysTable,
    ledger: holdLedger(hold, {
      route: outcome.route,
      status: outcome.status,
      httpStatus: outcome.httpStatus,
      errorCode: outcome.errorCode,
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      cachedTokens: usage.cachedTokens || undefined,
      cacheWriteTokens: usage.cacheWriteTokens || undefined,
      cacheWrite1hTokens: usage.cacheWrite1hTokens || undefined,
      reasoningTokens: usage.reasoningTokens || undefined,
      serverToolCalls: totalCalls(usage.serverToolCalls) || undefined,
      serviceTier: usage.serviceTier ?? outcome.requestedServiceTier,
      latencyMs: outcome.latencyMs,
      stream: outcome.stream,
      clientAborted: outcome.status === 'aborted' || undefined,
      usageEstimated: usage.estimated || undefined,
    }),
  };
}

function totalCalls(calls: Record<string, number>): number {
  return Object.values(calls).reduce((a, b) => a + b, 0);
}

/**
 * The settlement of a hold no request settled (its instance died, or its settlement was lost):
 * the estimated prompt is charged, as the provider may have billed it, plus the output the
 * request last checkpointed on its hold (delivered up to a few seconds before the instance
 * died), and the rest refunded.
 */
export function abandonedSettlement(hold: HoldRecord, keysTable?: string): SettleWrite {
  const outputTokens = hold.outputTokens ?? 0;
  return {
    hold,
    costMicroUsd: Math.min(hold.promptMicroUsd + (hold.outputMicroUsd ?? 0), hold.holdMicroUsd),
    tokenCorrection: hold.promptTokens + outputTokens - hold.rateTokens,
    keysTable,
    ledger: holdLedger(hold, {
      status: 'abandoned' as const,
      promptTokens: hold.promptTokens,
      completionTokens: outputTokens,
      stream: hold.stream,
      usageEstimated: true,
    }),
  };
}

/** What the sweeper charges for output a request checkpointed: its tokens at the output price, within the hold less the prompt. */
export function checkpointMicroUsd(model: Pick<ModelEntry, 'price'>, hold: Pick<HoldRecord, 'holdMicroUsd' | 'promptMicroUsd'>, outputTokens: number): number {
  return Math.max(0, Math.min(Math.ceil((outputTokens * model.price.outputPerToken) / 1000), hold.holdMicroUsd - hold.promptMicroUsd));
}

/** Where settlements that keep failing are kept until they can be applied (SQS in AWS, a file locally). */
export interface SettlementQueue {
  send(write: SettleWrite): Promise<void>;
}

export interface SettlementsOptions {
  store: Pick<AccountsStore, 'settle'> & Partial<Pick<AccountsStore, 'settleLate' | 'settleGroup'>>;
  /**
   * Group commit (local mode): settlements of an account that come while one of its settlement
   * writes is in flight go together in the next (`AccountsStore.settleGroup`); one at a time, as
   * before. Needs the store's `settleGroup`. @default false
   */
  groupCommit?: boolean;
  /** @default none: a settlement that keeps failing is left to the sweeper */
  queue?: SettlementQueue;
  /**
   * Local mode: the roll-ups table, whose additions each settlement (a late one's and a release's
   * ledger item too) carries in its own transaction (`SettleWrite.rollupsTable`). @default none (AWS: the usage stream)
   */
  rollupsTable?: string;
  /** Pauses between attempts. @default about 20 s in all, well inside a Lambda's settlement margin */
  retryDelaysMs?: readonly number[];
  /** Called once per settlement that landed (metrics). */
  onSettled?(write: SettleWrite, result: Extract<SettleResult, { settled: true }>): void;
  /** Called once per late settlement applied: a request's own settlement that found its hold swept as abandoned (metric, log). */
  onLate?(write: SettleWrite, late: LateSettleResult): void;
  /** Awaited once per settlement that landed, after it (local mode: the usage roll-up); a failure is its own to report. */
  afterSettled?(write: SettleWrite, result: Extract<SettleResult, { settled: true }>): Promise<void>;
  /** A settlement that kept failing and went to the durable queue (the sweeper applies it). */
  onQueued?(write: SettleWrite, cause: unknown): void;
  /**
   * A request's own settlement that found its hold gone and no abandoned item to settle late: it
   * settled before (a resend after an answer lost once it landed), or its hold never landed (log).
   */
  onHoldGone?(write: SettleWrite): void;
  /** A settlement that could be neither applied nor queued: the sweeper will settle its hold as abandoned. */
  onLost?(write: SettleWrite, err: unknown): void;
  now?: () => number;
}

/** A request's own settlement (not a sweep's, not a release) that found its hold gone may have been swept. */
function mayBeLate(write: SettleWrite, result: Extract<SettleResult, { settled: false }>): boolean {
  return !result.orphan && !write.release && !write.holdGone && write.ledger.status !== 'abandoned';
}

const RETRY_DELAYS_MS = [100, 250, 500, 1000, 2000, 4000, 5000, 7000];

/**
 * Applies settlements exactly once. The write is idempotent on the hold (deleted on condition
 * that it exists) and on the ledger item (put only if absent), so it is retried through store
 * outages without risk of charging twice; one that still fails goes to the durable queue.
 */
export class Settlements {
  private readonly delaysMs: readonly number[];
  private readonly now: () => number;

  private readonly groups?: SettlementGroups;

  constructor(private readonly options: SettlementsOptions) {
    this.delaysMs = options.retryDelaysMs ?? RETRY_DELAYS_MS;
    this.now = options.now ?? Date.now;
    const { store } = options;
    if (options.groupCommit && store.settleGroup) this.groups = new SettlementGroups({ settle: (...a) => store.settle(...a), settleGroup: (...a) => store.settleGroup!(...a) });
  }

  /** Applies one settlement; `guessWindow` is the minute the caller last saw the account in. */
  async apply(given: SettleWrite, guessWindow?: number): Promise<SettleResult | 'queued' | 'lost'> {
    // The write queued (below) is the one given: whoever replays it folds its roll-up or not.
    const write = this.options.rollupsTable ? { ...given, rollupsTable: this.options.rollupsTable } : given;
    for (let attempt = 0; ; attempt++) {
      try {
        const nowMs = this.now();
        const result = await (this.groups ? this.groups.settle(write, nowMs, guessWindow) : this.options.store.settle(write, nowMs, guessWindow));
        if (result.settled) {
          this.options.onSettled?.(write, result);
          await this.options.afterSettled?.(write, result);
        } else if (mayBeLate(write, result) && this.options.store.settleLate) {
          // Found swept as abandoned: the difference is applied once, as a ledger item of its own.
          const late = await this.options.store.settleLate(write);
          if (late) {
            if (late.applied) this.options.onLate?.(write, late);
            return { ...result, late };
          }
          this.options.onHoldGone?.(write);
        }
        return result;
      } catch (err) {
        if (attempt >= this.delaysMs.length) return this.enqueue(given, err);
        await new Promise((resolve) => setTimeout(resolve, this.delaysMs[attempt]));
      }
    }
  }

  private async enqueue(write: SettleWrite, cause: unknown): Promise<'queued' | 'lost'> {
    if (this.options.queue) {
      try {
        await this.options.queue.send(write);
        this.options.onQueued?.(write, cause);
        return 'queued';
      } catch (err) {
        this.options.onLost?.(write, err);
        return 'lost';
      }
    }
    this.options.onLost?.(write, cause);
    return 'lost';
  }
}

type Pending = { write: SettleWrite; nowMs: number; guessWindow?: number };

/**
 * Group commit of settlements (local mode, `GroupCommit`), per account: those that land while
 * one of the account's settlement writes is in flight share the next transaction (`settleGroup`,
 * at most `MAX_SETTLE_GROUP`, one admitted minute a group). A group that does not land (any
 * condition, a conflict, no answer) is applied one by one, as without grouping. Each caller's
 * promise ends with its own settlement's result, or its error (its retry loop sends it again).
 */
export class SettlementGroups {
  private readonly groups: GroupCommit<Pending, SettleResult>;

  constructor(store: Pick<AccountsStore, 'settle' | 'settleGroup'>) {
    this.groups = new GroupCommit<Pending, SettleResult>({
      queueOf: (p) => p.write.hold.accountId,
      groupable: (p) => groupable(p.write),
      same: (a, b) => sameGroup(a.write, b.write),
      max: MAX_SETTLE_GROUP,
      alone: (p) => store.settle(p.write, p.nowMs, p.guessWindow),
      together: (ps) =>
        store
          .settleGroup(
            ps.map((p) => p.write),
            Math.max(...ps.map((p) => p.nowMs)),
            ps[0].guessWindow,
          )
          .catch(() => undefined),
    });
  }

  settle(write: SettleWrite, nowMs: number, guessWindow?: number): Promise<SettleResult> {
    return this.groups.run({ write, nowMs, guessWindow });
  }
}
