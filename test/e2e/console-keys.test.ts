import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import type { BrowserContext, Page } from 'playwright-core';
import { csvField } from '../../lambda/console/usage';
import { count, exactDollars } from '../../lambda/console/views/format';
import { launchChromium } from '../support/chromium';
import { consoleLink } from '../support/console';
import { addKey, createAccount, startTestGateway, type TestGateway } from '../support/gateway';

/**
 * Issue 21 (keys and ledger) in Chromium, as an account holder uses the console, with the openai
 * client calling the gateway: a key's last use and spend, rename, disable and enable (401 at
 * once), a monthly spend cap (402 naming it), revoked keys folded away; the ledger's Key column,
 * its Key and Model filters and the CSV that follows them.
 */

let gw: TestGateway;
let browser: { context: BrowserContext; close(): Promise<void> };
let accountId: string;
const problems: string[] = [];

beforeAll(async () => {
  gw = await startTestGateway();
  ({ accountId } = await createAccount(gw, { tier: 'pro', creditsMicroUsd: 20_000_000 }));
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
});

function watch(page: Page): void {
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
}

async function signedIn(): Promise<Page> {
  const page = await browser.context.newPage();
  watch(page);
  await page.goto((await consoleLink(gw, accountId)).url);
  await page.waitForSelector('body[data-page="console"]');
  return page;
}

async function createKey(page: Page, name: string, capUsd?: string): Promise<string> {
  await page.click('button[data-action="open-create-key"]');
  await page.fill('#create-key input[name="name"]', name);
  if (capUsd) await page.getByLabel(/monthly spend cap/i).first().fill(capUsd);
  await page.click('#create-key button[type="submit"]');
  await page.waitForSelector('#key-created[open]');
  const secret = (await page.textContent('#new-key-secret'))!;
  await page.click('#key-created button[data-action="close-dialog"]');
  return secret;
}

const ask = (client: OpenAI, model = 'gpt-4o-mini', max_tokens?: number) =>
  client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello from the keys test' }], max_tokens });

test('a key shows its last use and spend, is renamed, disabled and enabled again, capped, and folds away once revoked', async () => {
  const page = await signedIn();
  const secret = await createKey(page, 'laptop');
  const row = () => page.locator('#keys-panel > .keys-list > table tr', { hasText: 'laptop' }).or(page.locator('#keys-panel > .keys-list > table tr', { hasText: 'workstation' }));
  await expect(row().locator('.last-used').textContent()).resolves.toBe('never');

  const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: secret, maxRetries: 0 });
  for (let i = 0; i < 3; i++) await ask(client, i === 1 ? 'gpt-4o' : 'gpt-4o-mini');
  await gw.gateway.background.drain();

  // Last used and spend, from the roll-ups, equal to the ledger to the micro-dollar.
  await page.reload();
  const ledger = (await gw.gateway.stores.usage.all(accountId)).filter((e) => e.kind === 'request');
  const spent = ledger.reduce((sum, e) => sum - e.amountMicroUsd, 0);
  expect(spent).toBeGreaterThan(0);
  await expect(row().locator('.last-used').textContent()).resolves.toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/);
  await expect(row().locator('.spend-30d').getAttribute('data-micro-usd')).resolves.toBe(String(spent));
  await expect(row().locator('.spend-month').getAttribute('data-micro-usd')).resolves.toBe(String(spent));
  await expect(page.locator('thead th', { hasText: 'Last used' }).count()).resolves.toBeGreaterThan(0);

  // Rename: one line of printable text; a bidi control is refused with the API's message.
  await row().getByRole('button', { name: 'Rename' }).click();
  await page.waitForSelector('#edit-key[open]');
  await page.fill('#edit-key input[name="name"]', 'work\u202estation');
  await page.click('#edit-key button[type="submit"]');
  await page.waitForSelector('#edit-key .error:not([hidden])');
  await expect(page.locator('#edit-key .error').textContent()).resolves.toContain('printable');
  await page.fill('#edit-key input[name="name"]', 'workstation');
  await page.click('#edit-key button[type="submit"]');
  await page.waitForSelector('#edit-key', { state: 'hidden' });
  await page.locator('#keys-panel tr .key-name', { hasText: 'workstation' }).waitFor();

  // Disable: the key answers 401 at once; Enable: it works again.
  await row().getByRole('button', { name: 'Disable' }).click();
  await row().getByRole('button', { name: 'Enable' }).waitFor();
  await expect(ask(client)).rejects.toMatchObject({ status: 401 });
  await row().getByRole('button', { name: 'Enable' }).click();
  await row().getByRole('button', { name: 'Disable' }).waitFor();
  await expect(ask(client)).resolves.toBeDefined();

  // A monthly spend cap below what the key already spent: the next request gets 402 naming the cap.
  await row().getByRole('button', { name: 'Spend cap' }).click();
  await page.waitForSelector('#edit-key[open]');
  await page.getByLabel(/monthly spend cap/i).last().fill('0.01');
  await page.click('#edit-key button[type="submit"]');
  await page.waitForSelector('#edit-key', { state: 'hidden' });
  await row().locator('.spend-cap', { hasText: '$0.01 a month' }).waitFor();
  // A request whose worst case (1,500 output tokens of gpt-4o) is beyond the cap is refused.
  let refused: { status?: number; message?: string } | undefined;
  for (let i = 0; i < 40 && !refused; i++) {
    refused = await ask(client, 'gpt-4o', 1500).then(
      () => undefined,
      (err: { status?: number; message?: string }) => err,
    );
  }
  expect(refused).toMatchObject({ status: 402 });
  expect(refused!.message).toContain('$0.01');
  expect(refused!.message).toContain('monthly spend cap');
  await gw.gateway.background.drain();
  const record = (await gw.gateway.stores.keys.listByAccount(accountId)).find((k) => k.name === 'workstation')!;
  expect(record.spendUsedMicroUsd).toBeLessThanOrEqual(10_000);

  // Revoke: the key folds away under "Revoked keys (1)".
  await row().getByRole('button', { name: 'Revoke' }).click();
  await page.click('#revoke-key button[data-action="confirm-revoke"]');
  const details = page.locator('#keys-panel details.revoked-keys');
  await details.locator('summary', { hasText: 'Revoked keys (1)' }).waitFor();
  await expect(details.evaluate((d) => (d as HTMLDetailsElement).open)).resolves.toBe(false);
  await expect(page.locator('#keys-panel > .keys-list > table tr', { hasText: 'workstation' }).count()).resolves.toBe(0);
  await expect(ask(client)).rejects.toMatchObject({ status: 401 });

  expect(problems.filter((p) => !/40[0-2]/.test(p))).toEqual([]);
  await page.close();
}, 180_000);

test('the ledger shows each request’s key, filters by key and model, and the CSV follows the filters', async () => {
  const a = await addKey(gw, accountId, { tier: 'pro' });
  const b = await addKey(gw, accountId, { tier: 'pro' });
  const clientA = new OpenAI({ baseURL: gw.baseUrl, apiKey: a.key, maxRetries: 0 });
  const clientB = new OpenAI({ baseURL: gw.baseUrl, apiKey: b.key, maxRetries: 0 });
  await ask(clientA, 'gpt-4o-mini');
  await ask(clientA, 'gpt-4o');
  await ask(clientB, 'gpt-4o-mini');
  await gw.gateway.background.drain();

  const page = await signedIn();
  await expect(page.locator('#ledger-panel th', { hasText: 'Key' }).count()).resolves.toBeGreaterThan(0);
  const keySelect = page.getByLabel('Key', { exact: true });
  const modelSelect = page.getByLabel('Model', { exact: true });
  await expect(keySelect.locator('option').first().textContent()).resolves.toBe('All');
  await expect(modelSelect.locator('option').first().textContent()).resolves.toBe('All');

  const ledger = (await gw.gateway.stores.usage.all(accountId)).filter((e) => e.kind === 'request');
  const today = new Date().toISOString().slice(0, 10);
  /** What the charts show for the filter the page has: the models drawn, and today's value as read out. */
  const charts = async (key: string, model: string) => {
    await page.waitForSelector(`#usage-panel .usage-summary[data-key="${key}"][data-model="${model}"]`);
    const models = await page.$$eval('#usage-panel figure[data-metric="cost"] rect.bar', (rects) => [...new Set(rects.map((r) => r.getAttribute('data-model')))].sort());
    const readout = await page.getAttribute(`#usage-panel figure[data-metric="cost"] .day-mark[data-date="${today}"]`, 'aria-label');
    const tokens = await page.getAttribute(`#usage-panel figure[data-metric="tokens"] .day-mark[data-date="${today}"]`, 'aria-label');
    const totals = await page.textContent('#usage-panel .totals');
    return { models, readout, tokens, totals };
  };
  const expected = (matches: (e: (typeof ledger)[number]) => boolean) => {
    const entries = ledger.filter(matches);
    const cost = entries.reduce((sum, e) => sum - e.amountMicroUsd, 0);
    const tokens = entries.reduce((sum, e) => sum + (e.promptTokens ?? 0) + (e.completionTokens ?? 0), 0);
    return { models: [...new Set(entries.map((e) => e.model!))].sort(), readoutStart: `${today}: ${exactDollars(cost)}`, tokensStart: `${today}: ${count(tokens)} tokens`, requests: entries.length };
  };
  const expectCharts = async (key: string, model: string, matches: (e: (typeof ledger)[number]) => boolean) => {
    const shown = await charts(key, model);
    const want = expected(matches);
    expect(shown.models).toEqual(want.models);
    expect(shown.readout!.startsWith(want.readoutStart)).toBe(true);
    expect(shown.tokens!.startsWith(want.tokensStart)).toBe(true);
    expect(shown.totals).toContain(` for ${want.requests} requests`);
  };
  await expectCharts('', '', () => true);

  await keySelect.selectOption(a.record.keyId);
  await page.waitForFunction((id) => {
    const cells = [...document.querySelectorAll('#ledger-panel td.ledger-key')];
    return cells.length === 2 && cells.every((c) => c.getAttribute('data-key-id') === id);
  }, a.record.keyId);
  // The charts above the ledger follow the filter too: key A's two models, its spend and tokens.
  await expectCharts(a.record.keyId, '', (e) => e.keyId === a.record.keyId);
  await modelSelect.selectOption('gpt-4o');
  await page.waitForFunction(() => document.querySelectorAll('#ledger-panel tr[data-request-id]').length === 1);
  await expectCharts(a.record.keyId, 'gpt-4o', (e) => e.keyId === a.record.keyId && e.model === 'gpt-4o');
  // Key B with the same model: nothing of B's on gpt-4o, so nothing drawn.
  await keySelect.selectOption(b.record.keyId);
  await page.waitForSelector(`#usage-panel .usage-summary[data-key="${b.record.keyId}"][data-model="gpt-4o"]`);
  await expect(page.locator('#usage-panel figure[data-metric="cost"] rect.bar').count()).resolves.toBe(0);
  await page.waitForSelector('#ledger-panel p.empty');
  await keySelect.selectOption(a.record.keyId);
  await expectCharts(a.record.keyId, 'gpt-4o', (e) => e.keyId === a.record.keyId && e.model === 'gpt-4o');

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('a[data-link="csv"]')]);
  const lines = readFileSync((await download.path())!, 'utf8').trimEnd().split('\r\n');
  const header = lines[0].split(',');
  const rows = lines.slice(1).map((l) => l.split(','));
  expect(rows).toHaveLength(1);
  expect(rows[0][header.indexOf('key_id')]).toBe(a.record.keyId);
  expect(rows[0][header.indexOf('model')]).toBe('gpt-4o');

  // "All" again: every request of the account (three here, plus the first test's).
  await keySelect.selectOption('');
  await modelSelect.selectOption('');
  const all = (await gw.gateway.stores.usage.all(accountId)).filter((e) => e.kind === 'request').length;
  await page.waitForFunction((n) => document.querySelectorAll('#ledger-panel tr[data-request-id]').length === Math.min(n, 25), all);
  await expectCharts('', '', () => true);
  // The charts read the roll-ups, not the ledger: the numbers come from the roll-up items.
  const rollups = await gw.gateway.stores.rollups.range(accountId, today, today);
  expect(rollups.filter((r) => r.keyId === a.record.keyId).reduce((sum, r) => sum + r.requests, 0)).toBe(2);
  expect(problems.filter((p) => p.startsWith('pageerror'))).toEqual([]);
  await page.close();
}, 120_000);

test('CSV cells that a spreadsheet would run as formulas are neutralised; numbers stay numbers', () => {
  expect(csvField('=HYPERLINK("http://x")')).toBe(`"'=HYPERLINK(""http://x"")"`);
  expect(csvField('+1')).toBe("'+1");
  expect(csvField('-2')).toBe("'-2");
  expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
  expect(csvField('\tx')).toBe("'\tx");
  expect(csvField('gpt-4o')).toBe('gpt-4o');
  expect(csvField(-5)).toBe('-5');
});
