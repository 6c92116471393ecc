import type { accountView, keyView, ledgerView, usageTotals } from '../../admin/views';

/** The console API's JSON shapes, as the pages and the browser script both read them. */

export type AccountJson = ReturnType<typeof accountView>;
export type KeyJson = ReturnType<typeof keyView>;
export type RequestJson = Extract<ReturnType<typeof ledgerView>, { kind: 'request' }>;
export type TopUpJson = Extract<ReturnType<typeof ledgerView>, { kind: 'topup' }>;

/** One model's use on one day. */
export interface ModelDayJson {
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cost_micro_usd: number;
}

/** `GET /console/api/usage`: use per UTC day and model over a range of days. */
export interface UsageSummaryJson {
  object: 'usage_summary';
  /** First and last day of the range (UTC), `YYYY-MM-DD`. */
  from: string;
  to: string;
  /** The filters it follows (a key id, a model id), null: all. */
  key: string | null;
  model: string | null;
  /** Models with use in the range, costliest first. */
  models: string[];
  /** Every day of the range, oldest first, with the models used that day. */
  days: Array<{ date: string; models: Record<string, ModelDayJson> }>;
  totals: ReturnType<typeof usageTotals>;
}

/** `GET /console/api/usage/requests`: one page of the ledger, newest first. */
export interface LedgerPageJson {
  object: 'list';
  from: string;
  to: string;
  data: RequestJson[];
  /** Pass as `cursor` for the next (older) page; null on the last page. */
  next_cursor: string | null;
}

/** `GET /console/api/top-up`. */
export interface TopUpOptionsJson {
  object: 'top_up_options';
  /** True when Stripe is configured: the console can open Stripe Checkout. */
  enabled: boolean;
  currency: 'usd';
  min_usd: number;
  max_usd: number;
  /** The latest top-ups of the account (any source), newest first, each with what it paid of what was owed. */
  recent: Array<TopUpJson & { owed_paid_micro_usd: number }>;
}

/** A model an account may give a key (its tier's models, or the whole catalog), with its prices. */
export interface ModelChoiceJson {
  id: string;
  owned_by: string;
  kind: 'chat' | 'embedding';
  /** Tokens of prompt and output together. */
  context_window: number;
  /** Null for embedding models (no output). */
  max_output_tokens: number | null;
  /** USD per million tokens, as the gateway bills them; null where the catalog names no such price. */
  pricing: {
    input_per_mtok: number;
    output_per_mtok: number | null;
    /** Cache reads; the input price where the catalog names none (that is what is billed). */
    cached_input_per_mtok: number;
    /**
     * Cache writes (5-minute, 1-hour) as billed: the catalog's `cache_write_per_mtok` fields, else
     * Anthropic's multipliers of input on Claude models; null where writes bill as plain input.
     */
    cache_write_per_mtok: number | null;
    cache_write_1h_per_mtok: number | null;
  };
}
