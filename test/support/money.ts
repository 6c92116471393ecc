import type { ModelEntry } from '../../lambda/catalog';
import type { ChatCompletionRequest } from '../../lambda/contract/request';
import { CreditAdmission } from '../../lambda/money/admission';
import { Settlements } from '../../lambda/money/settlement';
import { TierCache } from '../../lambda/money/tier-cache';
import { estimatePromptTokens } from '../../lambda/money/tokens';
import type { AdmissionRequest, Outcome } from '../../lambda/money/types';
import type { Stores } from '../../lambda/runtime';
import type { KeyRecord } from '../../lambda/store/keys';
import type { TableNames } from '../../lambda/store/tables';

/** Admission and settlement over test tables, on a clock the test may move. */
export function moneyOver(
  stores: Stores,
  tables: TableNames,
  now: () => number = Date.now,
  options: { maxRequestMs?: number; store?: ConstructorParameters<typeof CreditAdmission>[0]['store']; rollupsTable?: string } = {},
) {
  const settlements = new Settlements({ store: stores.accounts, retryDelaysMs: [10, 50], rollupsTable: options.rollupsTable, now });
  const admission = new CreditAdmission({
    store: options.store ?? stores.accounts,
    holds: stores.holds,
    tiers: new TierCache(stores.tiers, 60_000, now),
    settlements,
    keysTable: tables.keys,
    maxRequestMs: options.maxRequestMs ?? 900_000,
    now,
  });
  return { admission, settlements };
}

/** What the chat endpoint asks admission for one chat request. */
export function chatAdmission(requestId: string, key: KeyRecord, model: ModelEntry, request: ChatCompletionRequest, startedAtMs: number): AdmissionRequest {
  return {
    requestId,
    key,
    model,
    startedAtMs,
    promptTokens: estimatePromptTokens(request, model.tokenRules),
    outputLimit: request.max_completion_tokens ?? request.max_tokens ?? undefined,
    n: request.n ?? 1,
    stream: request.stream === true,
  };
}

/** A completed answer with the provider's usage. */
export const completed = (usage?: Outcome['usage']): Outcome => ({
  status: 'completed',
  httpStatus: 200,
  usage,
  completionText: '',
  latencyMs: 1,
  stream: false,
});
