import { invalidApiKey } from '../contract/errors';
import type { KeyRecord } from '../store/keys';
import { API_KEY_PATTERN, hashApiKey } from './api-key';

export interface KeyLookup {
  getByHash(keyHash: string): Promise<KeyRecord | undefined>;
}

export interface AuthenticatorOptions {
  /**
   * How long a found key is trusted without a read: a key disabled or revoked on another instance
   * stops working here within this (one GetItem per key and instance this often). @default 5000
   */
  positiveTtlMs?: number;
  /** How long an unknown key is remembered as unknown. @default 5000 */
  negativeTtlMs?: number;
  /**
   * How long after its last read an active key may still start work that answers nothing and
   * writes nothing while it is read again (`authenticateAhead`). @default 60000
   */
  aheadMs?: number;
  /** Entries kept before the oldest are dropped. @default 10000 */
  maxEntries?: number;
  now?: () => number;
}

/** A disabled key must stop working on every instance within a few seconds (issue 21). */
export const DEFAULT_POSITIVE_TTL_MS = 5_000;

/** How long after its last read a key may start a request's work ahead of its read (`authenticateAhead`). */
export const DEFAULT_AHEAD_MS = 60_000;

/**
 * A key as `authenticateAhead` found it: `key` as the cache last had it, and, when that entry's
 * trust had run out, `confirm`, which reads the key again (once, whoever calls it first; the
 * request's own upstream call goes out first: chat/overlap.ts) and gives it as it is now, or its
 * 401 (or the read's failure). Until that has settled, `key` may start work that answers nothing
 * and writes nothing (the speculative upstream call): whoever answers or writes awaits it.
 */
export interface KeyAhead {
  key: KeyRecord;
  confirm?: () => Promise<KeyRecord>;
}

interface CacheEntry {
  record: KeyRecord | undefined;
  /** When the read that found it was sent: its trust runs from then. */
  sentAtMs: number;
  expiresMs: number;
}

/**
 * Bearer-key authentication with an in-memory cache, so a warm request reads nothing from
 * DynamoDB to authenticate. Every failure is the same 401, whatever the reason.
 */
export class Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<KeyRecord | undefined>>();
  /** Keys being read again in the background. */
  private readonly refreshing = new Set<string>();
  /** Keys forgotten while a read of them may be in flight. */
  private readonly forgotAtMs = new Map<string, number>();
  private readonly positiveTtlMs: number;
  private readonly negativeTtlMs: number;
  private readonly maxEntries: number;
  private readonly aheadMs: number;
  private readonly now: () => number;

  constructor(
    private readonly keys: KeyLookup,
    options: AuthenticatorOptions = {},
  ) {
    this.positiveTtlMs = Math.min(options.positiveTtlMs ?? DEFAULT_POSITIVE_TTL_MS, 60_000);
    this.negativeTtlMs = options.negativeTtlMs ?? 5_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.aheadMs = options.aheadMs ?? DEFAULT_AHEAD_MS;
    this.now = options.now ?? Date.now;
  }

  /** Returns the active key named by an `Authorization` header, or throws a 401 GatewayError. */
  async authenticate(authorization: string | undefined): Promise<KeyRecord> {
    return this.verify(bearerKey(authorization));
  }

  /**
   * Anthropic's clients send the key as `x-api-key` (the SDKs' `apiKey`) or as a Bearer token
   * (`authToken`, Claude Code's ANTHROPIC_AUTH_TOKEN); `x-api-key` wins when both are present.
   */
  async authenticateAnthropic(apiKey: string | undefined, authorization: string | undefined): Promise<KeyRecord> {
    return this.verify(anthropicKey(apiKey, authorization));
  }

  /**
   * `authenticate`, except that an active key whose trust ran out less than `aheadMs` after its
   * last read is given at once as last read, with `confirm` to read it again (issue 22: a
   * client whose requests come more than 5 s apart no longer waits for the read before its
   * upstream call). Anything else is as `authenticate`: a key within its trust, an unknown,
   * refused or long-unread key (read first), a malformed header.
   */
  async authenticateAhead(authorization: string | undefined): Promise<KeyAhead> {
    return this.verifyAhead(bearerKey(authorization));
  }

  /** `authenticateAnthropic`'s headers, with `authenticateAhead`'s answer. */
  async authenticateAnthropicAhead(apiKey: string | undefined, authorization: string | undefined): Promise<KeyAhead> {
    return this.verifyAhead(anthropicKey(apiKey, authorization));
  }

  private async verify(key: string): Promise<KeyRecord> {
    return this.check(await this.lookup(hashOf(key)));
  }

  private async verifyAhead(key: string): Promise<KeyAhead> {
    const keyHash = hashOf(key);
    const hit = this.cache.get(keyHash);
    const nowMs = this.now();
    if (hit && hit.expiresMs <= nowMs && hit.record?.status === 'active' && nowMs - hit.sentAtMs <= this.aheadMs) {
      const stale = this.check(hit.record);
      let confirmed: Promise<KeyRecord> | undefined;
      // Joins a read of the key already under way (another request's), else sends one.
      const confirm = () => (confirmed ??= this.lookup(keyHash).then((record) => this.check(record)));
      return { key: stale, confirm };
    }
    return { key: this.check(await this.lookup(keyHash)) };
  }

  /** The key if it may be used now, else the 401 that says why not. */
  private check(record: KeyRecord | undefined): KeyRecord {
    if (record?.status === 'disabled') throw invalidApiKey('This API key is disabled; its owner can enable it again in the console.');
    if (!record || record.status !== 'active') throw invalidApiKey();
    if (record.expiresAtMs !== undefined && record.expiresAtMs <= this.now()) throw invalidApiKey('The API key has expired.');
    return record;
  }

  /** Forgets a key at once (this instance only), e.g. after an admin revoked it here. */
  forget(keyHash: string): void {
    this.cache.delete(keyHash);
    // A read already sent may still bring the key back: it is not kept.
    this.forgotAtMs.set(keyHash, this.now());
  }

  private async lookup(keyHash: string): Promise<KeyRecord | undefined> {
    const hit = this.cache.get(keyHash);
    const nowMs = this.now();
    if (hit && hit.expiresMs > nowMs) {
      // A key in use is read again in the background once half its trust has gone, so that a
      // steady client's requests never wait for the read (the entry still expires on time). Only an
      // active key: a refused one answers its 401 from the cache alone, as an unknown key does.
      if (hit.record?.status === 'active' && hit.expiresMs - nowMs < this.positiveTtlMs / 2) this.refresh(keyHash);
      return hit.record;
    }
    let pending = this.inflight.get(keyHash);
    if (!pending) {
      pending = this.read(keyHash).finally(() => this.inflight.delete(keyHash));
      this.inflight.set(keyHash, pending);
    }
    return pending;
  }

  /** One read of the key, remembered from when it was sent: an answer that comes late is trusted no longer. */
  private async read(keyHash: string): Promise<KeyRecord | undefined> {
    const sentAtMs = this.now();
    const record = await this.keys.getByHash(keyHash);
    this.remember(keyHash, record, sentAtMs);
    return record;
  }

  /**
   * The background read of a key in use (one at a time per key). Requests never wait for it: one
   * frozen with its Lambda comes back with an answer as old as its sending, and a failed one
   * leaves the entry to expire as it would have.
   */
  private refresh(keyHash: string): void {
    if (this.refreshing.has(keyHash)) return;
    this.refreshing.add(keyHash);
    // Sent once the request that found the key past half its trust has done its own work up to its
    // upstream call (a macrotask later): signing and sending the read, and taking in its answer, are
    // not on that request's way to its first byte (issue 22). Its trust still runs from when it is sent.
    setImmediate(() =>
      this.read(keyHash)
        .catch(() => undefined)
        .finally(() => this.refreshing.delete(keyHash)),
    );
  }

  private remember(keyHash: string, record: KeyRecord | undefined, sentAtMs: number): void {
    const current = this.cache.get(keyHash);
    // A read sent before the one the entry holds (a refresh crossing a request's read) says less.
    if (current && current.sentAtMs > sentAtMs) return;
    const forgot = this.forgotAtMs.get(keyHash);
    if (forgot !== undefined) {
      if (sentAtMs <= forgot) return;
      this.forgotAtMs.delete(keyHash);
    }
    this.cache.delete(keyHash);
    if (this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(keyHash, { record, sentAtMs, expiresMs: sentAtMs + (record ? this.positiveTtlMs : this.negativeTtlMs) });
  }
}

function bearerKey(authorization: string | undefined): string {
  if (!authorization) {
    throw invalidApiKey("You didn't provide an API key. Send it as 'Authorization: Bearer it_...'.");
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!match) throw invalidApiKey("The Authorization header must use the Bearer scheme: 'Bearer it_...'.");
  return match[1];
}

function anthropicKey(apiKey: string | undefined, authorization: string | undefined): string {
  if (apiKey !== undefined) return apiKey.trim();
  if (!authorization) {
    throw invalidApiKey("You didn't provide an API key. Send it as 'x-api-key: it_...' or 'Authorization: Bearer it_...'.");
  }
  return bearerKey(authorization);
}

function hashOf(key: string): string {
  if (!API_KEY_PATTERN.test(key)) throw invalidApiKey('The API key is malformed: itapi keys look like it_ followed by letters and digits.');
  return hashApiKey(key);
}

/**
 * What a key may do: its status, account, the account's tier and limits as the key carries them,
 * its own limits, models, spend cap, expiry. Not its name, display prefix or creation time, nor a
 * capped key's month spend (it moves with every request).
 */
const TERMS = ['keyId', 'status', 'accountId', 'accountTier', 'accountRpm', 'accountTpm', 'rpm', 'tpm', 'models', 'spendCapMicroUsd', 'expiresAtMs', 'revokedAtMs'] as const satisfies ReadonlyArray<keyof KeyRecord>;

/** Whether two reads of a key allow the same: work started on the older one (its request's checks, a speculative upstream call) stands. */
export function sameKeyTerms(a: KeyRecord, b: KeyRecord): boolean {
  return TERMS.every((f) => JSON.stringify(a[f]) === JSON.stringify(b[f]));
}
