import type { ModelEntry } from '../catalog';
import { GatewayError, insufficientQuota, invalidApiKey, rateLimited } from '../contract/errors';
import type { ChatCompletionRequest } from '../contract/request';
import type { Account, AccountsStore } from '../store/accounts';
import type { KeyRecord } from '../store/keys';
import type { Tier } from '../store/tiers';
import { settleRequest, type Ledger } from '../settlement';
import {
  countsAt,
  formatResetDuration,
  maxCountBefore,
  minuteOf,
  msUntilAllowed,
  msUntilReset,
  remaining,
  WINDOW_MS,
  type WindowCounts,
} from './sliding-window';
import { estimatePromptTokens } from './tokens';
import type { Admission, AdmissionRequest, Admitted } from './types';

/** Tiers by id, kept fresh in the background (see TierCache). */
export interface TierLookup {
  get(id: string): Tier | undefined;
  ready(): Promise<void>;
}

export interface Limits {
  tier: string;
  /** Custom limits on the account; absent means the tier's. */
  customRpm?: number;
  customTpm?: number;
  /** Effective limits; 0 means no limit. */
  rpm: number;
  tpm: number;
}

/** The hold for one request, in micro-USD, and the output limit it was computed for. */
export interface Hold {
  promptTokens: number;
  outputTokens: number;
  holdMicroUsd: number;
  /** Tokens counted against the minute's token limit at admission. */
  rateTokens: number;
  /** True when the client named no output limit, so it may be lowered to what the balance pays. */
  lowerable: boolean;
}

/** Writes one admission may make: a stale belief costs one, a lowered hold under contention another. */
const ATTEMPTS = 8;

/** How fresh the cached account item must be to answer a 429 without a write. */
const CACHED_429_MS = 1_000;

/** When to try giving back the hold of an admission write whose answer never came. */
const RELEASE_DELAYS_MS = [250, 3_000, 15_000];

/** A refused connection or a 4xx (throttling, validation) means DynamoDB never applied the write. */
function mayHaveLanded(err: unknown): boolean {
  const e = err as { $metadata?: { httpStatusCode?: number }; code?: string; cause?: { code?: string } };
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && status < 500) return false;
  return (e.code ?? e.cause?.code) !== 'ECONNREFUSED';
}

export function clientOutputLimit(request: ChatCompletionRequest): number | undefined {
  return request.max_completion_tokens ?? request.max_tokens ?? undefined;
}

/** Worst-case cost: prompt × input price + output limit × output price × n (ARCHITECTURE §3). */
export function computeHold(model: ModelEntry, request: ChatCompletionRequest, promptTokens: number, outputTokens?: number): Hold {
  const n = request.n ?? 1;
  const clientLimit = clientOutputLimit(request);
  const out = Math.min(outputTokens ?? clientLimit ?? model.maxOutputTokens, model.maxOutputTokens);
  const nano = promptTokens * model.price.inputPerToken + out * n * model.price.outputPerToken;
  return {
    promptTokens,
    outputTokens: out,
    holdMicroUsd: Math.ceil(nano / 1000),
    rateTokens: promptTokens + (clientLimit !== undefined ? Math.min(clientLimit, model.maxOutputTokens) * n : 0),
    lowerable: clientLimit === undefined,
  };
}

/** The most output tokens a balance pays for, after the prompt; 0 when it cannot pay for one. */
export function affordableOutputTokens(model: ModelEntry, request: ChatCompletionRequest, promptTokens: number, balanceMicroUsd: number): number {
  const perToken = model.price.outputPerToken * (request.n ?? 1);
  const left = balanceMicroUsd * 1000 - promptTokens * model.price.inputPerToken;
  if (left <= 0) return 0;
  if (perToken === 0) return model.maxOutputTokens;
  return Math.min(model.maxOutputTokens, Math.floor(left / perToken));
}

export const usd = (micro: number) => `$${(micro / 1e6).toFixed(6)}`;

/**
 * Admission on the account item: one conditional write when this instance has seen the account
 * before, which counts the request and takes the hold, or answers 429/402 from the old item.
 */
export class CreditAdmission implements Admission {
  /** The account item as this instance last saw it; only a hint, the write's condition decides. */
  private readonly accounts = new Map<string, Account>();
  /** When each cached account item was read or written. */
  private readonly seenAtMs = new Map<string, number>();
  /** Own counters of keys with caps, as last seen. */
  private readonly keyCounts = new Map<string, WindowCounts>();

  constructor(
    private readonly store: AccountsStore,
    private readonly tiers: TierLookup,
    private readonly ledger: Ledger,
    private readonly now: () => number = Date.now,
    /** The keys table, where capped keys keep their own counters. */
    private readonly keysTable = 'itapi-keys',
    /** Runs work after the answer (BackgroundTasks.run). */
    private readonly schedule: (task: () => Promise<unknown>) => void = (task) => void task().catch(() => undefined),
  ) {}

  allowsModel(key: KeyRecord, modelId: string): boolean {
    if (key.models && !key.models.includes(modelId)) return false;
    const tierId = this.accounts.get(key.accountId)?.tier ?? key.accountTier;
    const tierModels = tierId ? this.tiers.get(tierId)?.models : undefined;
    return !tierModels || tierModels.includes(modelId);
  }

  headersFor(key: KeyRecord): Record<string, string> | undefined {
    const account = this.accounts.get(key.accountId);
    const limits = this.limitsOf(key, account);
    const counts = account?.counts ?? { window: 0, requests: 0, tokens: 0, prevRequests: 0, prevTokens: 0 };
    return rateLimitHeaders(limits, counts, this.now());
  }

  /** What the key's account may do per minute, from the freshest state this instance has. */
  limitsOf(key: KeyRecord, account: Account | undefined): Limits {
    const tier = account?.tier ?? key.accountTier ?? 'free';
    const customRpm = account ? account.rpm : key.accountRpm;
    const customTpm = account ? account.tpm : key.accountTpm;
    const t = this.tiers.get(tier);
    return { tier, customRpm, customTpm, rpm: customRpm ?? t?.rpm ?? 0, tpm: customTpm ?? t?.tpm ?? 0 };
  }

  async admit(req: AdmissionRequest): Promise<Admitted> {
    const { key, model, request } = req;
    await this.tiers.ready();
    const promptTokens = estimatePromptTokens(request);
    let account = this.accounts.get(key.accountId);
    let hold = computeHold(model, request, promptTokens);
    if (hold.lowerable && account && account.balanceMicroUsd < hold.holdMicroUsd) {
      hold = this.lowered(model, request, promptTokens, account.balanceMicroUsd);
    }

    let lastFailure: 'stale' | 'balance' = 'stale';
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      // A clock a moment behind another instance's sees the item already in the next minute: act
      // as at that minute's start (the previous minute then weighs in full, the cautious side).
      const seenWindow = Math.max(account?.counts.window ?? 0, this.keyCounts.get(key.keyId)?.window ?? 0);
      const nowMs = Math.max(this.now(), seenWindow * WINDOW_MS);
      const limits = this.limitsOf(key, account);
      if (!this.tiers.get(limits.tier) && (limits.customRpm === undefined || limits.customTpm === undefined)) {
        throw new GatewayError(403, 'permission_error', 'tier_not_found', `The account's tier '${limits.tier}' is not configured.`);
      }
      const believed = account?.counts ?? freshCounts(nowMs);
      // Requests are only ever added within a minute, and the previous minute's count is fixed: if
      // the item as seen within the last second is over the request limit, the item is too. No
      // write needed (a limit raised or an account changed meanwhile shows within that second).
      if (account && limits.rpm && believed.window === minuteOf(nowMs) && nowMs - (this.seenAtMs.get(key.accountId) ?? 0) < CACHED_429_MS) {
        const waitMs = msUntilAllowed(limits.rpm, believed.prevRequests, believed.requests, 1, nowMs);
        if (waitMs > 0) throw this.rateLimitError(limits, believed, hold, waitMs, nowMs, 'the account');
      }
      const keyLimits = keyCaps(key);
      const keyBelieved = keyLimits ? (this.keyCounts.get(key.keyId) ?? freshCounts(nowMs)) : undefined;
      const write = {
        accountId: key.accountId,
        requestId: req.requestId,
        nowMs,
        believed,
        limits: { tier: limits.tier, rpm: limits.customRpm, tpm: limits.customTpm },
        holdMicroUsd: hold.holdMicroUsd,
        tokens: hold.rateTokens,
        ...writeBounds(limits, believed, hold.rateTokens, nowMs),
        key:
          keyLimits && keyBelieved
            ? {
                keysTable: this.keysTable,
                keyHash: key.keyHash,
                believed: keyBelieved,
                tokens: hold.rateTokens,
                ...writeBounds(keyLimits, keyBelieved, hold.rateTokens, nowMs),
              }
            : undefined,
      };
      let result: Awaited<ReturnType<AccountsStore['admit']>>;
      try {
        result = await this.store.admit(write);
      } catch (err) {
        // No answer: the write may still have landed. Give its hold back if it did (the client
        // gets 503); the release only acts on a hold that is there, so trying again is safe.
        if (mayHaveLanded(err)) this.releaseLater(key.accountId, req.requestId, hold.holdMicroUsd);
        throw err;
      }
      if (result.keyCounts) this.keyCounts.set(key.keyId, result.keyCounts);
      if (result.ok) {
        // A transaction returns no item: the account is what the write's conditions proved, advanced.
        const next = result.account ?? {
          ...(account ?? { id: key.accountId, name: '', status: 'active' as const, createdAtMs: 0 }),
          tier: limits.tier,
          rpm: limits.customRpm,
          tpm: limits.customTpm,
          balanceMicroUsd: (account?.balanceMicroUsd ?? hold.holdMicroUsd) - hold.holdMicroUsd,
          counts: result.accountCounts,
        };
        this.remember(key.accountId, next);
        return this.admitted(req, next, limits, hold, promptTokens, keyLimits && result.keyCounts);
      }
      const old = result.account;
      if (!old) {
        this.accounts.delete(key.accountId);
        throw invalidApiKey("The key's account no longer exists.");
      }
      this.remember(key.accountId, old);
      if (old.holds?.[req.requestId] !== undefined) {
        // This very write landed before (its answer was lost and it was sent again).
        return this.admitted(req, old, limits, { ...hold, holdMicroUsd: old.holds[req.requestId] }, promptTokens, result.keyCounts);
      }
      if (!old.holds) {
        await this.store.ensureHolds(key.accountId);
        continue;
      }
      if (old.status !== 'active') {
        throw new GatewayError(403, 'permission_error', 'account_disabled', 'The account of this key is disabled.');
      }
      const accountStale = result.accountFailed && (limitsChanged(limits, old) || countsStale(believed, old.counts, nowMs));
      const keyStale = result.keyFailed && keyBelieved !== undefined && result.keyCounts !== undefined && countsStale(keyBelieved, result.keyCounts, nowMs);
      account = old;
      lastFailure = 'stale';
      if (accountStale || keyStale) continue;
      // The beliefs were right, so the old items say exactly why: rate limits first, then money.
      if (result.keyFailed && keyLimits && result.keyCounts) {
        const view = countsAt(result.keyCounts, nowMs);
        const waitMs = waitFor(keyLimits, view, hold.rateTokens, nowMs);
        if (waitMs > 0) throw this.rateLimitError(keyLimits, view, hold, waitMs, nowMs, 'this key');
      }
      if (!result.accountFailed) continue;
      const trueLimits = this.limitsOf(key, old);
      const view = countsAt(old.counts, nowMs);
      const waitMs = waitFor(trueLimits, view, hold.rateTokens, nowMs);
      if (waitMs > 0) throw this.rateLimitError(trueLimits, view, hold, waitMs, nowMs, 'the account');
      if (old.balanceMicroUsd < hold.holdMicroUsd) {
        if (hold.lowerable) {
          // Others took from the balance meanwhile: lower again to what is left (402 once nothing is).
          const lowered = this.lowered(model, request, promptTokens, old.balanceMicroUsd);
          if (lowered.holdMicroUsd < hold.holdMicroUsd) {
            hold = lowered;
            lastFailure = 'balance';
            continue;
          }
        }
        throw insufficientQuota(
          `You exceeded your current quota: this request needs ${usd(hold.holdMicroUsd)} of credit ` +
            `(${hold.promptTokens} prompt tokens and up to ${hold.outputTokens} output tokens of ${model.id}), ` +
            `and the balance is ${usd(old.balanceMicroUsd)}. Add credits, or lower max_tokens.`,
        );
      }
    }
    if (lastFailure === 'balance') {
      throw insufficientQuota(
        `You exceeded your current quota: the balance of ${usd(account?.balanceMicroUsd ?? 0)} kept falling below ` +
          `what this request needs while other requests of the account were admitted. Add credits, or lower max_tokens.`,
      );
    }
    throw new GatewayError(503, 'server_overloaded', 'server_overloaded', 'The account is too busy; try again shortly.');
  }

  private remember(accountId: string, account: Account): void {
    this.accounts.set(accountId, account);
    this.seenAtMs.set(accountId, this.now());
  }

  private releaseLater(accountId: string, requestId: string, holdMicroUsd: number): void {
    this.schedule(async () => {
      // Soon, and again later in case the write was still on its way when the first try ran.
      for (const delayMs of RELEASE_DELAYS_MS) {
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        try {
          if (await this.store.releaseHold(accountId, requestId, holdMicroUsd)) return;
        } catch {
          // The store is still away: the next try.
        }
      }
    });
  }

  private lowered(model: ModelEntry, request: ChatCompletionRequest, promptTokens: number, balanceMicroUsd: number): Hold {
    const out = affordableOutputTokens(model, request, promptTokens, balanceMicroUsd);
    if (out < 1) {
      throw insufficientQuota(
        `You exceeded your current quota: the balance is ${usd(balanceMicroUsd)}, which does not pay for ` +
          `the ${promptTokens} prompt tokens of this request and one output token of ${model.id}. Add credits.`,
      );
    }
    return { ...computeHold(model, request, promptTokens, out), lowerable: true };
  }

  private rateLimitError(
    limits: Pick<Limits, 'rpm' | 'tpm'>,
    view: WindowCounts,
    hold: Hold,
    waitMs: number,
    nowMs: number,
    whose: string,
  ): GatewayError {
    const requestsBound = limits.rpm && msUntilAllowed(limits.rpm, view.prevRequests, view.requests, 1, nowMs) > 0;
    const message = !Number.isFinite(waitMs)
      ? `Request too large: it needs ${hold.rateTokens} tokens and the limit is ${limits.tpm} tokens per minute.`
      : requestsBound
        ? `Rate limit reached for requests of ${whose}: limit ${limits.rpm} per minute. Please try again in ${formatResetDuration(waitMs)}.`
        : `Rate limit reached for tokens of ${whose}: limit ${limits.tpm} per minute, this request needs ${hold.rateTokens}. Please try again in ${formatResetDuration(waitMs)}.`;
    const error = rateLimited(message, Number.isFinite(waitMs) ? waitMs : WINDOW_MS);
    Object.assign(error.headers, rateLimitHeaders(limits, view, nowMs));
    return error;
  }

  private admitted(
    req: AdmissionRequest,
    account: Account,
    limits: Limits,
    hold: Hold,
    promptTokens: number,
    keyCounts: WindowCounts | undefined,
  ): Admitted {
    const nowMs = this.now();
    const headers = rateLimitHeaders(limits, account.counts, nowMs);
    const caps = keyCaps(req.key);
    // Where the key's own cap is the lower one, the headers tell the key's numbers.
    if (caps && keyCounts) {
      const keyHeaders = rateLimitHeaders(caps, keyCounts, nowMs);
      if (caps.rpm && (!limits.rpm || caps.rpm < limits.rpm)) copyKind(keyHeaders, headers, 'requests');
      if (caps.tpm && (!limits.tpm || caps.tpm < limits.tpm)) copyKind(keyHeaders, headers, 'tokens');
    }
    return {
      maxOutputTokens: hold.lowerable && hold.outputTokens < req.model.maxOutputTokens ? hold.outputTokens : undefined,
      headers,
      settle: (outcome) =>
        settleRequest(this.ledger, {
          requestId: req.requestId,
          key: req.key,
          model: req.model,
          startedAtMs: req.startedAtMs,
          admittedWindow: account.counts.window,
          holdMicroUsd: hold.holdMicroUsd,
          rateTokens: hold.rateTokens,
          promptTokensEstimate: promptTokens,
          outcome,
        }),
    };
  }
}

/** The write's conditions, from the believed item (see AccountsStore.admit). */
function writeBounds(limits: Pick<Limits, 'rpm' | 'tpm'>, believed: WindowCounts, tokens: number, nowMs: number) {
  const minute = minuteOf(nowMs);
  if (believed.window === minute) {
    return {
      maxRequestsBefore: limits.rpm ? maxCountBefore(limits.rpm, believed.prevRequests, 1, nowMs) : undefined,
      maxTokensBefore: limits.tpm ? maxCountBefore(limits.tpm, believed.prevTokens, tokens, nowMs) : undefined,
    };
  }
  // Rolling over: the ending minute becomes the previous one, weighted by what is left of it.
  const share = (WINDOW_MS - (nowMs % WINDOW_MS)) / WINDOW_MS;
  return {
    maxPrevRequests: limits.rpm ? Math.floor((limits.rpm - 1) / share + 1e-9) : undefined,
    maxPrevTokens: limits.tpm ? Math.floor((limits.tpm - tokens) / share + 1e-9) : undefined,
  };
}

function freshCounts(nowMs: number): WindowCounts {
  return { window: minuteOf(nowMs), requests: 0, tokens: 0, prevRequests: 0, prevTokens: 0 };
}

/** A key's own caps, when it has any (0 in one dimension means that dimension is the account's alone). */
function keyCaps(key: KeyRecord): Pick<Limits, 'rpm' | 'tpm'> | undefined {
  if (!key.rpm && !key.tpm) return undefined;
  return { rpm: key.rpm ?? 0, tpm: key.tpm ?? 0 };
}

function waitFor(limits: Pick<Limits, 'rpm' | 'tpm'>, view: WindowCounts, tokens: number, nowMs: number): number {
  return Math.max(
    limits.rpm ? msUntilAllowed(limits.rpm, view.prevRequests, view.requests, 1, nowMs) : 0,
    limits.tpm ? msUntilAllowed(limits.tpm, view.prevTokens, view.tokens, tokens, nowMs) : 0,
  );
}

function limitsChanged(limits: Limits, old: Account): boolean {
  return old.tier !== limits.tier || old.rpm !== limits.customRpm || old.tpm !== limits.customTpm;
}

/** True when a write failed because its belief about the counters was wrong, not because of limits. */
function countsStale(believed: WindowCounts, actual: WindowCounts, nowMs: number): boolean {
  const minute = minuteOf(nowMs);
  if (believed.window === minute) {
    return actual.window !== minute || actual.prevRequests !== believed.prevRequests || actual.prevTokens !== believed.prevTokens;
  }
  if (believed.window === minute - 1) return actual.window !== minute - 1;
  return actual.window >= minute - 1;
}

function copyKind(from: Record<string, string>, to: Record<string, string>, kind: 'requests' | 'tokens'): void {
  for (const part of ['limit', 'remaining', 'reset']) {
    const name = `x-ratelimit-${part}-${kind}`;
    if (from[name] !== undefined) to[name] = from[name];
  }
}

/** The six OpenAI `x-ratelimit-*` headers for an account's state at `nowMs`. */
export function rateLimitHeaders(limits: Pick<Limits, 'rpm' | 'tpm'>, counts: WindowCounts, nowMs: number): Record<string, string> {
  const view = countsAt(counts, nowMs);
  const headers: Record<string, string> = {};
  const set = (kind: 'requests' | 'tokens', limit: number, prev: number, cur: number) => {
    if (!limit) return;
    headers[`x-ratelimit-limit-${kind}`] = String(limit);
    headers[`x-ratelimit-remaining-${kind}`] = String(remaining(limit, prev, cur, nowMs));
    headers[`x-ratelimit-reset-${kind}`] = formatResetDuration(msUntilReset(prev, cur, nowMs));
  };
  set('requests', limits.rpm, view.prevRequests, view.requests);
  set('tokens', limits.tpm, view.prevTokens, view.tokens);
  return headers;
}
