import { warmTokenizer } from './tokens';
import { GatewayError, insufficientQuota, invalidApiKey, invalidRequest, rateLimited } from '../contract/errors';
import { admitGroupable, conflictBackoff, MAX_ADMIT_GROUP, sameAdmitGroup, type Account, type AccountsStore, type AdmitResult, type AdmitWrite } from '../store/accounts';
import { GroupCommit } from './group-commit';
import type { HoldRecord, HoldsStore } from '../store/holds';
import { type KeySpend, type KeyRecord, monthOf } from '../store/keys';
import type { Tier } from '../store/tiers';
import { affordableOutputTokens, computeHold, usd, type Hold } from './hold';
import { FREE_PRICE } from './cost';
import { checkpointMicroUsd, requestSettlement, type Settlements } from './settlement';
import {
  countsAt,
  formatResetDuration,
  maxCountBefore,
  minuteOf,
  msUntilAllowed,
  msUntilReset,
  remaining,
  toldWaitMs,
  WINDOW_MS,
  type WindowCounts,
} from '../limits/sliding-window';
import { shouldSpeculate, SPECULATION_READ_MAX_AGE_MS, type AccountView, type SpeculationVerdict } from './speculation';
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
  /** `get` (optional) lets the rate-limit headers of a cold instance's first answers tell the account as it is. */
  store: Pick<AccountsStore, 'admit'> & Partial<Pick<AccountsStore, 'get' | 'admitGroup'>>;
  /**
   * Local mode: the admissions of an account that come while one of its admission writes is in
   * flight share the next transaction (`AccountsStore.admitGroup`; needs the store's). @default false
   */
  groupCommit?: boolean;
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

/** A view read this long ago is read again in the background (when the account is in use), so speculation keeps its footing. */
const VIEW_REREAD_MS = SPECULATION_READ_MAX_AGE_MS / 2;
/** At most one background read of an account this often. */
const VIEW_REREAD_INTERVAL_MS = 5_000;

/** How long after giving up the hold of an admission write whose answer never came is given back. */
const RELEASE_DELAY_MS = 250;

/**
 * The least output limit a request is admitted with when the minute has less left (per choice,
 * or the model's maximum or the client's own limit if smaller): below it the request waits.
 */
export const OUTPUT_FLOOR_TOKENS = 1_024;

/**
 * A request fitted to what the minute has left takes at most this share of the tokens left after
 * its prompt (never less than the floor), so concurrent requests of an account share the minute:
 * each newcomer still finds half of what the one before it left.
 */
const FIT_SHARE = 0.5;

/** How long an admission waits for this instance's own settlements on the account still under way. */
const SETTLEMENT_WAIT_MS = 2_000;

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
  /** When each cached account item last changed by a read, or this instance's own admission or settlement. */
  private readonly updatedAtMs = new Map<string, number>();
  /** Own admissions and settlements per account: a background read that crossed one is stale and dropped. */
  private readonly changes = new Map<string, number>();
  /** When each account was last read in the background for speculation's view. */
  private readonly rereadAtMs = new Map<string, number>();
  /** Admissions of this instance in flight, per account (and per key): what they may take is not in the view yet. */
  private readonly admitting = new Map<string, InFlight>();
  private readonly keyAdmitting = new Map<string, InFlight>();
  /** Own counters of keys with caps, as last seen. */
  private readonly keyCounts = new Map<string, WindowCounts>();
  /** Month totals and caps of keys with a spend cap, as last seen (by key id). */
  private readonly keySpends = new Map<string, KeySpend>();
  /** Settlements of this instance still under way, by account: the next admission counts after them. */
  private readonly settling = new Map<string, Set<Promise<unknown>>>();
  private readonly now: () => number;
  private readonly schedule: (task: () => Promise<unknown>) => void;
  /** Group commit (local mode): admissions of an account share a transaction while one is in flight. */
  private readonly groups?: GroupCommit<AdmitWrite, AdmitResult>;

  constructor(private readonly options: CreditAdmissionOptions) {
    this.now = options.now ?? Date.now;
    this.schedule = options.schedule ?? ((task) => void task().catch(() => undefined));
    const { store } = options;
    if (options.groupCommit && store.admitGroup) {
      const admitGroup = store.admitGroup.bind(store);
      this.groups = new GroupCommit<AdmitWrite, AdmitResult>({
        queueOf: (w) => w.accountId,
        groupable: admitGroupable,
        same: sameAdmitGroup,
        max: MAX_ADMIT_GROUP,
        alone: (w) => store.admit(w),
        together: async (ws) => {
          let landed: boolean;
          try {
            landed = await admitGroup(ws);
          } catch (err) {
            // An answer that may be lost: each caller sends its write again (send), the hold
            // noted as maybe landed; any other failure: each goes alone, whose answer decides.
            if (!(err instanceof RangeError) && answerMayBeLost(err)) throw err;
            return undefined;
          }
          if (!landed) return undefined;
          // The writes of a group believe the same minute and previous one: the view after all of them.
          const b = ws.reduce((most, w) => (w.believed.requests > most.requests ? w.believed : most), ws[0].believed);
          const accountCounts = { ...b, requests: b.requests + ws.length, tokens: b.tokens + ws.reduce((sum, w) => sum + w.tokens, 0) };
          return ws.map(() => ({ ok: true as const, accountCounts }));
        },
      });
    }
  }

  allowsModel(key: KeyRecord, modelId: string): boolean {
    if (key.models && !key.models.includes(modelId)) return false;
    const tierId = this.accounts.get(key.accountId)?.tier ?? key.accountTier;
    const tierModels = tierId ? this.options.tiers.get(tierId)?.models : undefined;
    return !tierModels || tierModels.includes(modelId);
  }

  async headersFor(key: KeyRecord): Promise<Record<string, string> | undefined> {
    // A cold instance's first answers wait for the tiers and read the account once, so they tell
    // the limits and the minute as they are, not as an empty cache would.
    await this.options.tiers.ready().catch(() => undefined);
    if (!this.accounts.has(key.accountId) && this.options.store.get) {
      const read = await this.options.store.get(key.accountId).catch(() => undefined);
      if (read && !this.accounts.has(key.accountId)) {
        this.accounts.set(key.accountId, read);
        this.readAtMs.set(key.accountId, this.now());
        this.updatedAtMs.set(key.accountId, this.now());
      }
    }
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

  /**
   * Whether this request may go upstream while its admission write is in flight (speculation.ts):
   * from the cached view alone, no I/O.
   */
  foresee(req: AdmissionRequest): SpeculationVerdict {
    const { key, model } = req;
    const nowMs = this.now();
    const accountId = key.accountId;
    const readAtMs = this.readAtMs.get(accountId);
    const account = this.accounts.get(accountId);
    if (!account) return { speculate: false, reason: 'no_view' };
    const limits = this.limitsOf(key, account);
    if (!this.options.tiers.get(limits.tier) && (limits.customRpm === undefined || limits.customTpm === undefined)) return { speculate: false, reason: 'no_view' };
    // A prompt admission refuses outright (context window) is refused as today, before any call.
    if (model.kind !== 'embedding' && model.contextWindow && req.promptTokens > model.contextWindow) return { speculate: false, reason: 'tokens' };
    const caps = keyCaps(key);
    const keyCounts = this.keyCounts.get(key.keyId);
    let spend: AccountView['spend'];
    const spendCap = this.spendCapOf(key);
    if (spendCap !== undefined) {
      const seen = this.keySpends.get(key.keyId);
      const month = monthOf(nowMs);
      const used = seen ? (seen.month === month ? seen.usedMicroUsd : 0) : key.spendMonth === month ? key.spendUsedMicroUsd : undefined;
      spend = used === undefined ? null : { capMicroUsd: spendCap, usedMicroUsd: used };
    }
    // This instance's own admissions still in flight may each take their worst case: the view counts them as taken.
    const inFlight = this.admitting.get(accountId);
    const keyInFlight = this.keyAdmitting.get(key.keyId);
    const view: AccountView = {
      active: account.status === 'active',
      balanceMicroUsd: account.balanceMicroUsd - (inFlight?.holdMicroUsd ?? 0),
      account: { rpm: limits.rpm, tpm: limits.tpm, counts: account.counts, inFlight },
      key: caps ? (keyCounts ? { ...caps, counts: keyCounts, inFlight: keyInFlight } : null) : undefined,
      spend: spend && { ...spend, usedMicroUsd: spend.usedMicroUsd + (keyInFlight?.holdMicroUsd ?? 0) },
      readAtMs,
      updatedAtMs: this.updatedAtMs.get(accountId) ?? Number.NEGATIVE_INFINITY,
    };
    return shouldSpeculate(view, computeHold(model, req), nowMs);
  }

  /** This instance changed the account (an admission or a settlement landed): the view is current, and reads in flight are stale. */
  private changed(accountId: string): void {
    this.updatedAtMs.set(accountId, this.now());
    this.bump(accountId);
  }

  /**
   * After an admission: an account whose view was never read, or read long ago, is read in the
   * background (at most once per VIEW_REREAD_INTERVAL_MS), so that its next requests may
   * speculate. A read that crossed an own admission or settlement (it may or may not include it)
   * is dropped.
   */
  private rereadLater(accountId: string): void {
    const get = this.options.store.get;
    const nowMs = this.now();
    const readAtMs = this.readAtMs.get(accountId) ?? Number.NEGATIVE_INFINITY;
    if (!get || nowMs - readAtMs <= VIEW_REREAD_MS || this.settling.get(accountId)?.size) return;
    if (nowMs - (this.rereadAtMs.get(accountId) ?? Number.NEGATIVE_INFINITY) < VIEW_REREAD_INTERVAL_MS) return;
    if (this.admitting.get(accountId)) return;
    this.rereadAtMs.set(accountId, nowMs);
    const before = this.changes.get(accountId) ?? 0;
    this.schedule(async () => {
      // A failed read only leaves the view as it was (no speculation); it is nobody's error.
      const read = await get.call(this.options.store, accountId).catch(() => undefined);
      if (!read || this.admitting.get(accountId) || this.settling.get(accountId)?.size || (this.changes.get(accountId) ?? 0) !== before) return;
      this.accounts.set(accountId, read);
      this.readAtMs.set(accountId, this.now());
      this.updatedAtMs.set(accountId, this.now());
    });
  }

  async admit(req: AdmissionRequest): Promise<Admitted> {
    const accountId = req.key.accountId;
    // Until it ends, the admission may take its worst case: speculation (foresee) counts it as taken.
    const inFlight = (hold: Hold, sign: 1 | -1) => {
      addInFlight(this.admitting, accountId, hold, sign);
      addInFlight(this.keyAdmitting, req.key.keyId, hold, sign);
    };
    let worst = computeHold(req.model, req);
    inFlight(worst, 1);
    // A background read in flight may predate what this admission finds (a refusal's item): it is dropped.
    this.bump(accountId);
    try {
      // Node writes a request's socket in a nextTick, which runs only once the microtasks queued
      // before it are done: the write's own work (its body, its signature, its request), done at
      // once, delayed the speculative upstream call made just before it by about 1 ms.
      if (req.afterUpstreamCall) await new Promise<void>((resolve) => setImmediate(resolve));
      // A key given ahead of its read: read again now, counted in flight meanwhile (foresee sees it),
      // before any write. A prompt counted late (speculating: `promptTokens` is its bound) is
      // counted while that read is on the wire, then counted in flight at its count.
      const keyRead = req.confirmKey?.();
      keyRead?.catch(() => undefined);
      let promptTokens = req.promptTokens;
      if (req.countPrompt) {
        if (keyRead) await new Promise<void>((resolve) => setImmediate(resolve));
        promptTokens = req.countPrompt();
        // In flight at the count from now on (added before the bound is taken off: never at zero meanwhile).
        const counted = computeHold(req.model, { ...req, promptTokens });
        inFlight(counted, 1);
        inFlight(worst, -1);
        worst = counted;
      }
      return await this.admitOnce({ ...req, promptTokens, key: keyRead ? await keyRead : req.key });
    } finally {
      inFlight(worst, -1);
      this.rereadLater(accountId);
    }
  }

  private bump(accountId: string): void {
    this.changes.set(accountId, (this.changes.get(accountId) ?? 0) + 1);
  }

  private async admitOnce(req: AdmissionRequest): Promise<Admitted> {
    const { key, model } = req;
    await this.options.tiers.ready();
    checkContext(req);
    // A sequential agent's next turn counts after its last turn's settlement, not its inflated hold.
    await this.settlementsOf(key.accountId);
    let account = this.accounts.get(key.accountId);
    let ceiling = computeHold(model, req);
    // A balance read within the last second (and kept up by this instance's own holds and
    // refunds) may lower the hold at once; an older one only hints, and the write decides.
    if (ceiling.lowerable && account && this.fresh(key.accountId) && account.balanceMicroUsd < ceiling.holdMicroUsd) {
      const out = affordableOutputTokens(model, req, account.balanceMicroUsd);
      if (out >= 1) ceiling = computeHold(model, req, out);
    }
    let hold = ceiling;
    /** Writes whose answer never came: one of them may hold the request's hold item. */
    const mayHaveLanded: HoldRecord[] = [];
    let tokenSeq = 0;
    let conflicts = 0;
    /** What the last refusal found short, if anything: the answer once the tries run out (else 503). */
    let shortfall: 'balance' | { capMicroUsd: number; usedMicroUsd: number } | undefined;
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
        // `ceiling` is the output the balance (and a key's spend cap) pays for; the minute's tokens left may lower it further.
        hold = this.fitted(req, ceiling, limits, caps, countsAt(believed, nowMs), keyBelieved && countsAt(keyBelieved, nowMs), nowMs, this.fresh(key.accountId));
        const spendCap = this.spendCapOf(key);
        const month = monthOf(nowMs);
        const spendSeen = this.keySpends.get(key.keyId);
        const record = this.holdRecord(req, hold, nowMs, caps !== undefined, spendCap !== undefined ? month : undefined);
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
          keySpend:
            spendCap !== undefined
              ? {
                  keysTable: this.options.keysTable,
                  keyHash: key.keyHash,
                  month,
                  believedMonth: spendSeen?.month ?? key.spendMonth ?? 0,
                  capMicroUsd: spendCap,
                  holdMicroUsd: hold.holdMicroUsd,
                  maxUsedBefore: spendCap - hold.holdMicroUsd,
                }
              : undefined,
        };
        const result = await this.send(write, mayHaveLanded);
        tokenSeq++;
        if (result.ok) {
          mayHaveLanded.length = 0;
          if (result.keyCounts) this.keyCounts.set(key.keyId, result.keyCounts);
          if (write.keySpend) {
            const used = write.keySpend.believedMonth === month ? (spendSeen?.usedMicroUsd ?? key.spendUsedMicroUsd ?? 0) : 0;
            this.keySpends.set(key.keyId, { capMicroUsd: spendCap, month, usedMicroUsd: used + hold.holdMicroUsd });
          }
          const next: Account = {
            ...(account ?? { id: key.accountId, name: '', status: 'active' as const, createdAtMs: 0, balanceMicroUsd: 0, heldMicroUsd: 0, inFlight: 0, owedMicroUsd: 0 }),
            tier: limits.tier,
            rpm: limits.customRpm,
            tpm: limits.customTpm,
            balanceMicroUsd: (account?.balanceMicroUsd ?? 0) - hold.holdMicroUsd,
            counts: result.accountCounts,
          };
          this.accounts.set(key.accountId, next);
          this.changed(key.accountId);
          return this.admitted(req, record, limits, hold, nowMs);
        }
        if (result.reason === 'admitted') {
          // An earlier send of this request landed though its answer was lost: that is the hold.
          mayHaveLanded.length = 0;
          const landed = result.hold ?? record;
          return this.admitted(req, landed, limits, computeHold(model, req, outputOf(landed, hold)), nowMs);
        }
        if (result.reason === 'conflict') {
          // Nothing was read: what an earlier refusal found short is no longer known (503 if they run out).
          shortfall = undefined;
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
        this.updatedAtMs.set(key.accountId, this.now());
        if (old.status !== 'active') {
          throw new GatewayError(403, 'permission_error', 'account_disabled', 'The account of this key is disabled.');
        }
        const accountStale = result.accountFailed && (limitsChanged(limits, old) || countsStale(believed, old.counts, nowMs));
        const keyStale = result.keyFailed && keyBelieved !== undefined && result.keyCounts !== undefined && countsStale(keyBelieved, result.keyCounts, nowMs);
        const spendNow = result.keyFailed && spendCap !== undefined ? result.keySpend : undefined;
        if (spendNow) this.keySpends.set(key.keyId, spendNow);
        account = old;
        shortfall = undefined;
        if (accountStale || keyStale || (spendNow && spendNow.capMicroUsd !== spendCap)) {
          // A belief was stale (a minute turned, a settlement raised the previous minute's count, the
          // cap changed or went): try again with the items' figures. Their balance and month's spend
          // are exact whatever else moved, so a shortfall is lowered for at once: under churn each
          // refusal may come with a moved counter, and the hold would never come down (a 503).
          const rooms: number[] = [];
          if (result.accountFailed && old.balanceMicroUsd < hold.holdMicroUsd) {
            rooms.push(old.balanceMicroUsd);
            shortfall = 'balance';
          }
          if (spendNow?.capMicroUsd !== undefined) {
            const used = spendNow.month === month ? spendNow.usedMicroUsd : 0;
            if (used + hold.holdMicroUsd > spendNow.capMicroUsd) {
              rooms.push(spendNow.capMicroUsd - used);
              shortfall = { capMicroUsd: spendNow.capMicroUsd, usedMicroUsd: used };
            }
          }
          const room = Math.min(...rooms);
          const out = rooms.length && hold.lowerable && room > 0 ? affordableOutputTokens(model, req, room) : 0;
          if (out >= 1 && out < hold.outputTokens) ceiling = computeHold(model, req, out);
          continue;
        }
        if (spendNow && spendCap !== undefined) {
          const used = spendNow.month === month ? spendNow.usedMicroUsd : 0;
          if (used + hold.holdMicroUsd > spendCap) {
            // The month's spend and holds leave less than this request needs: lower it, or 402.
            const room = spendCap - used;
            const out = hold.lowerable && room > 0 ? affordableOutputTokens(model, req, room) : 0;
            if (out < 1 || out >= hold.outputTokens) throw spendCapReached(spendCap, used, hold);
            shortfall = { capMicroUsd: spendCap, usedMicroUsd: used };
            ceiling = computeHold(model, req, out);
            hold = ceiling;
            continue;
          }
          // The month was not the one believed.
          if (spendNow.month !== write.keySpend!.believedMonth) continue;
        }
        // The beliefs were right, so the old items say exactly why: requests first, then tokens, then money.
        const trueLimits = this.limitsOf(key, old);
        const view = countsAt(old.counts, nowMs);
        const keyView = result.keyCounts ? countsAt(result.keyCounts, nowMs) : keyBelieved && countsAt(keyBelieved, nowMs);
        if (result.keyFailed && caps?.rpm && keyView) {
          const waitMs = msUntilAllowed(caps.rpm, keyView.prevRequests, keyView.requests, 1, nowMs);
          if (waitMs > 0) throw this.rateLimitError(key, caps, keyView, hold, waitMs, nowMs, 'this key');
        }
        if (result.accountFailed && trueLimits.rpm) {
          const waitMs = msUntilAllowed(trueLimits.rpm, view.prevRequests, view.requests, 1, nowMs);
          if (waitMs > 0) throw this.rateLimitError(key, trueLimits, view, hold, waitMs, nowMs, 'the account');
        }
        // Fitted again to what the items say the minute has left: a lower output, or 429 below the floor.
        const refit = this.fitted(req, ceiling, trueLimits, caps, view, keyView, nowMs, true);
        if (refit.rateTokens < hold.rateTokens) {
          hold = refit;
          continue;
        }
        if (!result.accountFailed) continue;
        if (old.balanceMicroUsd < hold.holdMicroUsd) {
          if (hold.lowerable) {
            // The balance cannot pay the model's maximum: lower the output to what it pays (402 once nothing).
            const out = affordableOutputTokens(model, req, old.balanceMicroUsd);
            if (out < 1) throw cannotPayOneToken(req, old.balanceMicroUsd);
            if (out < hold.outputTokens) {
              ceiling = computeHold(model, req, out);
              hold = ceiling;
              shortfall = 'balance';
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
      if (shortfall && shortfall !== 'balance') {
        throw insufficientQuota(
          `This key's monthly spend cap of ${capUsd(shortfall.capMicroUsd)} kept leaving less than this request needs while ` +
            `other requests of the key were admitted (${usd(shortfall.usedMicroUsd)} spent or held this month, UTC, when last seen). ` +
            `Raise or remove the key's spend cap, or lower max_tokens.`,
        );
      }
      if (shortfall === 'balance') {
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

  /** Runs a settlement, known as under way on its account until it ends. */
  private async track(accountId: string, task: () => Promise<void>): Promise<void> {
    // A background read that crosses a settlement may already hold its refund, which the settlement
    // then adds to the view again when it lands: any read in flight from here on is dropped.
    this.bump(accountId);
    const pending = task();
    let set = this.settling.get(accountId);
    if (!set) this.settling.set(accountId, (set = new Set()));
    set.add(pending);
    try {
      await pending;
    } finally {
      set.delete(pending);
      if (!set.size) this.settling.delete(accountId);
    }
  }

  /** This instance's settlements on the account still under way, awaited for at most SETTLEMENT_WAIT_MS. */
  private async settlementsOf(accountId: string): Promise<void> {
    const set = this.settling.get(accountId);
    if (!set?.size) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, SETTLEMENT_WAIT_MS)));
    await Promise.race([Promise.allSettled([...set]), timeout]);
    clearTimeout(timer);
  }

  /**
   * Sends one admission write; after an answer that never came, the very same write (same
   * ClientRequestToken) again, which DynamoDB applies at most once.
   */
  private async send(write: AdmitWrite, mayHaveLanded: HoldRecord[]): Promise<AdmitResult> {
    for (let resend = 0; ; resend++) {
      try {
        return await (this.groups ? this.groups.run(write) : this.options.store.admit(write));
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
   * The hold fitted to the tokens the minute has left (docs/CLIENTS.md, "Tiers and agents"): the
   * output limit (the client's or the model's maximum, as far as the balance pays) is lowered to
   * at most a share of what is left after the prompt, never below the floor (1,024 tokens, or the
   * ceiling if smaller, or what an empty minute leaves after the prompt). Below the floor the
   * request waits: 429 with the time the floor frees, when `trusted` (the view was just read);
   * otherwise the floor goes to the write, whose conditions decide. A prompt that no minute can
   * take is refused with 400.
   */
  private fitted(
    req: AdmissionRequest,
    ceiling: Hold,
    limits: Caps,
    caps: Caps | undefined,
    view: WindowCounts,
    keyView: WindowCounts | undefined,
    nowMs: number,
    trusted: boolean,
  ): Hold {
    const counters = [{ whose: 'the account', limits, view }];
    if (caps?.tpm) counters.push({ whose: 'this key', limits: caps, view: keyView ?? freshCounts(nowMs) });
    const bounded = counters.filter((c) => c.limits.tpm);
    if (!bounded.length) return ceiling;
    const tpm = Math.min(...bounded.map((c) => c.limits.tpm));
    const { promptTokens, n } = ceiling;
    const minOutput = ceiling.outputTokens > 0 ? n : 0;
    if (promptTokens + minOutput > tpm) {
      const whose = bounded.find((c) => c.limits.tpm === tpm)!.whose;
      throw invalidRequest(
        `Request too large for ${req.model.id}: it asks for ${promptTokens + minOutput} tokens (${promptTokens} in the prompt` +
          `${minOutput ? ` and at least ${minOutput} of output` : ''}), and the limit of ${whose} is ${tpm} tokens per minute, ` +
          `so it can never be admitted. Send a shorter prompt, or ask for a higher tokens-per-minute limit.`,
        'messages',
        'request_too_large',
      );
    }
    const floor = Math.min(OUTPUT_FLOOR_TOKENS, ceiling.outputTokens, Math.floor((tpm - promptTokens) / n));
    const left = Math.min(...bounded.map((c) => remaining(c.limits.tpm, c.view.prevTokens, c.view.tokens, nowMs)));
    const roomPerChoice = Math.floor((left - promptTokens) / n);
    if (roomPerChoice >= floor) {
      const share = Math.max(floor, Math.floor(((left - promptTokens) * FIT_SHARE) / n));
      const out = Math.min(ceiling.outputTokens, roomPerChoice, share);
      return out === ceiling.outputTokens ? ceiling : computeHold(req.model, req, out);
    }
    const atFloor = floor === ceiling.outputTokens ? ceiling : computeHold(req.model, req, floor);
    if (!trusted) return atFloor;
    const waits = bounded.map((c) => ({ ...c, waitMs: msUntilAllowed(c.limits.tpm, c.view.prevTokens, c.view.tokens, atFloor.rateTokens, nowMs) }));
    const longest = waits.reduce((a, b) => (b.waitMs > a.waitMs ? b : a));
    throw this.rateLimitError(req.key, longest.limits, longest.view, atFloor, Math.max(1, longest.waitMs), nowMs, longest.whose);
  }

  /** The key's monthly spend cap as the freshest view has it (the key item's, once a write brought it back). */
  private spendCapOf(key: KeyRecord): number | undefined {
    if (key.spendCapMicroUsd === undefined) return undefined;
    const seen = this.keySpends.get(key.keyId);
    return seen ? seen.capMicroUsd : key.spendCapMicroUsd;
  }

  private holdRecord(req: AdmissionRequest, hold: Hold, nowMs: number, capped: boolean, spendMonth?: number): HoldRecord {
    const minute = minuteOf(nowMs);
    return {
      requestId: req.requestId,
      accountId: req.key.accountId,
      keyId: req.key.keyId,
      keyHash: capped || spendMonth !== undefined ? req.key.keyHash : undefined,
      spendMonth,
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
    const free = { price: FREE_PRICE };
    const outcome: Outcome = { status: 'failed', httpStatus: 503, errorCode: 'admission_unanswered', completionText: '', latencyMs: 0, stream: record.stream };
    const release = { ...requestSettlement(record, free, outcome, this.options.keysTable), release: true };
    this.schedule(async () => {
      await new Promise((resolve) => setTimeout(resolve, RELEASE_DELAY_MS));
      await this.options.settlements.apply(release);
    });
  }

  private rateLimitError(key: KeyRecord, limits: Caps, view: WindowCounts, hold: Hold, waitMs: number, nowMs: number, whose: string): GatewayError {
    const requestsBound = limits.rpm && msUntilAllowed(limits.rpm, view.prevRequests, view.requests, 1, nowMs) > 0;
    const toldMs = toldWaitMs(waitMs);
    const message = requestsBound
      ? `Rate limit reached for requests of ${whose}: limit ${limits.rpm} per minute. Please try again in ${formatResetDuration(toldMs)}.`
      : `Rate limit reached for tokens of ${whose}: limit ${limits.tpm} per minute, this request needs at least ${hold.rateTokens} ` +
        `(${hold.promptTokens} in the prompt and ${hold.outputTokens * hold.n} of output). Please try again in ${formatResetDuration(toldMs)}.`;
    const error = rateLimited(message, toldMs);
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
      headers: this.headers(key, limits, counts, this.keyCounts.get(key.keyId), nowMs),
      deadlineMs: record.deadlineMs,
      settle: (outcome: Outcome) =>
        this.track(key.accountId, async () => {
          // An answer without the provider's count is billed by counting what was delivered: with the
          // tokenizer, never the byte count that stands in while it loads (the Lambda entry loads it after the answer).
          if (outcome.status !== 'failed' && !(outcome.status === 'completed' && outcome.usage)) await warmTokenizer();
          const write = requestSettlement(record, model, outcome, this.options.keysTable);
          const result = await this.options.settlements.apply(write, this.accounts.get(key.accountId)?.counts.window);
          if (typeof result !== 'object' || !result.settled) return;
          // A settlement that landed shows in this instance's view: the refund, and the minute's true count.
          const cached = this.accounts.get(key.accountId);
          if (cached) {
            cached.balanceMicroUsd += result.refundMicroUsd;
            cached.counts = corrected(cached.counts, record.window, write.tokenCorrection);
            this.changed(key.accountId);
          }
          const keyCounts = this.keyCounts.get(key.keyId);
          if (keyCounts && record.keyWindow !== undefined) this.keyCounts.set(key.keyId, corrected(keyCounts, record.keyWindow, write.tokenCorrection));
        }),
      checkpoint: this.options.holds
        ? async (outputTokens: number) => {
            await this.options.holds!.checkpoint(record, outputTokens, checkpointMicroUsd(model, record, outputTokens), this.now());
          }
        : undefined,
    };
  }
}

/** Own admissions in flight on one account (or key): their count and the worst case they may take. */
interface InFlight {
  requests: number;
  holdMicroUsd: number;
  rateTokens: number;
}

function addInFlight(map: Map<string, InFlight>, id: string, hold: Hold, sign: 1 | -1): void {
  const at = map.get(id) ?? { requests: 0, holdMicroUsd: 0, rateTokens: 0 };
  const next = { requests: at.requests + sign, holdMicroUsd: at.holdMicroUsd + sign * hold.holdMicroUsd, rateTokens: at.rateTokens + sign * hold.rateTokens };
  if (next.requests > 0) map.set(id, next);
  else map.delete(id);
}

/**
 * The counters with a settlement's token correction put where the store puts it (see
 * `correctionTarget` in store/accounts.ts): the admitted minute's count while current, the
 * previous-minute count once rolled over, nowhere once out of the window.
 */
function corrected(counts: WindowCounts, admittedWindow: number, correction: number): WindowCounts {
  if (!correction) return counts;
  if (counts.window === admittedWindow) return { ...counts, tokens: Math.max(0, counts.tokens + correction) };
  if (counts.window === admittedWindow + 1) return { ...counts, prevTokens: Math.max(0, counts.prevTokens + correction) };
  return counts;
}

/** A prompt above the model's context window can never be answered: 400 before anything is held. */
function checkContext(req: AdmissionRequest): void {
  const { model, promptTokens } = req;
  if (model.kind === 'embedding' || !model.contextWindow || promptTokens <= model.contextWindow) return;
  throw invalidRequest(
    `This model's maximum context length is ${model.contextWindow} tokens. However, your messages resulted in about ` +
      `${promptTokens} tokens (${model.id}). Please reduce the length of the messages.`,
    'messages',
    'context_length_exceeded',
  );
}

/** The output tokens an already landed hold pays for (the same request's, so its prompt and n). */
function outputOf(landed: HoldRecord, hold: Hold): number {
  return Math.max(0, Math.round((landed.rateTokens - landed.promptTokens) / hold.n));
}

/** Dollars and cents when the amount is whole cents (a cap set in the console), else to the micro-dollar. */
const capUsd = (micro: number) => (micro % 10_000 === 0 ? `$${(micro / 1e6).toFixed(2)}` : usd(micro));

function spendCapReached(capMicroUsd: number, usedMicroUsd: number, hold: Hold): GatewayError {
  return insufficientQuota(
    `This key has reached its monthly spend cap of ${capUsd(capMicroUsd)}: ${usd(usedMicroUsd)} spent or held this month (UTC), ` +
      `and this request needs up to ${usd(hold.holdMicroUsd)}. Raise or remove the key's spend cap, or lower max_tokens.`,
  );
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

function limitsChanged(limits: Limits, old: Account): boolean {
  return old.tier !== limits.tier || old.rpm !== limits.customRpm || old.tpm !== limits.customTpm;
}

/**
 * True when a write may have failed because its belief about the counters was wrong, not because
 * of limits: its conditions ask the window and the previous minute's requests to be as believed,
 * and the previous minute's tokens at most as believed. Settlements of that minute's requests move
 * those tokens after the minute turned (down for output not used, up for a prompt counted low): a
 * count below the belief cannot have failed the write (the bounds were only stricter), and the
 * item's own figures then decide the refusal.
 */
function countsStale(believed: WindowCounts, actual: WindowCounts, nowMs: number): boolean {
  const minute = minuteOf(nowMs);
  if (believed.window === minute) {
    return actual.window !== minute || actual.prevRequests !== believed.prevRequests || actual.prevTokens > believed.prevTokens;
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
