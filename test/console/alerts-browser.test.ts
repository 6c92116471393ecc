import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BrowserContext } from 'playwright-core';
import { launchChromium } from '../support/chromium';
import { consoleLink } from '../support/console';
import { createAccount, startTestGateway, type TestGateway } from '../support/gateway';

/**
 * The low-balance alert fields in Chromium, as a holder uses them at phone and laptop width: the
 * threshold and webhook URL saved, the signing secret shown right after saving and behind
 * "Reveal secret", and the event that arrives signed with that secret.
 */

let gw: TestGateway;
const hits: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
const receiver = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    hits.push({ headers: req.headers, body: Buffer.concat(parts).toString('utf8') });
    res.writeHead(204).end();
  });
});
let hookUrl: string;

beforeAll(async () => {
  gw = await startTestGateway();
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
});

const idle = () => (gw.gateway.alertOutbox as unknown as { idle(): Promise<void> }).idle();

describe.each([
  { width: 390, height: 844 },
  { width: 1280, height: 900 },
])('at $width px', (viewport) => {
  let browser: { context: BrowserContext; close(): Promise<void> };
  beforeAll(async () => {
    browser = await launchChromium({ viewport });
  });
  afterAll(async () => browser?.close());

  it('saves a threshold and a webhook URL, shows the secret once and behind "Reveal secret", and the event verifies with it', async () => {
    const { accountId } = await createAccount(gw, { creditsMicroUsd: 3_000_000 });
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto((await consoleLink(gw, accountId)).url);
    await page.waitForSelector('body[data-page="console"]');

    const threshold = page.getByLabel('Low balance threshold');
    const webhook = page.getByLabel('Webhook URL');
    await expect(threshold.isVisible()).resolves.toBe(true);
    await expect(webhook.isVisible()).resolves.toBe(true);
    // The panel fits the screen: nothing of it is off to the right.
    const box = (await page.locator('section.alerts').boundingBox())!;
    expect(box.x + box.width).toBeLessThanOrEqual(viewport.width);
    for (const field of [threshold, webhook]) {
      const b = (await field.boundingBox())!;
      expect(b.x + b.width).toBeLessThanOrEqual(viewport.width);
    }

    // Above the balance of $3: the alert fires as soon as it is saved.
    await threshold.fill('4.5');
    await webhook.fill(hookUrl);
    const before = hits.length;
    await page.getByRole('button', { name: 'Save alert' }).click();
    const secretBox = page.locator('#alert-secret');
    await secretBox.waitFor({ state: 'visible' });
    const secret = (await secretBox.textContent())!;
    expect(secret).toMatch(/^itapi_whsec_/);
    await expect(page.textContent('[data-field="alert-state"]')).resolves.toContain('Fired');

    await idle();
    const mine = hits.slice(before).filter((h) => JSON.parse(h.body).account_id === accountId);
    expect(mine).toHaveLength(1);
    const [, t, mac] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(mine[0].headers['itapi-signature']))!;
    expect(createHmac('sha256', secret).update(`${t}.${mine[0].body}`).digest('hex')).toBe(mac);
    expect(JSON.parse(mine[0].body)).toMatchObject({ type: 'balance.low', balance_micro_usd: 3_000_000, threshold_micro_usd: 4_500_000 });

    // Later visits do not show it until asked.
    await page.reload();
    await page.waitForSelector('body[data-page="console"]');
    await expect(page.locator('#alert-secret').isVisible()).resolves.toBe(false);
    await expect(page.inputValue('#alert-threshold')).resolves.toBe('4.5');
    await expect(page.inputValue('#alert-webhook')).resolves.toBe(hookUrl);
    await page.getByRole('button', { name: 'Reveal secret' }).click();
    await page.locator('#alert-secret').waitFor({ state: 'visible' });
    await expect(page.textContent('#alert-secret')).resolves.toBe(secret);

    // A refused address is said next to the form.
    await webhook.fill('ftp://example.com/x');
    await page.getByLabel('Webhook URL').evaluate((e: HTMLInputElement) => (e.type = 'text'));
    await page.getByRole('button', { name: 'Save alert' }).click();
    await page.locator('form.alerts-form .error').waitFor({ state: 'visible' });
    await expect(page.locator('form.alerts-form .error').textContent()).resolves.toContain('http(s)');
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});
