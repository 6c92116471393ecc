import type { AccountsStore } from '../store/accounts';
import type { HoldsStore } from '../store/holds';

/** An account whose `held` / `inflight` is not what its hold items add up to. */
export interface HeldMismatch {
  accountId: string;
  heldMicroUsd: number;
  inFlight: number;
  /** What the account's hold items add up to, and how many there are. */
  holdItemsMicroUsd: number;
  holdItems: number;
}

export interface ReconciliationReport {
  accounts: number;
  holds: number;
  mismatches: HeldMismatch[];
}

/**
 * The daily reconciliation of the holds table against the accounts' `held` and `inflight`
 * (issue 17): every settlement deletes a hold and takes it off `held` in one transaction, so the
 * two agree except for a hold that went without being settled, the TTL's removal of a hold whose
 * stream record was lost (held stays up: money no request will give back). Both tables are
 * scanned; an account that disagrees is read again, alone, before it is reported, so that a
 * request admitted or settled between the two scans is not.
 */
export async function reconcileHolds(stores: { accounts: Pick<AccountsStore, 'heldSums' | 'get'>; holds: Pick<HoldsStore, 'sums' | 'ofAccount'> }): Promise<ReconciliationReport> {
  const byHolds = await stores.holds.sums();
  const holds = [...byHolds.values()].reduce((s, h) => s + h.count, 0);
  const suspects: string[] = [];
  let accounts = 0;
  for await (const page of stores.accounts.heldSums()) {
    for (const a of page) {
      accounts++;
      const h = byHolds.get(a.accountId) ?? { microUsd: 0, count: 0 };
      if (h.microUsd !== a.heldMicroUsd || h.count !== a.inFlight) suspects.push(a.accountId);
      byHolds.delete(a.accountId);
    }
  }
  // Holds of an account not found in the scan (created meanwhile, or gone): checked alone too.
  suspects.push(...byHolds.keys());
  const mismatches: HeldMismatch[] = [];
  for (const accountId of suspects) {
    const [account, holds] = await Promise.all([stores.accounts.get(accountId), stores.holds.ofAccount(accountId)]);
    const heldMicroUsd = account?.heldMicroUsd ?? 0;
    const inFlight = account?.inFlight ?? 0;
    const holdItemsMicroUsd = holds.reduce((s, h) => s + h.holdMicroUsd, 0);
    if (heldMicroUsd !== holdItemsMicroUsd || inFlight !== holds.length) {
      mismatches.push({ accountId, heldMicroUsd, inFlight, holdItemsMicroUsd, holdItems: holds.length });
    }
  }
  return { accounts, holds, mismatches };
}
