import type { AccountsStore } from '../store/accounts';
import type { HoldRecord, HoldsStore } from '../store/holds';
import { abandonedSettlement, type Settlements } from './settlement';

export interface HoldSweeperOptions {
  holds: Pick<HoldsStore, 'overdue'>;
  accounts: Pick<AccountsStore, 'releaseOrphan'>;
  settlements: Settlements;
  /** Where capped keys keep their counters. */
  keysTable: string;
  /** How long after its deadline a hold is left to its own request before it is swept. @default 60000 */
  graceMs?: number;
  /** Holds settled at once. @default 8 */
  concurrency?: number;
  now?: () => number;
  /** One call per hold the sweeper settled as abandoned (metrics, log). */
  onAbandoned?(hold: HoldRecord): void;
}

export interface SweepReport {
  /** Holds settled as abandoned. */
  abandoned: number;
  /** Holds whose request settled first, between the scan and the sweeper's write. */
  raced: number;
  /** Holds of admissions that landed after their request gave up, given back whole. */
  orphans: number;
  /** Holds whose settlement could not be written now (store unavailable); the next sweep tries again. */
  failed: number;
}

/**
 * Every hold ends (ARCHITECTURE §3): a hold still there `graceMs` after its deadline belongs to
 * a request whose instance died or whose settlement was lost. It is settled as `abandoned`: the
 * estimated prompt charged, the rest refunded, a ledger item written. The settlement deletes the
 * hold on condition that it still exists, so the sweeper and a late live settlement race safely:
 * exactly one of them writes.
 */
export class HoldSweeper {
  private readonly graceMs: number;
  private readonly now: () => number;

  constructor(private readonly options: HoldSweeperOptions) {
    this.graceMs = options.graceMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  async sweep(): Promise<SweepReport> {
    const report: SweepReport = { abandoned: 0, raced: 0, orphans: 0, failed: 0 };
    const concurrency = this.options.concurrency ?? 8;
    for await (const page of this.options.holds.overdue(this.now() - this.graceMs)) {
      for (let i = 0; i < page.length; i += concurrency) {
        await Promise.all(page.slice(i, i + concurrency).map((hold) => this.settle(hold, report)));
      }
    }
    return report;
  }

  private async settle(hold: HoldRecord, report: SweepReport): Promise<void> {
    try {
      const result = await this.options.settlements.apply(abandonedSettlement(hold, this.options.keysTable));
      if (result === 'queued' || result === 'lost') report.failed++;
      else if (result.settled) {
        report.abandoned++;
        this.options.onAbandoned?.(hold);
      } else if (result.orphan && (await this.options.accounts.releaseOrphan(hold))) report.orphans++;
      else report.raced++;
    } catch {
      report.failed++;
    }
  }
}
