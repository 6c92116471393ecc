import { GatewayError, insufficientQuota, invalidApiKey, rateLimited } from '../contract/errors';
import { conflictBackoff, type Account, type AccountsStore, type AdmitResult, type AdmitWrite } from '../store/accounts';
import type { HoldRecord, HoldsStore } from '../store/holds';
import type { KeyRecord } from '../store/keys';
import type { Tier } from '../store/tiers';
import { affordableOutputTokens, computeHold, outputTokensWithin, usd, type Hold } from './hold';
import { checkpointMicroUsd, requestSettlement, type Settlements } from './settlement';
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
import type { Admission, AdmissionRequest, Admitted, Outcome } from './types';

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

type Caps = Pick<Limits, 'rpm' | 'tpm'>;

export interface CreditAdmissionOptions {
  store: Pick<AccountsStore, 'admit'>;
  /** Where streaming requests checkpoint the output they delivered. @default none: nothing checkpointed */
  holds?: Pick<HoldsStore, 'checkpoint'>;
  tiers: TierLookup;
  settlements: Settlements;
  /** The keys table, where capped keys keep their own counters. */
  keysTable: string;
  /** The longest a request may run (ITAPI_MAX_REQUEST_S); its hold's deadline. */
  maxRequestMs: number;
  now?: () => number;
  /** Runs work after the answer (BackgroundTasks.run). */
  schedule?: (task: () => Promise<unknown>) => void;
}

/** Writes one admission may make with a definite answer: a stale belief costs one, a lowered hold another. */
const ATTEMPTS = 8;
/** Sends of the very same write (same token) after an answer that never came. */
const LOST_ANSWER_RESENDS = 2;
/** Writes refused because another transaction held the account item (real DynamoDB under load). */
const MAX_CONFLICTS = 12;

/** How fresh the cached account item must be to answer a 429, or to lower a hold, without a write. */
const CACHED_VIEW_MS = 1_000;

/** How long after giving up the hold of an admission write whose answer never came is given back. */
const RELEASE_DELAY_MS = 250;

/** A 4xx (throttling, validation) means DynamoDB answered and applied nothing; anything else may have landed. */
function answerMayBeLost(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number }; code?: string; cause?: { code?: string } };
  if (e.name === 'TransactionInProgressException') return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && status < 500) return false;
  return (e.code ?? e.cause?.code) !== 'ECONNREFUSED';
}

/**
 * Admission (ARCHITECTURE §3): one DynamoDB transaction before the upstream call counts the
 * request and its tokens in the account's minute, takes the hold from the balance and writes the
 * hold's own item. Its conditions are computed from the account item as this instance last saw
 * it; a stale belief fails the write and the item that comes back decides (retry, 429 or 402).
 */
export class CreditAdmission implements Admission {
  /** The account item as this instance last saw it, advanced by its own writes; only a hint. */
  private readonly accounts = new Map<string, Account>();
  /** When each cached account item was last read from DynamoDB (a failed write's old item). */
  private readonly readAtMs = new Map<string, number>();
  /** Own counters of keys with caps, as last seen. */
  private readonly keyCounts = new Map<string, WindowCounts>();
  private readonly now: () => number;
  private readonly schedule: (task: () => Promise<unknown>) => void;

  constructor(private readonly options: CreditAdmissionOptions) {
    this.now = options.now ?? Date.now;
    this.schedule = options.schedule ?? ((task) => void task().catch(() => undefined));
  }

  allowsModel(key: KeyRecord, modelId: string): boolean {
    if (key.models && !key.models.includes(modelId)) return false;
    const tierId = this.accounts.get(key.accountId)?.tier ?? key.accountTier;
    const tierModels = tierId ? this.options.tiers.get(tierId)?.models : undefined;
    return !tierModels || tierModels.includes(modelId);
  }

  headersFor(key: KeyRecord): Record<string, string> | undefined {
    const account = this.accounts.get(key.accountId);
    const limits = this.limitsOf(key, account);
    const nowMs = this.now();
    return this.headers(key, limits, account?.counts ?? freshCounts(nowMs), this.keyCounts.get(key.keyId), nowMs);
  }

  /** What the key's account may do per minute, from the freshest state this instance has. */
  limitsOf(key: KeyRecord, account: Account | undefined): Limits {
    const tier = account?.tier ?? key.accountTier ?? 'free';
    const customRpm = account ? account.rpm : key.accountRpm;
    const customTpm = account ? account.tpm : key.accountTpm;
    const t = this.options.tiers.get(tier);
    return { tier, customRpm, customTpm, rpm: customRpm ?? t?.rpm ?? 0, tpm: customTpm ?? t?.tpm ?? 0 };
  }

  async admit(req: AdmissionRequest): Promise<Admitted> {
    const { key, model } = req;
    await this.options.tiers.ready();
    let account = this.accounts.get(key.accountId);
    let hold = computeHold(model, req);
    // A balance read within the last second (and kept up by this instance's own holds and
    // refunds) may lower the hold at once; an older one only hints, and the write decides.
    if (hold.lowerable && account && this.fresh(key.accountId) && account.balanceMicroUsd < hold.holdMicroUsd) {
      const out = affordableOutputTokens(model, req, account.balanceMicroUsd);
      if (out >= 1) hold = computeHold(model, req, out);
    }
    /** Writes whose answer never came: one of them may hold the request's hold item. */
    const mayHaveLanded: HoldRecord[] = [];
    let tokenSeq = 0;
    let conflicts = 0;
    let lastFailure: 'stale' | 'balance' = 'stale';
    try {
      for (let attempt = 0; attempt < ATTEMPTS; ) {
        // A clock a moment behind another instance's sees the item already in the next minute: act
        // as at that minute's start (the previous minute then weighs in full, the cautious side).
        const seenWindow = Math.max(account?.counts.window ?? 0, this.keyCounts.get(key.keyId)?.window ?? 0);
        const nowMs = Math.max(this.now(), seenWindow * WINDOW_MS);
        const limits = this.limitsOf(key, account);
        if (!this.options.tiers.get(limits.tier) && (limits.customRpm === undefined || limits.customTpm === undefined)) {
          throw new GatewayError(403, 'permission_error', 'tier_not_found', `The account's tier '${limits.tier}' is not configured.`);
        }
        const believed = account?.counts ?? freshCounts(nowMs);
        const caps = keyCaps(key);
        const keyBelieved = caps ? (this.keyCounts.get(key.keyId) ?? freshCounts(nowMs)) : undefined;
        // Requests are only ever added within a minute, and the previous minute's count is fixed: if
        // the item as read within the last second is over the request limit, the item is too.
        if (account && limits.rpm && believed.window === minuteOf(nowMs) && this.fresh(key.accountId)) {
          const waitMs = msUntilAllowed(limits.rpm, believed.prevRequests, believed.requests, 1, nowMs);
          if (waitMs > 0) throw this.rateLimitError(key, limits, believed, hold, waitMs, nowMs, 'the account');
        }
        hold = this.fitted(req, hold, limits, caps);
        const record = this.holdRecord(req, hold, nowMs, caps !== undefined);
        const write: AdmitWrite = {
          accountId: key.accountId,
          nowMs,
          believed,
          limits: { tier: limits.tier, rpm: limits.customRpm, tpm: limits.customTpm },
          hold: record,
          token: `${req.requestId}.${tokenSeq}`,
          tokens: hold.rateTokens,
          ...writeBounds(limits, believed, hold.rateTokens, nowMs),
          key:
            caps && keyBelieved
              ? {
                  keysTable: this.options.keysTable,
                  keyHash: key.keyHash,
                  believed: keyBelieved,
                  tokens: hold.rateTokens,
                  ...writeBounds(caps, keyBelieved, hold.rateTokens, nowMs),
                }
              : undefined,
        };
        const result = await this.send(write, mayHaveLanded);
        tokenSeq++;
        if (result.ok) {
          mayHaveLanded.length = 0;
          if (result.keyCounts) this.keyCounts.set(key.keyId, result.keyCounts);
          const next: Account = {
            ...(account ?? { id: key.accountId, name: '', status: 'active' as const, createdAtMs: 0, balanceMicroUsd: 0, heldMicroUsd: 0, inFlight: 0 }),
            tier: limits.tier,
            rpm: limits.customRpm,
            tpm: limits.customTpm,
            balanceMicroUsd: (account?.balanceMicroUsd ?? 0) - hold.holdMicroUsd,
            counts: result.accountCounts,
          };
          this.accounts.set(key.accountId, next);
          return this.admitted(req, record, limits, hold, nowMs);
        }
        if (result.reason === 'admitted') {
          // An earlier send of this request landed though its answer was lost: that is the hold.
          mayHaveLanded.length = 0;
          const landed = result.hold ?? record;
          return this.admitted(req, landed, limits, computeHold(model, req, outputOf(landed, hold)), nowMs);
        }
        if (result.reason === 'conflict') {
          if (++conflicts > MAX_CONFLICTS) break;
          await conflictBackoff(conflicts);
          continue;
        }
        attempt++;
        if (result.keyCounts) this.keyCounts.set(key.keyId, result.keyCounts);
        const old = result.account;
        if (!old) {
          this.accounts.delete(key.accountId);
          throw invalidApiKey("The key's account no longer exists.");
        }
        this.accounts.set(key.accountId, old);
        this.readAtMs.set(key.accountId, this.now());
        if (old.status !== 'active') {
          throw new GatewayError(403, 'permission_error', 'account_disabled', 'The account of this key is disabled.');
        }
        const accountStale = result.accountFailed && (limitsChanged(limits, old) || countsStale(believed, old.counts, nowMs));
        const keyStale = result.keyFailed && keyBelieved !== undefined && result.keyCounts !== undefined && countsStale(keyBelieved, result.keyCounts, nowMs);
        account = old;
        lastFailure = 'stale';
        if (accountStale || keyStale) continue;
        // The beliefs were right, so the old items say exactly why: rate limits first, then money.
        if (result.keyFailed && caps && result.keyCounts) {
          const view = countsAt(result.keyCounts, nowMs);
          const waitMs = waitFor(caps, view, hold.rateTokens, nowMs);
          if (waitMs > 0) throw this.rateLimitError(key, caps, view, hold, waitMs, nowMs, 'this key');
        }
        if (!result.accountFailed) continue;
        const trueLimits = this.limitsOf(key, old);
        const view = countsAt(old.counts, nowMs);
        const waitMs = waitFor(trueLimits, view, hold.rateTokens, nowMs);
        if (waitMs > 0) throw this.rateLimitError(key, trueLimits, view, hold, waitMs, nowMs, 'the account');
        if (old.balanceMicroUsd < hold.holdMicroUsd) {
          if (hold.lowerable) {
            // The balance cannot pay the model's maximum: lower the output to what it pays (402 once nothing).
            const out = affordableOutputTokens(model, req, old.balanceMicroUsd);
            if (out < 1) throw cannotPayOneToken(req, old.balanceMicroUsd);
            if (out < hold.outputTokens) {
              hold = computeHold(model, req, out);
              lastFailure = 'balance';
              continue;
            }
          }
          throw insufficientQuota(
            `You exceeded your current quota: this request needs ${usd(hold.holdMicroUsd)} of credit ` +
              `(${hold.promptTokens} prompt tokens and up to ${hold.outputTokens * hold.n} output tokens of ${model.id}), ` +
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
    } catch (err) {
      // The client gets an error: give back any hold a write whose answer was lost may have taken.
      for (const record of mayHaveLanded) this.releaseLater(record);
      throw err;
    }
  }

  /**
   * Sends one admission write; after an answer that never came, the very same write (same
   * ClientRequestToken) again, which DynamoDB applies at most once.
   */
  private async send(write: AdmitWrite, mayHaveLanded: HoldRecord[]): Promise<AdmitResult> {
    for (let resend = 0; ; resend++) {
      try {
        return await this.options.store.admit(write);
      } catch (err) {
        if (!answerMayBeLost(err)) throw err;
        if (!mayHaveLanded.includes(write.hold)) mayHaveLanded.push(write.hold);
        if (resend >= LOST_ANSWER_RESENDS) throw err;
        await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** resend));
      }
    }
  }

  private fresh(accountId: string): boolean {
    return this.now() - (this.readAtMs.get(accountId) ?? Number.NEGATIVE_INFINITY) < CACHED_VIEW_MS;
  }

  /**
   * The hold fitted to the token limits: a request with no output limit of its own that would
   * alone exceed the account's (or the key's) tokens per minute asks for fewer output tokens;
   * one that cannot fit even so, or whose own limit does not fit, gets 429.
   */
  private fitted(req: AdmissionRequest, hold: Hold, limits: Caps, caps: Caps | undefined): Hold {
    const tpm = Math.min(limits.tpm || Infinity, caps?.tpm || Infinity);
    if (hold.rateTokens <= tpm) return hold;
    const out = outputTokensWithin(tpm, req);
    if (hold.lowerable && out >= 1) return computeHold(req.model, req, Math.min(out, hold.outputTokens));
    throw rateLimited(
      `Request too large for ${req.model.id}: it needs ${hold.rateTokens} tokens (${hold.promptTokens} in the prompt and up to ` +
        `${hold.outputTokens * hold.n} of output) and the limit is ${tpm} tokens per minute. Send a shorter prompt or a lower max_tokens.`,
      WINDOW_MS,
    );
  }

  private holdRecord(req: AdmissionRequest, hold: Hold, nowMs: number, capped: boolean): HoldRecord {
    const minute = minuteOf(nowMs);
    return {
      requestId: req.requestId,
      accountId: req.key.accountId,
      keyId: req.key.keyId,
      keyHash: capped ? req.key.keyHash : undefined,
      model: req.model.id,
      holdMicroUsd: hold.holdMicroUsd,
      promptMicroUsd: hold.promptMicroUsd,
      promptTokens: hold.promptTokens,
      rateTokens: hold.rateTokens,
      window: minute,
      keyWindow: capped ? minute : undefined,
      startedAtMs: req.startedAtMs,
      deadlineMs: req.startedAtMs + this.options.maxRequestMs,
      stream: req.stream,
    };
  }

  /**
   * Gives back the hold of a write that may have landed though its request gave up: a moment
   * later (a write still on its way lands or fails meanwhile), through the settlement path, so it
   * is retried, queued if the store stays away, and recorded even if the hold is not there yet.
   */
  private releaseLater(record: HoldRecord): void {
    const free = { price: { inputPerToken: 0, outputPerToken: 0, cachedInputPerToken: 0 } };
    const outcome: Outcome = { status: 'failed', httpStatus: 503, errorCode: 'admission_unanswered', completionText: '', latencyMs: 0, stream: record.stream };
    const release = { ...requestSettlement(record, free, outcome, this.options.keysTable), release: true };
    this.schedule(async () => {
      await new Promise((resolve) => setTimeout(resolve, RELEASE_DELAY_MS));
      await this.options.settlements.apply(release);
    });
  }

  private rateLimitError(key: KeyRecord, limits: Caps, view: WindowCounts, hold: Hold, waitMs: number, nowMs: number, whose: string): GatewayError {
    const requestsBound = limits.rpm && msUntilAllowed(limits.rpm, view.prevRequests, view.requests, 1, nowMs) > 0;
    const message = !Number.isFinite(waitMs)
      ? `Request too large: it needs ${hold.rateTokens} tokens and the limit is ${limits.tpm} tokens per minute.`
      : requestsBound
        ? `Rate limit reached for requests of ${whose}: limit ${limits.rpm} per minute. Please try again in ${formatResetDuration(waitMs)}.`
        : `Rate limit reached for tokens of ${whose}: limit ${limits.tpm} per minute, this request needs ${hold.rateTokens}. Please try again in ${formatResetDuration(waitMs)}.`;
    const error = rateLimited(message, Number.isFinite(waitMs) ? waitMs : WINDOW_MS);
    // All six headers, whichever counter refused: the account's, with the key's where its cap is lower.
    const account = this.accounts.get(key.accountId);
    const accountLimits = this.limitsOf(key, account);
    const accountCounts = whose === 'the account' ? view : (account?.counts ?? freshCounts(nowMs));
    const keyView = whose === 'this key' ? view : this.keyCounts.get(key.keyId);
    Object.assign(error.headers, this.headers(key, accountLimits, accountCounts, keyView, nowMs));
    return error;
  }

  /** The six `x-ratelimit-*` headers: the account's, the key's own where its cap is the lower one. */
  private headers(key: KeyRecord, limits: Caps, accountCounts: WindowCounts, keyCounts: WindowCounts | undefined, nowMs: number): Record<string, string> {
    const headers = rateLimitHeaders(limits, accountCounts, nowMs);
    const caps = keyCaps(key);
    if (caps) {
      const keyHeaders = rateLimitHeaders(caps, keyCounts ?? freshCounts(nowMs), nowMs);
      if (caps.rpm && (!limits.rpm || caps.rpm < limits.rpm)) copyKind(keyHeaders, headers, 'requests');
      if (caps.tpm && (!limits.tpm || caps.tpm < limits.tpm)) copyKind(keyHeaders, headers, 'tokens');
    }
    return headers;
  }

  private admitted(req: AdmissionRequest, record: HoldRecord, limits: Limits, hold: Hold, nowMs: number): Admitted {
    const { key, model } = req;
    const counts = this.accounts.get(key.accountId)?.counts ?? freshCounts(nowMs);
    return {
      outputTokens: hold.outputTokens,
      outputLowered: hold.lowerable && hold.outputTokens < model.maxOutputTokens,
      headers: this.headers(key, limits, counts, this.keyCounts.get(key.keyId), nowMs),
      deadlineMs: record.deadlineMs,
      settle: async (outcome: Outcome) => {
        const write = requestSettlement(record, model, outcome, this.options.keysTable);
        const result = await this.options.settlements.apply(write, this.accounts.get(key.accountId)?.counts.window);
        // A refund that landed raises this instance's view of the balance as well.
        const cached = this.accounts.get(key.accountId);
        if (cached && typeof result === 'object' && result.settled) cached.balanceMicroUsd += result.refundMicroUsd;
      },
      checkpoint: this.options.holds
        ? async (outputTokens: number) => {
            await this.options.holds!.checkpoint(record, outputTokens, checkpointMicroUsd(model, record, outputTokens), this.now());
          }
        : undefined,
    };
  }
}

/** The output tokens an already landed hold pays for (the same request's, so its prompt and n). */
function outputOf(landed: HoldRecord, hold: Hold): number {
  return Math.max(0, Math.round((landed.rateTokens - landed.promptTokens) / hold.n));
}

function cannotPayOneToken(req: AdmissionRequest, balanceMicroUsd: number): GatewayError {
  return insufficientQuota(
    `You exceeded your current quota: the balance is ${usd(balanceMicroUsd)}, which does not pay for ` +
      `the ${req.promptTokens} prompt tokens of this request and one output token of ${req.model.id}. Add credits.`,
  );
}

/** The write's conditions, from the believed item (see AccountsStore.admit). */
function writeBounds(limits: Caps, believed: WindowCounts, tokens: number, nowMs: number) {
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
function keyCaps(key: KeyRecord): Caps | undefined {
  if (!key.rpm && !key.tpm) return undefined;
  return { rpm: key.rpm ?? 0, tpm: key.tpm ?? 0 };
}

function waitFor(limits: Caps, view: WindowCounts, tokens: number, nowMs: number): number {
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
export function rateLimitHeaders(limits: Caps, counts: WindowCounts, nowMs: number): Record<string, string> {
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
