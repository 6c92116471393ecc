import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { testDynamoEndpoint } from '../support/dynamo';
import { isLoopback, listeningSockets, listeningSocketsOf } from '../support/listening-sockets';
import { NPM_START, spawnGateway, type SpawnedGateway } from '../support/spawned-gateway';
import { completionBody, startUpstream } from '../support/upstream';

/** `npm start` as a newcomer runs it: embedded DynamoDB Local, three lines printed, Ctrl-C stops it all. */

/** DynamoDB Local processes started by `parent` (other test files run their own at the same time). */
function javaChildren(parent: number): string[] {
  try {
    return execFileSync('pgrep', ['-P', String(parent), '-f', 'DynamoDBLocal.jar'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

function alive(pid: string): boolean {
  try {
    process.kill(Number(pid), 0);
    return true;
  } catch {
    return false;
  }
}

it('starts, prints the base URL, key and admin token (then a console link), serves a stream and the console, and stops its Java on SIGINT', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'itapi-start-'));
  // What `npm start` runs (scripts/local-mode.cjs), as a single process so that the signal reaches it directly.
  const { child, exited, started: ready } = startGateway({ ITAPI_DATA_DIR: dataDir });
  try {
    const { lines, stdout, stderr } = await ready;
    // The three lines scripts read come first, exactly, then the demo account's console link.
    expect(stdout).toBe(
      `ITAPI_BASE_URL=${lines.ITAPI_BASE_URL}\nITAPI_API_KEY=${lines.ITAPI_API_KEY}\nITAPI_ADMIN_TOKEN=${lines.ITAPI_ADMIN_TOKEN}\nITAPI_CONSOLE_LINK=${lines.ITAPI_CONSOLE_LINK}\n`,
    );
    expect(stderr()).toContain('the built-in catalog is served by the offline mock provider');
    expect(stderr()).toMatch(/^itapi: {3}gpt-4o -> mock:gpt-4o \(until 2027-01-14, then gpt-6\.1-sol\)$/m);
    expect(lines.ITAPI_BASE_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    expect(lines.ITAPI_API_KEY).toMatch(/^it_[0-9A-Za-z]{40}$/);
    expect(lines.ITAPI_ADMIN_TOKEN.length).toBeGreaterThan(20);
    const origin = new URL(lines.ITAPI_BASE_URL).origin;
    expect(lines.ITAPI_CONSOLE_LINK).toMatch(new RegExp(`^${origin}/console/sign-in#[A-Za-z0-9_-]{43}$`));
    const started = javaChildren(child.pid!);
    expect(started.length).toBe(1);
    // Nothing it started listens beyond loopback: the gateway's port and DynamoDB Local's, read from the kernel.
    const gatewaySockets = listeningSocketsOf(child.pid!);
    const javaSockets = listeningSocketsOf(Number(started[0]));
    expect(gatewaySockets.map((s) => s.port)).toEqual([Number(new URL(lines.ITAPI_BASE_URL).port)]);
    expect(javaSockets.length).toBeGreaterThan(0);
    expect([...gatewaySockets, ...javaSockets].filter((s) => !isLoopback(s.address))).toEqual([]);

    const client = new OpenAI({ baseURL: lines.ITAPI_BASE_URL, apiKey: lines.ITAPI_API_KEY, maxRetries: 0 });
    let text = '';
    for await (const chunk of await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello' }], stream: true })) {
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(text).toContain('Hello');

    // The printed link signs in to the demo account's console (as the sign-in page's script would post it).
    const signIn = await fetch(`${origin}/console/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
      body: new URLSearchParams({ token: new URL(lines.ITAPI_CONSOLE_LINK).hash.slice(1) }).toString(),
      redirect: 'manual',
    });
    expect(signIn.status).toBe(303);
    const cookie = signIn.headers.getSetCookie()[0].split(';')[0];
    const page = await fetch(`${origin}/console/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<code class="account-id">demo</code>');

    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(started.filter(alive)).toEqual([]);
  } finally {
    // A failed assertion above must not leave the gateway and its Java running.
    if (child.exitCode === null && child.signalCode === null) {
      for (const pid of javaChildren(child.pid!)) process.kill(Number(pid), 'SIGKILL');
      child.kill('SIGKILL');
    }
  }
}, 60_000);

it('ends its DynamoDB Local when the gateway is killed with SIGKILL (no handler runs)', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'itapi-start-kill-'));
  const { child, exited, started } = startGateway({ ITAPI_DATA_DIR: dataDir });
  await started;
  const java = javaChildren(child.pid!);
  expect(java.length).toBe(1);
  child.kill('SIGKILL');
  await exited;
  const deadline = Date.now() + 10_000;
  while (alive(java[0]) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const survivor = alive(java[0]);
  if (survivor) process.kill(Number(java[0]), 'SIGKILL');
  expect(survivor).toBe(false);
}, 90_000);

it('fails at once on a taken port, naming it, before DynamoDB Local starts and with nothing left running', async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as AddressInfo).port;
  const dataDir = mkdtempSync(join(tmpdir(), 'itapi-start-taken-'));
  try {
    const startedAt = Date.now();
    const { child, exited, started } = startGateway({ ITAPI_DATA_DIR: dataDir, PORT: String(port) });
    started.catch(() => undefined);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    expect(await exited).toBe(1);
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    expect(stderr).toContain(`port ${port} on 127.0.0.1 is already in use`);
    // DynamoDB Local never started: no process names this run's data folder (its -dbPath).
    expect(processesMentioning(dataDir)).toEqual([]);
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
  }
}, 30_000);

it("binds the test suite's DynamoDB Local to loopback only", () => {
  const port = Number(new URL(testDynamoEndpoint()).port);
  const sockets = listeningSockets().filter((s) => s.port === port);
  expect(sockets.length).toBeGreaterThan(0);
  expect(sockets.filter((s) => !isLoopback(s.address))).toEqual([]);
});

/** Command lines of running processes that contain `text`. */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(text)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // Ended while we read.
    }
  }
  return found;
}

/** Spawns what `npm start` runs, ready once it printed the four lines and the routing report that follows them on stderr. */
function startGateway(env: Record<string, string>): SpawnedGateway {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ITAPI_SECRET_') && k !== 'ITAPI_MODELS'));
  const gateway = spawnGateway(
    NPM_START,
    { ...inherited, PORT: '0', ITAPI_ADMIN_TOKEN: '', ...env },
    (lines) => ['ITAPI_BASE_URL', 'ITAPI_API_KEY', 'ITAPI_ADMIN_TOKEN', 'ITAPI_CONSOLE_LINK'].every((name) => lines[name] !== undefined),
  );
  const started = gateway.started.then(async (ready) => {
    const deadline = Date.now() + 5_000;
    while (!/ -> /.test(ready.stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return ready;
  });
  return { ...gateway, started };
}

it('serves a catalog given in ITAPI_MODELS as written, with no provider key set, and says where each model routes', async () => {
  const upstream = await startUpstream((_req, body, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody(body.model, 'answered by the local model server')));
  });
  const dir = mkdtempSync(join(tmpdir(), 'itapi-start-catalog-'));
  const catalogFile = join(dir, 'models.json');
  const route = { provider: 'openai-compatible', base_url: upstream.url, model: 'llama3.2' };
  writeFileSync(
    catalogFile,
    JSON.stringify({
      models: {
        'local-llama': { owned_by: 'me', pricing: { input_per_mtok: 0, output_per_mtok: 0 }, context_window: 8192, max_output_tokens: 2048, routes: [route] },
        'gpt-4o': {
          owned_by: 'openai',
          pricing: { input_per_mtok: 2.5, output_per_mtok: 10 },
          context_window: 128000,
          max_output_tokens: 16384,
          routes: [{ provider: 'openai-compatible', secret: 'openai', model: 'gpt-4o' }, route],
        },
      },
    }),
  );
  // A running DynamoDB with tables of this test's own: no second Java.
  const suffix = randomBytes(4).toString('hex');
  const { child, exited, started } = startGateway({
    ITAPI_DATA_DIR: dir,
    ITAPI_MODELS: catalogFile,
    ITAPI_DYNAMODB_ENDPOINT: testDynamoEndpoint(),
    ITAPI_KEYS_TABLE: `start-keys-${suffix}`,
    ITAPI_TIERS_TABLE: `start-tiers-${suffix}`,
    ITAPI_ACCOUNTS_TABLE: `start-accounts-${suffix}`,
    ITAPI_USAGE_TABLE: `start-usage-${suffix}`,
    ITAPI_HOLDS_TABLE: `start-holds-${suffix}`,
    ITAPI_SESSIONS_TABLE: `start-sessions-${suffix}`,
  });
  try {
    const { lines, stdout, stderr } = await started;
    expect(stdout.split('\n')).toEqual([
      `ITAPI_BASE_URL=${lines.ITAPI_BASE_URL}`,
      `ITAPI_API_KEY=${lines.ITAPI_API_KEY}`,
      `ITAPI_ADMIN_TOKEN=${lines.ITAPI_ADMIN_TOKEN}`,
      `ITAPI_CONSOLE_LINK=${lines.ITAPI_CONSOLE_LINK}`,
      '',
    ]);
    expect(stderr()).toContain(`serving the catalog ${catalogFile} as written`);
    expect(stderr()).toContain(`local-llama -> openai-compatible:llama3.2 at ${upstream.url}`);
    expect(stderr()).toContain(`gpt-4o -> openai-compatible:gpt-4o (ITAPI_SECRET_OPENAI is not set: this route fails), then openai-compatible:llama3.2 at ${upstream.url}`);

    const client = new OpenAI({ baseURL: lines.ITAPI_BASE_URL, apiKey: lines.ITAPI_API_KEY, maxRetries: 0 });
    const { data, response } = await client.chat.completions.create({ model: 'local-llama', messages: [{ role: 'user', content: 'Hi' }] }).withResponse();
    expect(data.choices[0].message.content).toBe('answered by the local model server');
    expect(response.headers.get('x-itapi-route')).toBe('openai-compatible:llama3.2');
    expect(upstream.requests.map((r) => r.model)).toEqual(['llama3.2']);
    // The keyless route falls through to the next, never to the mock.
    const second = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] });
    expect(second.choices[0].message.content).toBe('answered by the local model server');

    child.kill('SIGINT');
    expect(await exited).toBe(0);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await upstream.close();
  }
}, 60_000);
