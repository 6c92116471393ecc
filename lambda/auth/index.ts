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
  /** Entries kept before the oldest are dropped. @default 10000 */
  maxEntries?: number;
  now?: () => number;
}

/** A disabled key must stop working on every instance within a few seconds (issue 21). */
export const DEFAULT_POSITIVE_TTL_MS = 5_000;

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
  private readonly now: () => number;

  constructor(
    private readonly keys: KeyLookup,
    options: AuthenticatorOptions = {},
  ) {
    this.positiveTtlMs = Math.min(options.positiveTtlMs ?? DEFAULT_POSITIVE_TTL_MS, 60_000);
    this.negativeTtlMs = options.negativeTtlMs ?? 5_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Returns the active key named by an `Authorization` header, or throws a 401 GatewayError. */
  async authenticate(authorization: string | undefined): Promise<KeyRecord> {
    if (!authorization) {
      throw invalidApiKey("You didn't provide an API key. Send it as 'Authorization: Bearer it_...'.");
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) throw invalidApiKey("The Authorization header must use the Bearer scheme: 'Bearer it_...'.");
    return this.verify(match[1]);
  }

  /**
   * Anthropic's clients send the key as `x-api-key` (the SDKs' `apiKey`) or as a Bearer token
   * (`authToken`, Claude Code's ANTHROPIC_AUTH_TOKEN); `x-api-key` wins when both are present.
   */
  async authenticateAnthropic(apiKey: string | undefined, authorization: string | undefined): Promise<KeyRecord> {
    if (apiKey !== undefined) return this.verify(apiKey.trim());
    if (!authorization) {
      throw invalidApiKey("You didn't provide an API key. Send it as 'x-api-key: it_...' or 'Authorization: Bearer it_...'.");
    }
    return this.authenticate(authorization);
  }

  private async verify(key: string): Promise<KeyRecord> {
    if (!API_KEY_PATTERN.test(key)) throw invalidApiKey('The API key is malformed: itapi keys look like it_ followed by letters and digits.');
    const record = await this.lookup(hashApiKey(key));
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
