import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import OpenAI from 'openai';
import type { Page } from 'playwright-core';
import { launchChromium, UNSAFE_ARGS, type LaunchedChromium } from '../support/chromium';
import { consoleLink } from '../support/console';
import { createAccount, startTestGateway, type TestGateway } from '../support/gateway';

/**
 * The console in a real browser (the npm package's headless Chromium through playwright-core): an account
 * holder follows a sign-in link from another site, creates a key, uses it with the openai client,
 * sees the usage, downloads the CSV and revokes the key. A missing Chromium fails this test.
 */

let gw: TestGateway;
let browser: LaunchedChromium;
let mail: Server;
let mailPort: number;
let accountId: string;
let linkUrl: string;
const problems: string[] = [];

beforeAll(async () => {
  gw = await startTestGateway();
  ({ accountId } = await createAccount(gw, { tier: 'starter', creditsMicroUsd: 5_000_000 }));
  linkUrl = (await consoleLink(gw, accountId)).url;
  // "Another site": a page on mail.example (mapped to loopback by the browser) that links to the console.
  mail = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><p>Your console: <a id="sign-in" href="${linkUrl}">sign in</a></p>`);
  });
  await new Promise<void>((resolve) => mail.listen(0, '127.0.0.1', resolve));
  mailPort = (mail.address() as AddressInfo).port;
  browser = await launchChromium({ extraArgs: ['--host-resolver-rules=MAP mail.example 127.0.0.1'] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => mail?.close(resolve));
  await gw?.stop();
});

/** The browser process of this launch (found by its own profile folder), with its binary and command line. */
function browserProcesses(userDataDir: string): { pid: string; exe: string; args: string[] }[] {
  const found: { pid: string; exe: string; args: string[] }[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (args.includes(`--user-data-dir=${userDataDir}`)) found.push({ pid, exe: readlinkSync(`/proc/${pid}/exe`), args });
    } catch {
      // Not ours to read, or ended while we read.
    }
  }
  return found;
}

test('runs the npm package\'s Chromium (unless ITAPI_CHROMIUM names one), unpacked for this run, without flags that weaken it', async () => {
  if (!process.env.ITAPI_CHROMIUM) {
    expect(browser.executablePath.startsWith(tmpdir())).toBe(true);
    expect(browser.executablePath).toMatch(/\/itapi-chromium-[^/]+\/browser\/chromium$/);
  }
  const running = browserProcesses(browser.userDataDir);
  expect(running.length).toBeGreaterThan(0);
  for (const { args } of running) expect(args.filter((arg) => UNSAFE_ARGS.some((flag) => arg.startsWith(flag)))).toEqual([]);
  if (!process.env.ITAPI_CHROMIUM) {
    // The binary that runs is the one unpacked for this launch (not /usr/bin/chromium or any other).
    expect(running.map((p) => p.exe)).toEqual(running.map(() => browser.executablePath));
    // NSS comes from the package's libraries, not the machine's.
    const maps = readFileSync(`/proc/${running[0].pid}/maps`, 'utf8');
    expect(maps).toMatch(new RegExp(`${browser.executablePath.replace(/chromium$/, '')}al2023/lib/libnss3\\.so`));
  }
});

// With ITAPI_CHROMIUM (one binary named by hand) nothing is unpacked, so there is nothing to collide.
(process.env.ITAPI_CHROMIUM ? test.skip : test)('launches side by side with another run: each unpacks into a folder of its own', async () => {
  const second = await launchChromium();
  // A close that fails (a browser already gone, a lost pipe) still removes the launch's folder.
  const closeContext = second.context.close.bind(second.context);
  second.context.close = async () => {
    await closeContext();
    throw new Error('the browser went away');
  };
  try {
    expect(second.executablePath).not.toBe(browser.executablePath);
    const page = await second.context.newPage();
    await page.goto(`http://mail.example:${mailPort}/`).catch(() => undefined); // not mapped in this one: any answer will do
    await page.close();
  } finally {
    await expect(second.close()).rejects.toThrow('the browser went away');
  }
  expect(existsSync(dirname(second.userDataDir))).toBe(false);
  // Closing the other removed only its own folder: this launch's browser still runs.
  expect(existsSync(browser.executablePath)).toBe(true);
  const page = await browser.context.newPage();
  await page.goto(`http://mail.example:${mailPort}/`);
  await expect(page.textContent('#sign-in')).resolves.toBe('sign in');
  await page.close();
}, 120_000);

test('keeps the same-origin policy: a page on another site cannot read the console', async () => {
  const page = await browser.context.newPage();
  await page.goto(`http://mail.example:${mailPort}/`);
  const read = await page.evaluate(async (url) => {
    try {
      const res = await fetch(url, { credentials: 'include' });
      return `read ${res.status}: ${(await res.text()).slice(0, 40)}`;
    } catch (err) {
      return `refused: ${(err as Error).name}`;
    }
  }, `${new URL(gw.baseUrl).origin}/console/`);
  expect(read).toBe('refused: TypeError');
  await page.close();
  problems.splice(0); // the refused read is reported on that page's console
});

/** Collects what a page reports as wrong: script errors, CSP violations, failed loads. */
function watch(page: Page): void {
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
}

test('an account holder signs in from a link on another site, manages a key, sees its usage, downloads it, and revokes the key', async () => {
  const page = await browser.context.newPage();
  watch(page);
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(gw.baseUrl).origin });

  // 1. Sign in: the link is clicked on another site; the sign-in page's same-site post sets the
  // SameSite=Strict cookie, and the redirect that follows carries it.
  await page.goto(`http://mail.example:${mailPort}/`);
  await page.click('#sign-in');
  await page.waitForSelector('body[data-page="console"]');
  expect(new URL(page.url()).pathname).toBe('/console/');
  expect(new URL(page.url()).hash).toBe('');
  await expect(page.textContent('.account-id')).resolves.toBe(accountId);
  await expect(page.textContent('.balance')).resolves.toBe('$5.00');
  const cookies = await browser.context.cookies(new URL(gw.baseUrl).origin);
  expect(cookies).toEqual([expect.objectContaining({ name: 'itapi_console', httpOnly: true, sameSite: 'Strict' })]);

  // The link is spent: opening it again signs no one in; the holder, signed in, is shown the console with a notice.
  const again = await browser.context.newPage();
  watch(again);
  await again.goto(linkUrl);
  await again.waitForSelector('body[data-page="console"] .notice');
  await expect(again.textContent('.notice')).resolves.toContain('used already');
  await again.close();

  // 2. Create a key: the secret is shown once, with a copy button.
  await page.click('button[data-action="open-create-key"]');
  await page.fill('#create-key input[name="name"]', 'browser-test');
  await page.check('#create-key input[name="models"][value="gpt-4o-mini"]');
  await page.check('#create-key input[name="models"][value="gpt-4o"]');
  await page.click('#create-key button[type="submit"]');
  await page.waitForSelector('#key-created[open]');
  const secret = (await page.textContent('#new-key-secret'))!;
  expect(secret).toMatch(/^it_[0-9A-Za-z]{40}$/);
  await page.click('button[data-action="copy-key"]');
  await page.waitForSelector('#key-created .copied:not([hidden])');
  await expect(page.evaluate(() => navigator.clipboard.readText())).resolves.toBe(secret);
  await page.click('#key-created button[data-action="close-dialog"]');
  // The dialog's close event (which clears the secret) runs as a task after the click: wait for its effect.
  await page.waitForSelector('#key-created', { state: 'hidden' });
  await page.waitForFunction(() => document.querySelector('#new-key-secret')?.textContent === '');
  const row = page.locator('#keys-panel tr', { hasText: 'browser-test' });
  await expect(row.textContent()).resolves.toContain('gpt-4o, gpt-4o-mini');
  await expect(row.textContent()).resolves.toContain(`${secret.slice(0, 6)}…${secret.slice(-4)}`);
  expect(await page.content()).not.toContain(secret);

  // 3. Use it: real requests through the gateway with the openai client.
  const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: secret, maxRetries: 0 });
  const requestIds: string[] = [];
  for (const model of ['gpt-4o-mini', 'gpt-4o', 'gpt-4o-mini']) {
    const { data, response } = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello from the browser test' }] }).withResponse();
    expect(data.choices[0].message.content).toBeTruthy();
    requestIds.push(response.headers.get('x-request-id')!);
  }
  await gw.gateway.background.drain();

  // 4. See the usage: the range's chart has bars for both models, the ledger lists the requests.
  await page.click('form[data-form="range"] button[type="submit"]');
  await page.waitForSelector(`#ledger-panel tr[data-request-id="${requestIds[2]}"]`);
  const bars = await page.$$eval('#usage-panel svg rect.bar', (rects) => rects.map((r) => r.getAttribute('data-model')));
  expect(new Set(bars)).toEqual(new Set(['gpt-4o', 'gpt-4o-mini']));
  await expect(page.textContent('#usage-panel .totals')).resolves.toMatch(/for 3 requests/);
  const listed = await page.$$eval('#ledger-panel tr[data-request-id]', (rows) => rows.map((r) => r.getAttribute('data-request-id')));
  expect(listed).toEqual([...requestIds].reverse());
  const ledger = await gw.gateway.stores.usage.all(accountId);
  const spent = ledger.filter((e) => e.kind === 'request').reduce((sum, e) => sum - e.amountMicroUsd, 0);
  expect(spent).toBeGreaterThan(0);

  // 5. Download the CSV of the range.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('a[data-link="csv"]')]);
  expect(download.suggestedFilename()).toMatch(new RegExp(`^itapi-usage-${accountId}-\\d{4}-\\d{2}-\\d{2}-\\d{4}-\\d{2}-\\d{2}\\.csv$`));
  const csv = readFileSync((await download.path())!, 'utf8').trimEnd().split('\r\n');
  expect(csv[0].startsWith('time,request_id,')).toBe(true);
  expect(csv.slice(1).map((line) => line.split(',')[1])).toEqual(requestIds);
  const costColumn = csv[0].split(',').indexOf('cost_micro_usd');
  expect(csv.slice(1).reduce((sum, line) => sum + Number(line.split(',')[costColumn]), 0)).toBe(spent);

  // 6. Revoke the key, after a confirmation; the gateway refuses it from then on.
  await row.locator('button[data-action="revoke"]').click();
  await page.waitForSelector('#revoke-key[open]');
  await expect(page.textContent('#revoke-key-name')).resolves.toBe('browser-test');
  await page.click('#revoke-key button[data-action="confirm-revoke"]');
  await page.waitForSelector('#revoke-key', { state: 'hidden' });
  // A revoked key folds away under "Revoked keys (1)".
  await page.locator('#keys-panel details.revoked-keys summary', { hasText: 'Revoked keys (1)' }).click();
  const revokedRow = page.locator('#keys-panel details.revoked-keys tr', { hasText: 'browser-test' });
  await revokedRow.locator('.status', { hasText: 'revoked' }).waitFor();
  await expect(revokedRow.locator('button[data-action="revoke"]').count()).resolves.toBe(0);
  await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] })).rejects.toMatchObject({ status: 401 });

  // 7. Sign out: the session ends.
  await page.click('header form button[type="submit"]');
  await page.waitForSelector('body[data-page="message"]');
  await expect(page.textContent('h1')).resolves.toBe('Not signed in');

  // No script error, CSP violation or failed load on any page.
  expect(problems.filter((p) => !p.includes('401'))).toEqual([]);
}, 120_000);
