import { tableEnv } from '../../lambda/store/tables';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CatalogFile } from '../../lambda/catalog';
import { createStores } from '../../lambda/runtime';
import { createTestTables, testDynamoEndpoint } from '../support/dynamo';
import { startUpstream } from '../support/upstream';
import { sleep } from '../reliability/support';
import { displayPrefix, generateApiKey, hashApiKey } from '../../lambda/auth/api-key';

/**
 * A gateway process killed mid-stream (kill -9: no settlement, no cleanup) leaves its hold
 * behind; another process's sweeper settles it as abandoned once its deadline and the grace
 * have passed, and the books balance.
 */

const processes: ChildProcess[] = [];
afterAll(() => {
  for (const p of processes) p.kill('SIGKILL');
});

function startGateway(env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; baseUrl: string }> {
  // `--import tsx` rather than the tsx CLI: one process, so SIGKILL leaves no orphan behind.
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, '../support/gateway-process.ts')], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  processes.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ITAPI_BASE_URL=(\S+)/.exec(out);
      if (m) resolve({ child, baseUrl: m[1] });
    });
    child.once('exit', (code) => reject(new Error(`gateway process exited with ${code}`)));
  });
}

it('settles the hold of a gateway killed mid-stream from another process, and the books balance', async () => {
  // A provider that starts answering and then keeps the stream open.
  const upstream = await startUpstream((_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'up', choices: [{ index: 0, delta: { role: 'assistant', content: 'Hel' }, logprobs: null, finish_reason: null }] })}\n\n`);
  });
  const dir = mkdtempSync(join(tmpdir(), 'itapi-crash-'));
  const catalog: CatalogFile = {
    models: {
      m: {
        owned_by: 'test',
        pricing: { input_per_mtok: 100, output_per_mtok: 1000 },
        context_window: 100_000,
        max_output_tokens: 100,
        routes: [{ provider: 'openai-compatible', base_url: upstream.url, model: 'up' }],
      },
    },
  };
  writeFileSync(join(dir, 'catalog.json'), JSON.stringify(catalog));

  const { client, tables } = await createTestTables();
  const stores = createStores(client, tables);
  await stores.tiers.seed();
  const accountId = 'acct_crash';
  await stores.accounts.create({ id: accountId, name: 'x', tier: 'enterprise', balanceMicroUsd: 0, status: 'active', createdAtMs: Date.now(), rpm: 100, tpm: 1_000_000 });
  await stores.accounts.topUp(accountId, 1_000_000, 'initial');
  const key = generateApiKey();
  await stores.keys.create({
    keyHash: hashApiKey(key),
    keyId: 'key_crash',
    accountId,
    name: 'k',
    prefix: displayPrefix(key),
    status: 'active',
    createdAtMs: Date.now(),
    accountTier: 'enterprise',
    accountRpm: 100,
    accountTpm: 1_000_000,
  });

  const env = {
    ...process.env,
    ITAPI_DYNAMODB_ENDPOINT: testDynamoEndpoint(),
    ...tableEnv(tables),
    ITAPI_MODELS: join(dir, 'catalog.json'),
    ITAPI_MAX_REQUEST_S: '2',
    ITAPI_SWEEP_GRACE_S: '1',
    ITAPI_SWEEP_INTERVAL_S: '0.5',
  };
  const doomed = await startGateway({ ...env, ITAPI_DATA_DIR: join(dir, 'a') });
  const res = await fetch(`${doomed.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'a long story please' }], stream: true, max_tokens: 100 }),
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  expect(new TextDecoder().decode((await reader.read()).value)).toContain('Hel');
  const requestId = res.headers.get('x-request-id')!;
  doomed.child.kill('SIGKILL');
  await new Promise((resolve) => doomed.child.once('exit', resolve));
  // The connection to the dead process: cut it so that it holds nothing open.
  await reader.cancel().catch(() => undefined);
  reader.releaseLock();

  // Left behind: the hold, taken from the balance and counted on the account.
  const [hold] = await stores.holds.ofAccount(accountId);
  expect(hold.requestId).toBe(requestId);
  expect((await stores.accounts.get(accountId))!).toMatchObject({ inFlight: 1, heldMicroUsd: hold.holdMicroUsd, balanceMicroUsd: 1_000_000 - hold.holdMicroUsd });

  // Another instance; its sweeper settles the hold once deadline (2 s) and grace (1 s) have passed.
  await startGateway({ ...env, ITAPI_DATA_DIR: join(dir, 'b') });
  for (const deadline = Date.now() + 15_000; (await stores.holds.ofAccount(accountId)).length; ) {
    if (Date.now() > deadline) throw new Error('the hold was not swept');
    await sleep(200);
  }
  expect(Date.now()).toBeGreaterThanOrEqual(hold.deadlineMs + 1_000);
  const account = (await stores.accounts.get(accountId))!;
  const ledger = await stores.usage.all(accountId);
  const [item] = ledger.filter((i) => i.kind === 'request');
  expect(item).toMatchObject({ id: requestId, status: 'abandoned', amountMicroUsd: -hold.promptMicroUsd, promptTokens: hold.promptTokens });
  expect(account).toMatchObject({ inFlight: 0, heldMicroUsd: 0, balanceMicroUsd: 1_000_000 - hold.promptMicroUsd });
  expect(account.balanceMicroUsd).toBe(ledger.reduce((s, i) => s + i.amountMicroUsd, 0));
  await upstream.close();
  client.destroy();
}, 60_000);
