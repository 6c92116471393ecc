import type { Outcome } from '../admission/types';
import { countTokens } from '../admission/tokens';
import type { ModelEntry } from '../catalog';
import type { SettleWrite } from '../store/accounts';
import type { KeyRecord } from '../store/keys';

/** Where settlements are written: the account and its ledger, atomically (AccountsStore). */
export interface Ledger {
  /** Returns false when this request was settled before. */
  settle(write: SettleWrite): Promise<boolean>;
}

export interface Settlement {
  requestId: string;
  key: KeyRecord;
  model: ModelEntry;
  startedAtMs: number;
  admittedWindow: number;
  holdMicroUsd: number;
  /** Tokens counted against the minute's token limit at admission. */
  rateTokens: number;
  promptTokensEstimate: number;
  outcome: Outcome;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  estimated: boolean;
}

/** Tokens to bill: the provider's numbers; the tokenizer's only when the answer was cut short. */
export function billableUsage(s: Pick<Settlement, 'outcome' | 'promptTokensEstimate'>): Usage {
  const { outcome } = s;
  if (outcome.failed) return { promptTokens: 0, completionTokens: 0, cachedTokens: 0, estimated: false };
  if (outcome.usage) {
    return {
      promptTokens: outcome.usage.prompt_tokens,
      completionTokens: outcome.usage.completion_tokens,
      cachedTokens: Math.min(outcome.usage.prompt_tokens_details?.cached_tokens ?? 0, outcome.usage.prompt_tokens),
      estimated: false,
    };
  }
  return { promptTokens: s.promptTokensEstimate, completionTokens: countTokens(outcome.completionText), cachedTokens: 0, estimated: true };
}

export function costMicroUsd(model: ModelEntry, usage: Usage): number {
  const { price } = model;
  const nano =
    (usage.promptTokens - usage.cachedTokens) * price.inputPerToken +
    usage.cachedTokens * price.cachedInputPerToken +
    usage.completionTokens * price.outputPerToken;
  return Math.ceil(nano / 1000);
}

/** The ledger item and the account change for one finished request. */
export function settlementWrite(s: Settlement): SettleWrite {
  const usage = billableUsage(s);
  const cost = costMicroUsd(s.model, usage);
  // The hold was the most this request may take; anything beyond it is recorded, never charged.
  const charged = Math.min(cost, s.holdMicroUsd);
  const { outcome } = s;
  return {
    accountId: s.key.accountId,
    admittedWindow: s.admittedWindow,
    refundMicroUsd: s.holdMicroUsd - charged,
    tokenCorrection: usage.promptTokens + usage.completionTokens - s.rateTokens,
    ledger: {
      accountId: s.key.accountId,
      kind: 'request',
      atMs: s.startedAtMs,
      id: s.requestId,
      amountMicroUsd: -charged,
      keyId: s.key.keyId,
      model: s.model.id,
      route: outcome.route,
      status: outcome.status,
      errorCode: outcome.errorCode,
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      cachedTokens: usage.cachedTokens || undefined,
      estimatedTokens: s.rateTokens,
      holdMicroUsd: s.holdMicroUsd,
      unchargedMicroUsd: cost > charged ? cost - charged : undefined,
      latencyMs: outcome.latencyMs,
      stream: outcome.stream,
      clientAborted: outcome.clientAborted,
      usageEstimated: usage.estimated || undefined,
    },
  };
}

const RETRY_DELAYS_MS = [100, 250, 500, 1000, 2000, 4000, 8000, 15000, 30000];

/**
 * Settles exactly once: the write is idempotent on the request id, so it is retried through
 * store outages (about a minute) without any risk of charging twice.
 */
export async function settleRequest(ledger: Ledger, s: Settlement, delaysMs: readonly number[] = RETRY_DELAYS_MS): Promise<void> {
  const write = settlementWrite(s);
  for (let attempt = 0; ; attempt++) {
    try {
      await ledger.settle(write);
      return;
    } catch (err) {
      if (attempt >= delaysMs.length) throw err;
      await new Promise((resolve) => setTimeout(resolve, delaysMs[attempt]));
    }
  }
}
