import type { ModelEntry } from '../catalog';
import type { AccountsStore, LateSettleResult, SettleResult, SettleWrite } from '../store/accounts';
import type { HoldRecord } from '../store/holds';
import { countTokens } from './tokens';
import type { Outcome } from './types';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** True when some of the counts came from the tokenizer because the provider reported none. */
  estimated: boolean;
}

/**
 * Tokens to bill, as the provider bills them: nothing for a call that produced nothing; the
 * provider's numbers for an answer that ended; and for one cut short (client gone, upstream
 * failure, deadline) the prompt (reported, else estimated) plus the output delivered.
 */
export function billableUsage(outcome: Outcome, promptTokensEstimate: number): Usage {
  if (outcome.status === 'failed') return { promptTokens: 0, completionTokens: 0, cachedTokens: 0, estimated: false };
  const usage = outcome.usage;
  const cached = (prompt: number) => Math.min(usage?.prompt_tokens_details?.cached_tokens ?? 0, prompt);
  if (usage && outcome.status === 'completed') {
    return { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, cachedTokens: cached(usage.prompt_tokens), estimated: false };
  }
  const promptTokens = usage?.prompt_tokens || promptTokensEstimate;
  const delivered = countTokens(outcome.completionText);
  return {
    promptTokens,
    completionTokens: Math.max(usage?.completion_tokens ?? 0, delivered, outcome.outputTokensAtLeast ?? 0),
    cachedTokens: cached(promptTokens),
    estimated: !usage?.prompt_tokens || (usage.completion_tokens ?? 0) < Math.max(delivered, outcome.outputTokensAtLeast ?? 0),
  };
}

export function costMicroUsd(model: Pick<ModelEntry, 'price'>, usage: Usage): number {
  const { price } = model;
  const nano =
    (usage.promptTokens - usage.cachedTokens) * price.inputPerToken +
    usage.cachedTokens * price.cachedInputPerToken +
    usage.completionTokens * price.outputPerToken;
  return Math.ceil(nano / 1000);
}

/** What a request's ledger item takes from its hold, however it is settled. */
function holdLedger(hold: HoldRecord) {
  return {
    accountId: hold.accountId,
    kind: 'request' as const,
    atMs: hold.startedAtMs,
    id: hold.requestId,
    keyId: hold.keyId,
    model: hold.model,
    estimatedTokens: hold.rateTokens,
    holdMicroUsd: hold.holdMicroUsd,
  };
}

/** The settlement of a request that ended (or failed) while its instance was alive. */
export function requestSettlement(hold: HoldRecord, model: Pick<ModelEntry, 'price'>, outcome: Outcome, keysTable?: string): SettleWrite {
  const usage = billableUsage(outcome, hold.promptTokens);
  return {
    hold,
    costMicroUsd: costMicroUsd(model, usage),
    tokenCorrection: usage.promptTokens + usage.completionTokens - hold.rateTokens,
    keysTable,
    ledger: {
      ...holdLedger(hold),
      route: outcome.route,
      status: outcome.status,
      httpStatus: outcome.httpStatus,
      errorCode: outcome.errorCode,
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      cachedTokens: usage.cachedTokens || undefined,
      latencyMs: outcome.latencyMs,
      stream: outcome.stream,
      clientAborted: outcome.status === 'aborted' || undefined,
      usageEstimated: usage.estimated || undefined,
    },
  };
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
    ledger: {
      ...holdLedger(hold),
      status: 'abandoned',
      promptTokens: hold.promptTokens,
      completionTokens: outputTokens,
      stream: hold.stream,
      usageEstimated: true,
    },
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
  store: Pick<AccountsStore, 'settle'> & Partial<Pick<AccountsStore, 'settleLate'>>;
  /** @default none: a settlement that keeps failing is left to the sweeper */
  queue?: SettlementQueue;
  /** Pauses between attempts. @default about 20 s in all, well inside a Lambda's settlement margin */
  retryDelaysMs?: readonly number[];
  /** Called once per settlement that landed (metrics). */
  onSettled?(write: SettleWrite, result: Extract<SettleResult, { settled: true }>): void;
  /** Called once per late settlement applied: a request's own settlement that found its hold swept as abandoned (metric, log). */
  onLate?(write: SettleWrite, late: LateSettleResult): void;
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

  constructor(private readonly options: SettlementsOptions) {
    this.delaysMs = options.retryDelaysMs ?? RETRY_DELAYS_MS;
    this.now = options.now ?? Date.now;
  }

  /** Applies one settlement; `guessWindow` is the minute the caller last saw the account in. */
  async apply(write: SettleWrite, guessWindow?: number): Promise<SettleResult | 'queued' | 'lost'> {
    for (let attempt = 0; ; attempt++) {
      try {
        const nowMs = this.now();
        const result = await this.options.store.settle(write, nowMs, guessWindow);
        if (result.settled) this.options.onSettled?.(write, result);
        else if (mayBeLate(write, result) && this.options.store.settleLate) {
          // Found swept as abandoned: the difference is applied once, as a ledger item of its own.
          const late = await this.options.store.settleLate(write);
          if (late) {
            if (late.applied) this.options.onLate?.(write, late);
            return { ...result, late };
          }
        }
        return result;
      } catch (err) {
        if (attempt >= this.delaysMs.length) return this.enqueue(write, err);
        await new Promise((resolve) => setTimeout(resolve, this.delaysMs[attempt]));
      }
    }
  }

  private async enqueue(write: SettleWrite, cause: unknown): Promise<'queued' | 'lost'> {
    if (this.options.queue) {
      try {
        await this.options.queue.send(write);
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
