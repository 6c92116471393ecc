import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';

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
  // What `npm start` runs (tsx), as a single process so that the signal reaches it directly.
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, '../../lambda/entry/local.ts')], {
    env: { ...process.env, PORT: '0', ITAPI_DATA_DIR: dataDir, ITAPI_ADMIN_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    let out = '';
    const lines = await new Promise<Record<string, string>>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const found = Object.fromEntries([...out.matchAll(/^(ITAPI_[A-Z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
        if (found.ITAPI_BASE_URL && found.ITAPI_API_KEY && found.ITAPI_ADMIN_TOKEN && found.ITAPI_CONSOLE_LINK) resolve(found);
      });
      child.once('exit', (code) => reject(new Error(`npm start exited with ${code}: ${out}`)));
    });
    expect(lines.ITAPI_BASE_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    expect(lines.ITAPI_API_KEY).toMatch(/^it_[0-9A-Za-z]{40}$/);
    expect(lines.ITAPI_ADMIN_TOKEN.length).toBeGreaterThan(20);
    // The three lines scripts read come first, exactly in this order; the console link follows.
    expect(out.split('\n').slice(0, 4).map((l) => l.split('=')[0])).toEqual(['ITAPI_BASE_URL', 'ITAPI_API_KEY', 'ITAPI_ADMIN_TOKEN', 'ITAPI_CONSOLE_LINK']);
    const origin = new URL(lines.ITAPI_BASE_URL).origin;
    expect(lines.ITAPI_CONSOLE_LINK).toMatch(new RegExp(`^${origin}/console/sign-in#[A-Za-z0-9_-]{43}$`));
    const started = javaChildren(child.pid!);
    expect(started.length).toBe(1);

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
