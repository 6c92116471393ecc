import { ledgerView, usageTotals } from '../admin/views';
import { formatMicroUsd } from '../admin/money';
import { invalidRequest } from '../contract/errors';
import { ledgerSortKey, type LedgerEntry } from '../store/usage';
import type { Rollup } from '../store/rollups';
import type { LedgerPageJson, ModelDayJson, RequestJson, UsageSummaryJson } from './views/types';

/** The console's view of the usage ledger: days in UTC, per model, paged and as CSV. */

const DAY_MS = 24 * 3600 * 1000;
/** The longest range one view or download may cover. */
export const MAX_RANGE_DAYS = 366;
/** The range shown when none is asked for: the last 30 days, today included. */
export const DEFAULT_RANGE_DAYS = 30;
export const DEFAULT_PAGE_SIZE = 25;
export const MAX_PAGE_SIZE = 200;

export interface DayRange {
  /** `YYYY-MM-DD`, UTC. */
  from: string;
  to: string;
  /** The first millisecond of `from` and the last of `to`. */
  fromMs: number;
  toMs: number;
}

const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

function dayStartMs(value: string, param: string): number {
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T00:00:00Z`) : NaN;
  if (!Number.isFinite(ms) || isoDay(ms) !== value) throw invalidRequest(`\`${param}\` must be a date as YYYY-MM-DD.`, param);
  return ms;
}

/** The `from` and `to` query parameters (UTC days, both included), checked; missing ones default to the last 30 days. */
export function dayRange(from: string | undefined, to: string | undefined, nowMs: number): DayRange {
  const toStart = to ? dayStartMs(to, 'to') : dayStartMs(isoDay(nowMs), 'to');
  const fromStart = from ? dayStartMs(from, 'from') : toStart - (DEFAULT_RANGE_DAYS - 1) * DAY_MS;
  if (fromStart > toStart) throw invalidRequest('`from` must not be after `to`.', 'from');
  if ((toStart - fromStart) / DAY_MS + 1 > MAX_RANGE_DAYS) throw invalidRequest(`A range covers at most ${MAX_RANGE_DAYS} days.`, 'from');
  return { from: isoDay(fromStart), to: isoDay(toStart), fromMs: fromStart, toMs: toStart + DAY_MS - 1 };
}

/** Use per day and model over the range; `requests` are the range's request items, in any order. */
export function summarizeUsage(requests: LedgerEntry[], range: DayRange): UsageSummaryJson {
  const days = new Map<string, Record<string, ModelDayJson>>();
  for (let ms = range.fromMs; ms <= range.toMs; ms += DAY_MS) days.set(isoDay(ms), {});
  const byModel = new Map<string, { cost: number; tokens: number }>();
  const inRange: LedgerEntry[] = [];
  for (const r of requests) {
    const models = days.get(isoDay(r.atMs));
    if (!models || r.kind !== 'request') continue;
    inRange.push(r);
    const model = r.model ?? 'unknown';
    const m = (models[model] ??= { requests: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, cost_micro_usd: 0 });
    const tokens = (r.promptTokens ?? 0) + (r.completionTokens ?? 0);
    m.requests++;
    m.prompt_tokens += r.promptTokens ?? 0;
    m.completion_tokens += r.completionTokens ?? 0;
    m.total_tokens += tokens;
    m.cost_micro_usd += -r.amountMicroUsd;
    const total = byModel.get(model) ?? { cost: 0, tokens: 0 };
    byModel.set(model, { cost: total.cost - r.amountMicroUsd, tokens: total.tokens + tokens });
  }
  const models = [...byModel.keys()].sort(
    (a, b) => byModel.get(b)!.cost - byModel.get(a)!.cost || byModel.get(b)!.tokens - byModel.get(a)!.tokens || a.localeCompare(b),
  );
  return {
    object: 'usage_summary',
    from: range.from,
    to: range.to,
    key: null,
    model: null,
    models,
    days: [...days].map(([date, m]) => ({ date, models: m })),
    totals: usageTotals(inRange, []),
  };
}

/**
 * Use per day and model over the range, from the roll-ups (a handful of items per day, whatever the
 * traffic), of one key and one model when the filter names them, as the ledger and its CSV are.
 */
export function summarizeRollups(rollups: Rollup[], range: DayRange, filter: LedgerFilter = {}): UsageSummaryJson {
  const days = new Map<string, Record<string, ModelDayJson>>();
  for (let ms = range.fromMs; ms <= range.toMs; ms += DAY_MS) days.set(isoDay(ms), {});
  const byModel = new Map<string, { cost: number; tokens: number }>();
  const totals = { requests: 0, failed: 0, prompt: 0, completion: 0, cached: 0, cost: 0, uncharged: 0 };
  for (const r of rollups) {
    const models = days.get(r.day);
    if (!models) continue;
    if ((filter.keyId !== undefined && r.keyId !== filter.keyId) || (filter.model !== undefined && r.model !== filter.model)) continue;
    const m = (models[r.model] ??= { requests: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, cost_micro_usd: 0 });
    const tokens = r.promptTokens + r.completionTokens;
    m.requests += r.requests;
    m.prompt_tokens += r.promptTokens;
    m.completion_tokens += r.completionTokens;
    m.total_tokens += tokens;
    m.cost_micro_usd += r.costMicroUsd;
    const total = byModel.get(r.model) ?? { cost: 0, tokens: 0 };
    byModel.set(r.model, { cost: total.cost + r.costMicroUsd, tokens: total.tokens + tokens });
    totals.requests += r.requests;
    totals.failed += r.failedRequests;
    totals.prompt += r.promptTokens;
    totals.completion += r.completionTokens;
    totals.cached += r.cachedTokens;
    totals.cost += r.costMicroUsd;
    totals.uncharged += r.unchargedMicroUsd;
  }
  const models = [...byModel.keys()].sort(
    (a, b) => byModel.get(b)!.cost - byModel.get(a)!.cost || byModel.get(b)!.tokens - byModel.get(a)!.tokens || a.localeCompare(b),
  );
  const empty = usageTotals([], []);
  return {
    object: 'usage_summary',
    from: range.from,
    to: range.to,
    key: filter.keyId ?? null,
    model: filter.model ?? null,
    models,
    days: [...days].map(([date, m]) => ({ date, models: m })),
    totals: {
      ...empty,
      requests: totals.requests,
      failed_requests: totals.failed,
      prompt_tokens: totals.prompt,
      completion_tokens: totals.completion,
      total_tokens: totals.prompt + totals.completion,
      cached_tokens: totals.cached,
      cost_micro_usd: totals.cost,
      cost_usd: totals.cost / 1_000_000,
      uncharged_micro_usd: totals.uncharged,
    },
  };
}

/** The ledger's filters (`key`, `model`; absent or empty: all), checked. */
export interface LedgerFilter {
  keyId?: string;
  model?: string;
}

export function ledgerFilter(key: string | undefined, model: string | undefined): LedgerFilter {
  const filter: LedgerFilter = {};
  if (key) {
    if (!/^[\x21-\x7e]{1,128}$/.test(key)) throw invalidRequest('`key` must be a key id.', 'key');
    filter.keyId = key;
  }
  if (model) {
    if (!/^[\x21-\x7e]{1,256}$/.test(model)) throw invalidRequest('`model` must be a model id.', 'model');
    filter.model = model;
  }
  return filter;
}

/** Cursors are the ledger's own sort keys, so a page continues exactly where the last one ended. */
const CURSOR_SK = /^\d{13}#[\x21-\x7e]{1,256}$/;

export function encodeCursor(entry: LedgerEntry): string {
  return Buffer.from(ledgerSortKey(entry)).toString('base64url');
}

/** The sort key a cursor names; one outside the range asked for (another range's page) is refused, not sent to DynamoDB. */
export function decodeCursor(cursor: string, range: Pick<DayRange, 'fromMs' | 'toMs'>): string {
  const sk = /^[A-Za-z0-9_-]{1,400}$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  if (!CURSOR_SK.test(sk)) throw invalidRequest('`cursor` is not one this API gave out.', 'cursor');
  const atMs = Number(sk.slice(0, 13));
  if (atMs < range.fromMs || atMs > range.toMs) throw invalidRequest('`cursor` belongs to another range: ask for its first page again.', 'cursor');
  return sk;
}

export function pageSize(value: string | undefined): number {
  if (value === undefined) return DEFAULT_PAGE_SIZE;
  const n = /^\d{1,4}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= MAX_PAGE_SIZE)) throw invalidRequest(`\`limit\` must be a whole number from 1 to ${MAX_PAGE_SIZE}.`, 'limit');
  return n;
}

type PageReader = (options: { limit: number; after?: string; oldestFirst?: boolean }) => Promise<{ items: LedgerEntry[]; lastSk?: string }>;

/**
 * One page of requests, newest first. One item more than the page is read, so the last page
 * is known to be the last and never offers an empty next page.
 */
export async function ledgerPage(read: PageReader, range: DayRange, limit: number, cursor: string | undefined): Promise<LedgerPageJson> {
  const { items } = await read({ limit: limit + 1, after: cursor ? decodeCursor(cursor, range) : undefined });
  const shown = items.slice(0, limit);
  return {
    object: 'list',
    from: range.from,
    to: range.to,
    data: shown.map((e) => ledgerView(e) as RequestJson),
    next_cursor: items.length > limit ? encodeCursor(shown[shown.length - 1]) : null,
  };
}

export const CSV_COLUMNS = [
  'time',
  'request_id',
  'key_id',
  'model',
  'route',
  'status',
  'http_status',
  'error_code',
  'prompt_tokens',
  'completion_tokens',
  'cached_tokens',
  'cost_usd',
  'cost_micro_usd',
  'latency_ms',
  'stream',
  'cache_write_tokens',
  'cache_write_1h_tokens',
  'reasoning_tokens',
  'server_tool_calls',
  'service_tier',
] as const;

/**
 * RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled. A text cell that a
 * spreadsheet would read as a formula (it begins with = + - @, a tab or a carriage return) is
 * neutralised with a leading apostrophe (OWASP's CSV injection advice); numbers stay numbers.
 */
export function csvField(value: string | number | boolean | null | undefined): string {
  let text = value === null || value === undefined ? '' : String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvRow(e: LedgerEntry): string {
  const cost = -e.amountMicroUsd;
  const fields = [
    new Date(e.atMs).toISOString(),
    e.id,
    e.keyId,
    e.model,
    e.route,
    e.status,
    e.httpStatus,
    e.errorCode,
    e.promptTokens ?? 0,
    e.completionTokens ?? 0,
    e.cachedTokens ?? 0,
    formatMicroUsd(cost),
    cost,
    e.latencyMs,
    e.stream ?? false,
    e.cacheWriteTokens ?? 0,
    e.cacheWrite1hTokens ?? 0,
    e.reasoningTokens ?? 0,
    e.serverToolCalls ?? 0,
    e.serviceTier,
  ];
  return `${fields.map(csvField).join(',')}\r\n`;
}

const CSV_PAGE = 500;

/** The range's requests as CSV, oldest first, read and sent a page at a time. */
export function usageCsv(read: PageReader): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let after: string | undefined;
  let started = false;
  let done = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!started) {
        started = true;
        controller.enqueue(encoder.encode(`${CSV_COLUMNS.join(',')}\r\n`));
        return;
      }
      if (done) {
        controller.close();
        return;
      }
      const page = await read({ limit: CSV_PAGE, after, oldestFirst: true });
      if (page.items.length) controller.enqueue(encoder.encode(page.items.map(csvRow).join('')));
      after = page.lastSk;
      if (!after) done = true;
    },
  });
}
