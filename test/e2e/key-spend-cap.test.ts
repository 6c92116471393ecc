import OpenAI from 'openai';
import { addKey, createAccount, startTestGateway, type TestGateway } from '../support/gateway';

/** A key's monthly spend cap through the gateway, with the openai client: 50 concurrent requests against a small cap. */

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
}, 60_000);
afterAll(async () => {
  await gw?.stop();
});

test('50 concurrent requests against a $0.02 cap: spend stays within the cap, the rest get 402 naming it', async () => {
  const { accountId } = await createAccount(gw, { tier: 'enterprise', creditsMicroUsd: 50_000_000 });
  const { key, record } = await addKey(gw, accountId, { tier: 'enterprise' });
  await gw.gateway.stores.keys.update(record.keyId, { spendCapMicroUsd: 20_000 });
  const client = new OpenAI({ baseURL: gw.baseUrl, apiKey: key, maxRetries: 0 });
  const outcomes = await Promise.all(
    Array.from({ length: 50 }, () =>
      client.chat.completions
        .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Tell me a long story' }], max_tokens: 200 })
        .then(
          () => 200,
          (err: { status?: number; message?: string; error?: { type?: string } }) => {
            expect(err.status).toBe(402);
            expect(err.message).toContain('$0.02');
            return 402;
          },
        ),
    ),
  );
  await gw.gateway.background.drain();
  const requests = (await gw.gateway.stores.usage.all(accountId)).filter((e) => e.kind === 'request');
  const spent = requests.reduce((sum, e) => sum - e.amountMicroUsd, 0);
  const largest = Math.max(...requests.map((e) => -e.amountMicroUsd));
  expect(outcomes.filter((s) => s === 200).length).toBe(requests.length);
  expect(outcomes.filter((s) => s === 402).length).toBeGreaterThan(0);
  expect(spent).toBeGreaterThan(0);
  expect(spent).toBeLessThanOrEqual(20_000 + largest);
  // The key item's month total is the ledger's, holds all settled.
  expect((await gw.gateway.stores.keys.getByHash(record.keyHash))?.spendUsedMicroUsd).toBe(spent);
}, 120_000);
