import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { main } from '../../lambda/cli/main';
import { redeemSignInLink } from '../../lambda/auth/sign-in';
import { createAdminHarness, mountWithToken, type AdminHarness } from '../support/admin-harness';

const TOKEN = 'test-admin-token-123';
let h: AdminHarness;
let server: ReturnType<typeof serve>;
let baseUrl: string;

beforeAll(async () => {
  h = await createAdminHarness();
  const root = mountWithToken(h.app, TOKEN);
  await new Promise<void>((resolve) => {
    server = serve({ fetch: root.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve());
  });
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await h.close();
});

const transcript: string[] = [];

async function itapi(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, {
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
    env: { ITAPI_ADMIN_URL: baseUrl, ITAPI_ADMIN_TOKEN: TOKEN, ...env },
  });
  if (args[0] !== 'keys' || args[1] !== 'create') transcript.push(out, err);
  return { code, out, err };
}

const KEY = /it_[0-9A-Za-z]{40}/g;

test('tiers list prints an aligned table; --json the raw answer', async () => {
  const r = await itapi(['tiers', 'list']);
  expect(r.code).toBe(0);
  const lines = r.out.trim().split('\n');
  expect(lines[0]).toMatch(/^ID\s+RPM\s+TPM\s+MODELS\s+DESCRIPTION$/);
  expect(lines.find((l) => l.startsWith('free '))).toMatch(/^free\s+10\s+20000\s+all\s+Free/);
  expect(lines.find((l) => l.startsWith('enterprise '))).toMatch(/^enterprise\s+unlimited\s+unlimited/);
  // Columns line up: TPM starts at the same offset on every line.
  const col = lines[0].indexOf('TPM');
  for (const l of lines.slice(1)) expect(l.slice(col - 2, col)).toBe('  ');

  const j = await itapi(['tiers', 'list', '--json']);
  expect(j.code).toBe(0);
  const parsed = JSON.parse(j.out);
  expect(parsed.object).toBe('list');
  expect(parsed.data.map((t: any) => t.id)).toEqual(expect.arrayContaining(['free', 'starter', 'pro', 'enterprise']));
});

test('credits add says how much paid what the account owed; accounts get shows what is owed', async () => {
  expect((await itapi(['accounts', 'create', '--tier', 'starter', '--id', 'cli-owes'])).code).toBe(0);
  // As a refund beyond the balance leaves it: nothing on the balance, $3 owed.
  await h.client.call('UpdateItem', {
    TableName: h.tables.accounts,
    Key: { account_id: { S: 'cli-owes' } },
    UpdateExpression: 'SET owed = :o',
    ExpressionAttributeValues: { ':o': { N: '3000000' } },
  });
  expect((await itapi(['accounts', 'get', 'cli-owes'])).out).toMatch(/^owed:\s+\$3\.000000 \(3000000 micro-USD; the next top-up pays it first\)$/m);
  const add = await itapi(['credits', 'add', 'cli-owes', '--amount', '5', '--reference', 'pay-1']);
  expect(add.code).toBe(0);
  expect(add.out).toContain("Added $5.000000 (reference 'pay-1'): $3.000000 paid what was owed, $2.000000 to the balance.");
  expect(add.out).toMatch(/^balance:\s+\$2\.000000/m);
  expect(add.out).not.toMatch(/^owed:/m);
});

test('the account lifecycle: create, get, credits (idempotent), keys, revoke, usage', async () => {
  const created = await itapi(['accounts', 'create', '--tier', 'starter', '--id', 'cli-acct', '--name', 'CLI Co', '--credits', '10']);
  expect(created.code).toBe(0);
  expect(created.out).toMatch(/^account:\s+cli-acct$/m);
  expect(created.out).toMatch(/^name:\s+CLI Co$/m);
  expect(created.out).toMatch(/^balance:\s+\$10\.000000 \(10000000 micro-USD\)$/m);
  expect(created.out).toMatch(/^rpm:\s+60$/m);

  const got = await itapi(['accounts', 'get', 'cli-acct', '--json']);
  expect(got.code).toBe(0);
  expect(JSON.parse(got.out)).toMatchObject({ id: 'cli-acct', tier: 'starter', balance_micro_usd: 10_000_000 });

  const add = await itapi(['credits', 'add', 'cli-acct', '--amount', '2.5', '--reference', 'inv-1']);
  expect(add.code).toBe(0);
  expect(add.out).toContain("Added $2.500000 (reference 'inv-1')");
  expect(add.out).toMatch(/^balance:\s+\$12\.500000/m);
  const again = await itapi(['credits', 'add', 'cli-acct', '--amount', '2.5', '--reference', 'inv-1']);
  expect(again.code).toBe(0);
  expect(again.out).toContain('already applied');
  expect(again.out).toMatch(/^balance:\s+\$12\.500000/m);

  const expires = new Date(Date.now() + 86_400_000).toISOString();
  const key = await itapi(['keys', 'create', '--account', 'cli-acct', '--name', 'ci', '--models', 'gpt-4o-mini,deepseek-chat', '--expires', expires, '--rpm', '5']);
  expect(key.code).toBe(0);
  const shown = key.out.match(KEY) ?? [];
  expect(shown).toHaveLength(1);
  expect(key.out).toMatch(new RegExp(`^key:\\s+${shown[0]}$`, 'm'));
  expect(key.out).toMatch(/^models:\s+gpt-4o-mini, deepseek-chat$/m);
  expect(key.err).toContain('shown only once');
  await expect(h.auth.authenticate(`Bearer ${shown[0]}`)).resolves.toMatchObject({ accountId: 'cli-acct', rpm: 5 });
  const keyId = /^id:\s+(key_\w+)$/m.exec(key.out)![1];

  const jsonKey = await itapi(['keys', 'create', '--account', 'cli-acct', '--json']);
  expect(jsonKey.code).toBe(0);
  expect(JSON.parse(jsonKey.out).key).toMatch(/^it_/);

  const list = await itapi(['keys', 'list', 'cli-acct']);
  expect(list.code).toBe(0);
  expect(list.out.split('\n')[0]).toMatch(/^ID\s+NAME\s+PREFIX\s+STATUS\s+LAST USED\s+SPEND 30D\s+SPEND MONTH\s+SPEND CAP\s+MODELS\s+RPM\s+TPM\s+CREATED\s+EXPIRES$/);
  expect(list.out).toMatch(new RegExp(`${keyId}\\s+ci\\s+it_\\w{3}…\\w{4}\\s+active\\s+never\\s+\\S+\\s+\\S+\\s+none\\s+gpt-4o-mini,deepseek-chat\\s+5\\s+-`));

  // Rename, cap, disable and enable: the same fields as the console.
  const updated = await itapi(['keys', 'update', keyId, '--name', 'ci-2', '--spend-cap', '1.10']);
  expect(updated.code).toBe(0);
  expect(updated.out).toMatch(/^name:\s+ci-2$/m);
  expect(updated.out).toMatch(/^spend cap:\s+\$1\.10\d* a month$/m);
  expect((await itapi(['keys', 'disable', keyId])).code).toBe(0);
  await expect(h.auth.authenticate(`Bearer ${shown[0]}`)).rejects.toMatchObject({ status: 401 });
  expect((await itapi(['keys', 'enable', keyId])).code).toBe(0);
  await expect(h.auth.authenticate(`Bearer ${shown[0]}`)).resolves.toMatchObject({ name: 'ci-2', spendCapMicroUsd: 1_100_000 });
  const badName = await itapi(['keys', 'update', keyId, '--name', 'a\nb']);
  expect(badName.code).not.toBe(0);
  expect(badName.err).toContain('printable');
  expect((await itapi(['keys', 'update', keyId, '--spend-cap', 'none'])).out).toMatch(/^spend cap:\s+none$/m);
  const listJson = await itapi(['keys', 'list', 'cli-acct', '--json']);
  expect(JSON.parse(listJson.out).data).toHaveLength(2);

  const revoke = await itapi(['keys', 'revoke', keyId]);
  expect(revoke.code).toBe(0);
  expect(revoke.out).toContain(`Revoked ${keyId}`);
  await expect(h.auth.authenticate(`Bearer ${shown[0]}`)).rejects.toMatchObject({ status: 401 });
  expect((await itapi(['keys', 'list', 'cli-acct'])).out).toMatch(new RegExp(`${keyId}.*revoked`));

  const usage = await itapi(['usage', 'cli-acct']);
  expect(usage.code).toBe(0);
  expect(usage.out).toMatch(/^TIME\s+KIND\s+ID/m);
  expect(usage.out).toMatch(/top-up\s+initial.*\+\$10\.000000/);
  expect(usage.out).toMatch(/top-up\s+inv-1.*\+\$2\.500000/);
  expect(usage.out).toMatch(/^top-ups:\s+2, \$12\.500000$/m);
  expect(usage.out).toMatch(/^requests:\s+0$/m);
  const usageJson = await itapi(['usage', 'cli-acct', '--from', '0', '--to', new Date(Date.now() + 1000).toISOString(), '--json']);
  expect(JSON.parse(usageJson.out).totals).toMatchObject({ top_ups: 2, top_up_micro_usd: 12_500_000 });

  // Nothing but `keys create` ever printed a key.
  expect(transcript.join('\n')).not.toMatch(KEY);
});

test('console-link prints a one-time sign-in link alone on stdout; console-sessions revoke voids it', async () => {
  await itapi(['accounts', 'create', '--tier', 'free', '--id', 'cli-console']);
  const r = await itapi(['console-link', 'cli-console']);
  expect(r.code).toBe(0);
  expect(r.out).toMatch(new RegExp(`^${baseUrl.replace('/admin', '')}/console/sign-in#[A-Za-z0-9_-]{43}\n$`));
  expect(r.err).toContain('one-time sign-in link to the console of cli-console');
  const token = new URL(r.out.trim()).hash.slice(1);
  const json = await itapi(['console-link', 'cli-console', '--json']);
  expect(JSON.parse(json.out)).toMatchObject({ object: 'console_link', account_id: 'cli-console', expires_at: expect.any(Number) });

  const revoked = await itapi(['console-sessions', 'revoke', 'cli-console']);
  expect(revoked.code).toBe(0);
  expect(revoked.out).toBe('Ended 2 console sessions and unused sign-in links of cli-console.\n');
  await expect(redeemSignInLink(h.stores.sessions, token, Date.now())).resolves.toBeUndefined();

  const missing = await itapi(['console-link', 'nobody']);
  expect(missing.code).toBe(1);
  expect(missing.err).toContain("No account with id 'nobody'");
});

test('tiers set updates a tier', async () => {
  const r = await itapi(['tiers', 'set', 'pro', '--rpm', '400', '--tpm', '600000', '--models', 'gpt-4o,gpt-4o-mini']);
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/^tier:\s+pro$/m);
  expect(r.out).toMatch(/^rpm:\s+400$/m);
  expect(r.out).toMatch(/^models:\s+gpt-4o, gpt-4o-mini$/m);
  expect(await h.stores.tiers.get('pro')).toMatchObject({ rpm: 400, tpm: 600_000, models: ['gpt-4o', 'gpt-4o-mini'] });
  const all = await itapi(['tiers', 'set', 'pro', '--rpm', '300', '--tpm', '500000', '--models', 'all', '--json']);
  expect(JSON.parse(all.out)).toMatchObject({ id: 'pro', rpm: 300, models: null });
});

test('API errors exit 1 with the message', async () => {
  const missing = await itapi(['accounts', 'get', 'no-such-account']);
  expect(missing.code).toBe(1);
  expect(missing.out).toBe('');
  expect(missing.err).toContain("No account with id 'no-such-account'");
  expect(missing.err).toContain('HTTP 404');

  const dup = await itapi(['accounts', 'create', '--tier', 'free', '--id', 'cli-dup']);
  expect(dup.code).toBe(0);
  const dup2 = await itapi(['accounts', 'create', '--tier', 'free', '--id', 'cli-dup']);
  expect(dup2.code).toBe(1);
  expect(dup2.err).toMatch(/already exists.*HTTP 409, account_exists, param id/);

  const bad = await itapi(['credits', 'add', 'cli-dup', '--amount', '1.0000001', '--reference', 'x']);
  expect(bad.code).toBe(1);
  expect(bad.err).toContain('param amount_usd');

  const badJson = await itapi(['keys', 'revoke', 'key_nope', '--json']);
  expect(badJson.code).toBe(1);
  expect(JSON.parse(badJson.out).error.code).toBe('not_found');

  const token = await itapi(['tiers', 'list'], { ITAPI_ADMIN_TOKEN: 'wrong' });
  expect(token.code).toBe(1);
  expect(token.err).toContain('ITAPI_ADMIN_TOKEN');

  const down = await itapi(['tiers', 'list'], { ITAPI_ADMIN_URL: 'http://127.0.0.1:9/admin' });
  expect(down.code).toBe(1);
  expect(down.err).toContain('cannot reach the admin API');
});

test('usage errors exit 2 without calling the API', async () => {
  const cases: string[][] = [
    ['accounts', 'create'],
    ['accounts', 'create', '--tier', 'free', '--rpm', 'ten'],
    ['accounts', 'get'],
    ['accounts', 'get', 'a', 'b'],
    ['credits', 'add', 'acct', '--amount', '5'],
    ['credits', 'add', 'acct', '--amount', 'five', '--reference', 'r'],
    ['keys', 'create', '--account', 'a', '--bogus'],
    ['tiers', 'set', 'pro', '--rpm', '1'],
    ['usage'],
    ['frobnicate'],
    [],
  ];
  for (const args of cases) {
    let called = false;
    let err = '';
    const code = await main(args, {
      stdout: () => undefined,
      stderr: (t) => (err += t),
      env: { ITAPI_ADMIN_URL: baseUrl },
      fetch: async () => {
        called = true;
        throw new Error('must not be called');
      },
    });
    expect({ args, code }).toEqual({ args, code: 2 });
    expect(called).toBe(false);
    expect(err).toMatch(/itapi|Usage/);
  }
});

test('--help prints usage and exits 0', async () => {
  const all = await itapi(['--help']);
  expect(all.code).toBe(0);
  expect(all.out).toContain('itapi keys create --account ACCOUNT');
  expect(all.out).toContain('Exit codes');
  const one = await itapi(['keys', 'create', '--help']);
  expect(one.code).toBe(0);
  expect(one.out).toMatch(/^Usage: itapi keys create/);
});

test('accounts update changes tier, limits and status; `tier` puts a limit back', async () => {
  await itapi(['accounts', 'create', '--tier', 'free', '--id', 'cli-upd']);
  const up = await itapi(['accounts', 'update', 'cli-upd', '--tier', 'pro', '--rpm', '50', '--json']);
  expect(up.code).toBe(0);
  expect(JSON.parse(up.out)).toMatchObject({ tier: 'pro', rpm: 50 });
  const back = await itapi(['accounts', 'update', 'cli-upd', '--rpm', 'tier', '--status', 'disabled', '--json']);
  expect(JSON.parse(back.out)).toMatchObject({ status: 'disabled', rpm: null, limits: { rpm: 300 } });
  const readable = await itapi(['accounts', 'update', 'cli-upd', '--status', 'active']);
  expect(readable.out).toMatch(/^status:\s+active$/m);
  expect((await itapi(['accounts', 'update', 'cli-upd'])).code).toBe(2);
  expect((await itapi(['accounts', 'update', 'cli-upd', '--status', 'paused'])).code).toBe(2);
});
