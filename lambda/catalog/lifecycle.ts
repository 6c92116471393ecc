/**
 * Route lifecycle: a route may carry `shutdown_date` (UTC `YYYY-MM-DD`, the provider's published
 * shutdown) and `successor` (another model id of the same catalog). From that day on, the route is
 * replaced by the successor's routes, in order, without a redeploy. Dates are compared as UTC days.
 */

export const DAY_MS = 86_400_000;

/** How far ahead a route's shutdown is reported (the daily check's metric, `itapi catalog check`). */
export const SHUTDOWN_WARNING_DAYS = 30;

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** True for a real calendar day written `YYYY-MM-DD`. */
export function isCalendarDate(text: string): boolean {
  const m = DATE.exec(text);
  if (!m) return false;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return new Date(ms).toISOString().slice(0, 10) === text;
}

/** The UTC day of an instant, `YYYY-MM-DD`. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Whole days from `today` to `date` (both `YYYY-MM-DD`): 0 on the day itself, negative once past. */
export function daysUntil(date: string, today: string): number {
  return Math.round((Date.parse(`${date}T00:00:00Z`) - Date.parse(`${today}T00:00:00Z`)) / DAY_MS);
}

export class ClockError extends Error {
  override name = 'ClockError';
}

/**
 * The catalog's clock: `ITAPI_NOW` (an ISO date, `2027-01-14`, or date-time,
 * `2027-01-14T09:00:00Z`) fixes it, for tests; otherwise the real time.
 */
export function catalogClock(env: NodeJS.ProcessEnv = process.env): () => number {
  const fixed = env.ITAPI_NOW;
  if (!fixed) return Date.now;
  const ms = DATE.test(fixed) ? Date.parse(`${fixed}T00:00:00Z`) : Date.parse(fixed);
  if (!Number.isFinite(ms) || (DATE.test(fixed) && !isCalendarDate(fixed))) {
    throw new ClockError(`ITAPI_NOW must be an ISO date (2027-01-14) or date-time (2027-01-14T09:00:00Z), got '${fixed}'`);
  }
  return () => ms;
}

/** One route whose shutdown is near or past, as the daily check and `itapi catalog check` report it. */
export interface RouteShutdown {
  /** The model id of the catalog that carries the route. */
  model: string;
  /** The route as `x-itapi-route` names it: `provider:upstream-model`. */
  route: string;
  shutdownDate: string;
  /** Days left: 0 on the day itself, negative once past (the successor serves then). */
  daysLeft: number;
  successor: string | null;
}
