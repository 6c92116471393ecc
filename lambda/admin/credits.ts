import type { TierCache } from '../money/tier-cache';
import { invalidApiKey } from '../contract/errors';
import type { AccountsStore } from '../store/accounts';
import type { KeyRecord, KeysStore } from '../store/keys';
import type { TiersStore } from '../store/tiers';
import type { UsageStore } from '../store/usage';
import { microToUsd } from './money';
import { effectiveLimits, keyView, minuteUsage } from './views';

export interface CreditsDeps {
  accounts: AccountsStore;
  tiers: TiersStore;
  tierCache: TierCache;
  keys: KeysStore;
  usage: UsageStore;
  now?: () => number;
}

/**
 * `GET /v1/credits`: the calling key's own account — balance, tier, limits and this minute's use —
 * and the key itself (no secret). One consistent read of the account item; tiers from the cache.
 */
export async function accountCredits(deps: CreditsDeps, key: KeyRecord): Promise<object> {
  const nowMs = (deps.now ?? Date.now)();
  const [account] = await Promise.all([deps.accounts.get(key.accountId), deps.tierCache.ready()]);
  if (!account) throw invalidApiKey("The key's account no longer exists.");
  const tier = deps.tierCache.get(account.tier) ?? (await deps.tiers.get(account.tier));
  const limits = effectiveLimits(account, tier);
  return {
    object: 'credits',
    account_id: account.id,
    tier: account.tier,
    status: account.status,
    balance_micro_usd: account.balanceMicroUsd,
    balance_usd: microToUsd(account.balanceMicroUsd),
    /** Requests and tokens per minute for the whole account, all keys together; 0 means no limit. */
    limits,
    usage_this_minute: minuteUsage(account, limits, nowMs),
    key: keyView(key),
  };
}
