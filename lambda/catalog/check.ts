import type { Catalog } from './index';
import { SHUTDOWN_WARNING_DAYS, utcDay, type RouteShutdown } from './lifecycle';

/** What the daily check (the sweeper function) and `itapi catalog check` report. */
export interface CatalogCheck {
  /** The UTC day of the check. */
  today: string;
  withinDays: number;
  /** Routes shutting down within `withinDays` days (today included): the catalog needs a look. */
  near: RouteShutdown[];
  /** Routes past their shutdown: their successor serves (or, without one, the route is dropped). */
  past: RouteShutdown[];
}

export function checkCatalog(catalog: Catalog, withinDays: number = SHUTDOWN_WARNING_DAYS, nowMs: number = catalog.nowMs()): CatalogCheck {
  const all = catalog.shutdowns(withinDays);
  return { today: utcDay(nowMs), withinDays, near: all.filter((s) => s.daysLeft >= 0), past: all.filter((s) => s.daysLeft < 0) };
}

/** The check as lines for people: one line per route, soonest first. */
export function describeCatalogCheck(check: CatalogCheck): string[] {
  const lines = [`Catalog check on ${check.today}: routes shutting down within ${check.withinDays} days`];
  if (check.near.length === 0) lines.push('  none');
  for (const s of check.near) {
    const when = s.daysLeft === 0 ? 'today' : `in ${s.daysLeft} day${s.daysLeft === 1 ? '' : 's'}`;
    const then = s.successor ? `then served by ${s.successor}` : 'no successor: the route is dropped then';
    lines.push(`  ${s.model}  ${s.route}  shuts down ${s.shutdownDate} (${when}), ${then}`);
  }
  if (check.past.length) {
    lines.push('Routes past their shutdown:');
    for (const s of check.past) {
      const now = s.successor ? `served by ${s.successor}` : 'dropped (no successor)';
      lines.push(`  ${s.model}  ${s.route}  shut down ${s.shutdownDate}, ${now}`);
    }
  }
  return lines;
}
