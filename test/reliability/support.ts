import type { LedgerEntry } from '../../lambda/store/usage';
import type { LocalGateway } from '../../lambda/entry/local-server';
import { openAiValidator } from '../support/openai-schema';

/** POSTs a chat completion with a bearer key. */
export function postChat(gw: Pick<LocalGateway, 'baseUrl'>, key: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(`${gw.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
}

/** Throws unless `body` is OpenAI's ErrorResponse with exactly the four fields. */
export function expectErrorBody(body: unknown, type?: string, code?: string): void {
  const validate = openAiValidator('ErrorResponse');
  if (!validate(body)) throw new Error(`not an ErrorResponse: ${JSON.stringify(body).slice(0, 300)} ${JSON.stringify(validate.errors)}`);
  const error = (body as { error: Record<string, unknown> }).error;
  if (Object.keys(error).sort().join() !== 'code,message,param,type') throw new Error(`error fields: ${Object.keys(error)}`);
  if (type !== undefined && error.type !== type) throw new Error(`type ${String(error.type)}, expected ${type}: ${error.message}`);
  if (code !== undefined && error.code !== code) throw new Error(`code ${String(error.code)}, expected ${code}: ${error.message}`);
}

export interface Books {
  balance: number;
  topUps: number;
  requests: LedgerEntry[];
  ledgerSum: number;
  /** Holds still taken on the account (requests admitted and never settled or released): the account's sums and the hold items. */
  heldMicroUsd: number;
  inFlight: number;
  holdItems: string[];
}

/** The account's balance and its ledger, after every background settlement has finished. */
export async function books(gw: LocalGateway, accountId: string): Promise<Books> {
  await gw.gateway.background.drain();
  return booksOf(gw.gateway.stores, accountId);
}

/** The account's balance and its ledger as the stores hold them now. */
export async function booksOf(stores: Pick<LocalGateway['gateway']['stores'], 'accounts' | 'usage' | 'holds'>, accountId: string): Promise<Books> {
  const account = await stores.accounts.get(accountId);
  const items = await stores.usage.all(accountId);
  const requests = items.filter((i) => i.kind === 'request');
  return {
    balance: account!.balanceMicroUsd,
    topUps: items.filter((i) => i.kind === 'topup').reduce((s, i) => s + i.amountMicroUsd, 0),
    requests,
    ledgerSum: items.reduce((s, i) => s + i.amountMicroUsd, 0),
    heldMicroUsd: account!.heldMicroUsd,
    inFlight: account!.inFlight,
    holdItems: (await stores.holds.ofAccount(accountId)).map((h) => h.requestId),
  };
}

/**
 * The money invariant of ARCHITECTURE §3 for one account: the balance is exactly its ledger
 * (top-ups positive, requests negative), never below zero, and nothing is held once all is settled.
 */
export function expectBooksBalance(b: Books): void {
  expect(b.holdItems).toEqual([]);
  expect(b.heldMicroUsd).toBe(0);
  expect(b.inFlight).toBe(0);
  expect(b.balance).toBe(b.ledgerSum);
  expect(b.balance).toBeGreaterThanOrEqual(0);
  for (const r of b.requests) expect(r.amountMicroUsd).toBeLessThanOrEqual(0);
}

/** Lines of `logs` that contain any of `secrets` (keys, prompts, completions). */
export function leaks(logs: readonly string[], secrets: readonly string[]): string[] {
  return logs.filter((line) => secrets.some((s) => s && line.includes(s)));
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Parses SSE `data:` payloads; `[DONE]` stays a string. */
export function parseSse(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length))
    .map((data) => (data === '[DONE]' ? data : JSON.parse(data)));
}
