import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startLocal } from '../lambda/entry/local-server';
import { launchChromium } from '../test/support/chromium';

/**
 * `npm run screenshots`: the README's pictures of the console (docs/images/), taken in headless
 * Chromium from a local gateway: the demo account after a few dozen real requests through the
 * mock provider, with Stripe top-ups switched on (no Stripe call is made). No key is on a picture.
 */
async function main(): Promise<void> {
  const out = join(__dirname, '..', 'docs', 'images');
  const local = await startLocal({
    port: 0,
    inMemory: true,
    dataDir: mkdtempSync(join(tmpdir(), 'itapi-shots-')),
    env: {
      ITAPI_SECRET_STRIPE_SECRET_KEY: 'sk_test_screenshots',
      ITAPI_SECRET_STRIPE_WEBHOOK_SECRET: 'whsec_screenshots',
    },
    log: { info: () => undefined, error: (event, fields) => process.stderr.write(`${event} ${JSON.stringify(fields)}\n`) },
  });
  const browser = await launchChromium({ viewport: { width: 1100, height: 800 } });
  try {
    const admin = (path: string, body: unknown) =>
      fetch(`${local.adminUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${local.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await admin('/keys', { account_id: 'demo', name: 'ci', models: ['gpt-4o-mini'], rpm: 20, expires_at: '2030-01-01T00:00:00Z', monthly_spend_cap_usd: 5 });
    await admin('/keys', { account_id: 'demo', name: 'chat-app', models: ['claude-3-5-sonnet-20241022', 'gpt-4o'] });
    const origin = new URL(local.baseUrl).origin;
    const written: string[] = [];
    const client = new OpenAI({ baseURL: local.baseUrl, apiKey: local.apiKey!, maxRetries: 0 });
    const models = ['gpt-4o', 'gpt-4o-mini', 'gpt-4o-mini', 'claude-3-5-sonnet-20241022', 'deepseek-chat', 'gpt-4o-mini'];
    for (let i = 0; i < 30; i++) {
      const model = models[i % models.length];
      await client.chat.completions.create({ model, messages: [{ role: 'user', content: `Request ${i}: ${'tell me more '.repeat(1 + (i % 7) * 20)}` }] });
    }
    await local.gateway.background.drain();

    const page = await browser.context.newPage();
    await page.goto(local.consoleLink!);
    await page.waitForSelector('body[data-page="console"]');
    const today = new Date();
    const weekAgo = new Date(today.getTime() - 6 * 24 * 3600 * 1000);
    const showWeek = async () => {
      await page.fill('form[data-form="range"] input[name="from"]', weekAgo.toISOString().slice(0, 10));
      await page.click('form[data-form="range"] button[type="submit"]');
      await page.waitForSelector(`#usage-panel .usage-summary[data-from="${weekAgo.toISOString().slice(0, 10)}"]`);
      await page.waitForSelector('form[data-form="range"] button[type="submit"]:not([disabled])');
    };
    await showWeek();
    // A low-balance alert, so that the alerts panel shows one armed (its secret stays off the pictures: the page is reloaded).
    await page.fill('#alert-threshold', '2.50');
    await page.fill('#alert-webhook', 'https://example.com/hooks/itapi');
    await page.fill('#alert-email', 'billing@example.com');
    await page.click('form[data-form="alerts"] button[type="submit"]');
    await page.waitForSelector('#alert-secret:not(:empty)');
    await page.reload();
    await page.waitForSelector('body[data-page="console"]');
    await showWeek();
    // The top of the page: balance, top-up, keys, charts and the first rows of the ledger.
    await page.setViewportSize({ width: 1100, height: 1180 });
    await page.screenshot({ path: join(out, 'console.png') });
    written.push('console.png');

    await page.click('button[data-action="open-create-key"]');
    await page.fill('#create-key input[name="name"]', 'notebook');
    await page.check('#create-key input[name="models"][value="gpt-4o-mini"]');
    await page.fill('#create-key input[name="rpm"]', '30');
    await page.locator('#create-key').screenshot({ path: join(out, 'console-create-key.png') });
    written.push('console-create-key.png');
    await page.click('#create-key button[data-action="close-dialog"]');

    // Every page and dialog at a phone's width and a laptop's, the whole page each time.
    for (const [size, viewport] of [
      ['phone', { width: 390, height: 844 }],
      ['laptop', { width: 1280, height: 800 }],
    ] as const) {
      const shot = async (name: string, fullPage = true) => {
        const file = `console-${name}-${size}.png`;
        await page.screenshot({ path: join(out, file), fullPage });
        written.push(file);
      };
      await page.setViewportSize(viewport);
      await page.goto(`${origin}/console/`);
      await page.waitForSelector('body[data-page="console"]');
      await showWeek();
      await shot('overview');
      await page.locator('figure[data-metric="cost"] .day-mark').last().focus();
      await page.locator('figure[data-metric="cost"]').scrollIntoViewIfNeeded();
      await page.locator('figure[data-metric="cost"]').screenshot({ path: join(out, `console-chart-${size}.png`) });
      written.push(`console-chart-${size}.png`);
      await page.locator('section.alerts').scrollIntoViewIfNeeded();
      await page.locator('section.alerts').screenshot({ path: join(out, `console-alerts-${size}.png`) });
      written.push(`console-alerts-${size}.png`);
      // The ledger filtered by one model (the Key and Model filters and the Key column).
      // (viewport-sized: the filters at the top, the filtered rows below them)
      await page.selectOption('#ledger-model', 'gpt-4o-mini');
      await page.click('form[data-form="range"] button[type="submit"]');
      await page.waitForSelector('form[data-form="range"] button[type="submit"]:not([disabled])');
      await page.waitForLoadState('networkidle');
      await page.evaluate(() => document.querySelector('form[data-form="range"]')!.scrollIntoView({ block: 'start' }));
      await page.screenshot({ path: join(out, `console-ledger-${size}.png`) });
      written.push(`console-ledger-${size}.png`);
      await page.goto(`${origin}/console/`);
      await page.waitForSelector('body[data-page="console"]');
      await showWeek();
      await page.click('button[data-action="open-create-key"]');
      await page.fill('#create-key input[name="name"]', 'notebook');
      await shot('create-key', false);
      await page.click('#create-key button[data-action="close-dialog"]');
      await page.locator('#keys-panel button[data-action="revoke"]').first().click();
      await shot('revoke', false);
      await page.click('#revoke-key button[data-action="close-dialog"]');
      await page.goto(`${origin}/console/models`);
      await page.waitForSelector('body[data-page="models"]');
      await shot('models');
      await page.emulateMedia({ colorScheme: 'dark' });
      await shot('models-dark', false);
      await page.goto(`${origin}/console/`);
      await showWeek();
      await shot('overview-dark', false);
      await page.emulateMedia({ colorScheme: 'light' });
      const signedOut = await browser.context.browser()?.newContext({ viewport });
      const other = signedOut ? await signedOut.newPage() : await browser.context.newPage();
      await other.goto(`${origin}/console/sign-in`);
      await other.waitForSelector('[data-state="no-token"]:not([hidden])');
      await other.screenshot({ path: join(out, `console-sign-in-${size}.png`) });
      written.push(`console-sign-in-${size}.png`);
      await other.close();
    }
    process.stdout.write(written.map((f) => `${join(out, f)}\n`).join(''));
  } finally {
    await browser.close();
    await local.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
