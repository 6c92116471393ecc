import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../support/chromium';
import { consoleLink, consoleOrigin } from '../support/console';
import { addKey, createAccount, startTestGateway, type TestGateway } from '../support/gateway';

/**
 * The console in Chromium at a phone's size (390 × 844) and a laptop's (1280 × 800): every page
 * and dialog without horizontal scroll and with every control reachable, chart text at least
 * 10 px as rendered, a colour per series, chart values by keyboard and touch, dark mode, the
 * revoke dialog's safe focus, the sign-in link cases, and a sign-out forced from another origin.
 */

const PHONE = { width: 390, height: 844 };
const LAPTOP = { width: 1280, height: 800 };

let gw: TestGateway;
let browser: { context: BrowserContext; close(): Promise<void> };
let accountId: string;
let otherAccountId: string;
let attacker: Server;
let attackerPort: number;
const problems: string[] = [];

beforeAll(async () => {
  gw = await startTestGateway({
    env: { ITAPI_ADMIN_TOKEN: 'test-admin-layout', ITAPI_SECRET_STRIPE_SECRET_KEY: 'sk_test_layout', ITAPI_SECRET_STRIPE_WEBHOOK_SECRET: 'whsec_layout' },
  });
  const account = await createAccount(gw, { tier: 'pro', creditsMicroUsd: 50_000_000 });
  accountId = account.accountId;
  otherAccountId = (await createAccount(gw)).accountId;
  await addKey(gw, accountId, { tier: 'pro', models: ['gpt-4o-mini', 'claude-3-5-sonnet-20241022', 'deepseek-chat'] });
  // One request for every chat model: thirteen models, more than the chart has colours for.
  const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: account.key, maxRetries: 0 });
  const chatModels = gw.catalog.list().filter((m) => m.kind !== 'embedding').map((m) => m.id);
  expect(chatModels.length).toBeGreaterThan(12);
  for (const [i, model] of chatModels.entries()) {
    await client.chat.completions.create({ model, messages: [{ role: 'user', content: `Hello ${'again '.repeat(i * 10)}` }] });
  }
  await gw.gateway.background.drain();
  // "Another origin": a page on another port of the same host that posts to sign-out.
  attacker = createServer((_req, res) => {
    res
      .writeHead(200, { 'content-type': 'text/html' })
      .end(`<!doctype html><form id="f" method="post" action="${consoleOrigin(gw)}/console/sign-out"><input name="csrf" value="guess"></form><p id="ready">ready</p>`);
  });
  await new Promise<void>((resolve) => attacker.listen(0, new URL(gw.baseUrl).hostname, resolve));
  attackerPort = (attacker.address() as AddressInfo).port;
  browser = await launchChromium({ viewport: PHONE });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => attacker?.close(resolve));
  await gw?.stop();
});

function watch(page: Page): void {
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/status of 40[0134]/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
}

/**
 * What stops a page being used at its width: the page wider than the window, or a control (in the
 * open dialog, if one is open) that cannot be brought into view without scrolling the page sideways.
 */
async function layoutProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const found: string[] = [];
    const width = document.documentElement.clientWidth;
    const scroller = document.scrollingElement!;
    if (scroller.scrollWidth > width) found.push(`the page is ${scroller.scrollWidth}px wide in a ${width}px window`);
    const dialog = document.querySelector('dialog[open]');
    const controls = [...document.querySelectorAll<HTMLElement | SVGElement>('button, a[href], input, select, textarea, summary, [tabindex="0"]')].filter(
      (el) => el.getClientRects().length > 0 && (!dialog || dialog.contains(el)),
    );
    for (const el of controls) {
      el.scrollIntoView({ block: 'nearest', inline: 'nearest' });
      const r = el.getBoundingClientRect();
      const name = `${el.tagName.toLowerCase()} "${(el.textContent || el.getAttribute('aria-label') || el.getAttribute('name') || '').trim().slice(0, 40)}"`;
      if (r.left < -1 || r.right > width + 1) found.push(`${name} is at ${Math.round(r.left)}–${Math.round(r.right)}px`);
      if (window.scrollX !== 0) found.push(`bringing ${name} into view scrolled the page sideways`);
    }
    window.scrollTo(0, 0);
    return found;
  });
}

/** Every piece of chart and legend text as rendered: its font size times the scale of any drawing it is in. */
async function chartTextSizes(page: Page): Promise<Array<{ text: string; px: number }>> {
  return page.evaluate(() => {
    const sizes: Array<{ text: string; px: number }> = [];
    for (const root of document.querySelectorAll('figure.chart, ul.legend')) {
      const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const el = node.parentElement!;
        if (!node.textContent!.trim() || el.closest('title') || !el.getClientRects().length) continue;
        let px = parseFloat(getComputedStyle(el).fontSize);
        const svg = el.closest('svg');
        if (svg) {
          const m = (el as unknown as SVGGraphicsElement).getScreenCTM?.() ?? svg.getScreenCTM()!;
          px *= Math.hypot(m.a, m.b);
        }
        sizes.push({ text: node.textContent!.trim().slice(0, 30), px });
      }
    }
    return sizes;
  });
}

async function signIn(page: Page, account = accountId): Promise<void> {
  await page.goto((await consoleLink(gw, account)).url);
  await page.waitForSelector('body[data-page="console"]', { timeout: 5000 }).catch(async (err) => {
    throw new Error(`${err.message}\n${page.url()}\n${(await page.content()).slice(0, 2000)}`);
  });
}

describe.each([
  ['a phone', PHONE],
  ['a laptop', LAPTOP],
])('on %s', (_label, viewport) => {
  let page: Page;

  beforeAll(async () => {
    page = await browser.context.newPage();
    watch(page);
    await page.setViewportSize(viewport);
    await signIn(page);
    // The whole month: every request is in the range.
    await page.waitForSelector('#usage-panel rect.bar');
  }, 60_000);

  afterAll(async () => {
    await page.close();
  });

  it('the overview fits: no sideways scroll, every control reachable', async () => {
    await expect(layoutProblems(page)).resolves.toEqual([]);
    // The keys table (and its Revoke buttons) is reachable inside its own box.
    expect(await page.locator('#keys-panel button[data-action="revoke"]').count()).toBeGreaterThanOrEqual(2);
  });

  it('chart text is at least 10 px as rendered, each series has its own colour, beyond twelve models “Other”', async () => {
    const sizes = await chartTextSizes(page);
    expect(sizes.length).toBeGreaterThan(10);
    expect(sizes.filter((s) => s.px < 10)).toEqual([]);
    const fills = await page.$$eval('#usage-panel figure[data-metric="cost"] rect.bar', (rects) =>
      rects.map((r) => [r.getAttribute('data-model'), getComputedStyle(r).fill] as [string, string]),
    );
    const bySeries = new Map(fills);
    expect(bySeries.size).toBe(12);
    expect(bySeries.has('Other')).toBe(true);
    expect(new Set(bySeries.values()).size).toBe(12);
    const legend = await page.$$eval('#usage-panel ul.legend .swatch', (s) => s.map((e) => getComputedStyle(e).backgroundColor));
    expect(legend).toHaveLength(12);
    expect(new Set(legend).size).toBe(12);
  });

  it('a day’s values are read out when its mark is focused by keyboard or tapped', async () => {
    const readout = page.locator('figure[data-metric="cost"] .readout');
    const marks = page.locator('figure[data-metric="cost"] .day-mark');
    const today = new Date().toISOString().slice(0, 10);
    // Keyboard: Tab from the chart's previous control reaches the first day, then the next.
    await marks.first().focus();
    await expect(readout.textContent()).resolves.toMatch(/^\d{4}-\d{2}-\d{2}: nothing$|^\d{4}-\d{2}-\d{2}: \$/);
    await page.keyboard.press('Tab');
    await expect(page.evaluate(() => document.activeElement?.getAttribute('class'))).resolves.toBe('day-mark');
    // Touch (a tap is a pointer down and a click): today's mark, which has every request.
    await page.locator(`figure[data-metric="cost"] .day-mark[data-date="${today}"]`).click();
    const text = (await readout.textContent())!;
    expect(text.startsWith(`${today}: $`)).toBe(true);
    expect(text).toContain('Other');
    // The same values as a table.
    await page.click('figure[data-metric="cost"] details summary');
    await expect(page.locator(`figure[data-metric="cost"] details tr:has-text("${today}")`).count()).resolves.toBe(1);
    await expect(layoutProblems(page)).resolves.toEqual([]);
    await page.click('figure[data-metric="cost"] details summary');
  });

  it('the create-key dialog and the new key’s dialog fit', async () => {
    await page.click('button[data-action="open-create-key"]');
    await page.waitForSelector('#create-key[open]');
    await expect(layoutProblems(page)).resolves.toEqual([]);
    await page.fill('#create-key input[name="name"]', `layout-${viewport.width}`);
    await page.click('#create-key button[type="submit"]');
    await page.waitForSelector('#key-created[open]');
    await expect(layoutProblems(page)).resolves.toEqual([]);
    await page.click('#key-created button[data-action="close-dialog"]');
  });

  it('the revoke dialog fits and has Cancel focused: Enter twice revokes nothing', async () => {
    const row = page.locator('#keys-panel tr', { hasText: `layout-${viewport.width}` });
    await row.locator('button[data-action="revoke"]').click();
    await page.waitForSelector('#revoke-key[open]');
    await expect(layoutProblems(page)).resolves.toEqual([]);
    await expect(page.evaluate(() => document.activeElement?.textContent?.trim())).resolves.toBe('Cancel');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#revoke-key', { state: 'hidden' });
    await page.keyboard.press('Enter');
    await page.keyboard.press('Enter');
    await page.waitForTimeout(300);
    const keys = await gw.gateway.stores.keys.listByAccount(accountId);
    expect(keys.find((k) => k.name === `layout-${viewport.width}`)?.status).toBe('active');
    if (await page.locator('#revoke-key[open]').count()) await page.click('#revoke-key button[data-action="close-dialog"]');
  });

  it('the Models page fits and lists prices per 1M tokens', async () => {
    await page.click('nav.pages a:has-text("Models")');
    await page.waitForSelector('body[data-page="models"]');
    await expect(layoutProblems(page)).resolves.toEqual([]);
    const input = await page.locator('tr[data-model="gpt-4o-mini"] td[data-label="Input"]').textContent();
    expect(Number(input)).toBeCloseTo(gw.catalog.get('gpt-4o-mini')!.price.inputPerToken / 1000, 9);
    // On a phone each model is a card whose cells say what they are.
    if (viewport.width === PHONE.width) {
      await expect(page.locator('tr[data-model="gpt-4o-mini"] td[data-label="Context"]').evaluate((td) => getComputedStyle(td, '::before').content)).resolves.toBe('"Context"');
    }
    await page.click('nav.pages a:has-text("Overview")');
    await page.waitForSelector('body[data-page="console"]');
  });

  it('in dark mode the page is dark and its text light', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    const [bg, fg] = await page.evaluate(() => [getComputedStyle(document.documentElement).backgroundColor, getComputedStyle(document.body).color]);
    const luminance = (rgb: string) => {
      const [r, g, b] = rgb.match(/\d+/g)!.map(Number);
      return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
    };
    expect(luminance(bg)).toBeLessThan(0.2);
    expect(luminance(fg)).toBeGreaterThan(0.7);
    await page.emulateMedia({ colorScheme: 'light' });
    expect(luminance(await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor))).toBeGreaterThan(0.8);
  });

  it('the sign-in, switch-account, link-used, not-signed-in and error pages fit', async () => {
    const other = await browser.context.newPage();
    watch(other);
    await other.setViewportSize(viewport);
    // Another account's link while signed in: asked first, nothing changes until the choice.
    await other.goto((await consoleLink(gw, otherAccountId)).url);
    await other.waitForSelector('body[data-page="switch-account"]');
    await expect(layoutProblems(other)).resolves.toEqual([]);
    await other.click('a:has-text("Stay in")');
    await other.waitForSelector('body[data-page="console"]');
    await expect(other.textContent('.account-id')).resolves.toBe(accountId);
    // A spent link while signed in: back to the console, with a notice.
    const spent = await consoleLink(gw, accountId);
    await other.goto(spent.url);
    await other.waitForSelector('body[data-page="console"]');
    await other.goto(spent.url);
    await other.waitForSelector('body[data-page="console"] .notice');
    await expect(other.textContent('.notice')).resolves.toContain('used already');
    await expect(layoutProblems(other)).resolves.toEqual([]);
    // A page that does not exist, and a link without its token.
    await other.goto(`${consoleOrigin(gw)}/console/no-such-page`);
    await expect(layoutProblems(other)).resolves.toEqual([]);
    await other.goto(`${consoleOrigin(gw)}/console/sign-in`);
    await other.waitForSelector('[data-state="no-token"]:not([hidden])');
    await expect(layoutProblems(other)).resolves.toEqual([]);
    await other.close();
    // That sign-in replaced the browser's session: the page picks up the new one.
    await page.reload();
    await page.waitForSelector('body[data-page="console"]');
  });

  it('a sign-out posted from another port of the same host leaves the holder signed in', async () => {
    const evil = await browser.context.newPage();
    await evil.goto(`http://${new URL(gw.baseUrl).hostname}:${attackerPort}/`);
    await Promise.all([evil.waitForNavigation(), evil.evaluate(() => (document.getElementById('f') as HTMLFormElement).submit())]);
    expect(await evil.content()).toContain('console page itself');
    await evil.close();
    await page.reload();
    await page.waitForSelector('body[data-page="console"]');
    await expect(page.textContent('.account-id')).resolves.toBe(accountId);
  });

  it('signed out, the not-signed-in page fits', async () => {
    await page.click('header form button[type="submit"]');
    await page.waitForSelector('body[data-page="message"]');
    await expect(page.textContent('h1')).resolves.toBe('Not signed in');
    await expect(layoutProblems(page)).resolves.toEqual([]);
  });
});

it('no page had a script error, CSP violation or failed load (but the expected 4xx answers)', () => {
  expect(problems).toEqual([]);
});
