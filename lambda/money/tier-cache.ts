import type { Tier, TiersStore } from '../store/tiers';

/**
 * The tiers table in memory (a handful of items), reloaded in the background every `ttlMs`, so
 * admission never waits on it after start-up.
 */
export class TierCache {
  private tiers = new Map<string, Tier>();
  private loadedAtMs = 0;
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly store: Pick<TiersStore, 'list'>,
    private readonly ttlMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  private first: Promise<void> | undefined;

  /** Resolves once the tiers have been read at least once (a cold instance's first request waits). */
  ready(): Promise<void> {
    if (this.loadedAtMs) return Promise.resolve();
    this.first ??= this.load().catch((err) => {
      this.first = undefined;
      throw err;
    });
    return this.first;
  }

  async load(): Promise<void> {
    const tiers = await this.store.list();
    this.tiers = new Map(tiers.map((t) => [t.id, t]));
    this.loadedAtMs = this.now();
  }

  get(id: string): Tier | undefined {
    if (this.now() - this.loadedAtMs > this.ttlMs && !this.refreshing) {
      this.refreshing = this.load()
        .catch(() => undefined)
        .finally(() => (this.refreshing = undefined));
    }
    return this.tiers.get(id);
  }

  /** Takes an operator's change at once on this instance. */
  set(tier: Tier): void {
    this.tiers.set(tier.id, tier);
  }
}
