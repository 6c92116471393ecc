import type { LocalGateway } from '../../lambda/entry/local-server';

/** Helpers that drive the console over HTTP as a browser would, without one. */

export function consoleOrigin(gw: LocalGateway): string {
  return new URL(gw.baseUrl).origin;
}

/** `POST /admin/accounts/{id}/console-links` with the gateway's admin token. */
export async function consoleLink(gw: LocalGateway, accountId: string): Promise<{ url: string; expires_at: number; token: string }> {
  const res = await fetch(`${gw.adminUrl}/accounts/${encodeURIComponent(accountId)}/console-links`, {
    method: 'POST',
    headers: { authorization: `Bearer ${gw.adminToken}` },
  });
  if (res.status !== 201) throw new Error(`console-links answered ${res.status}: ${await res.text()}`);
  const body = (await res.json()) as { url: string; expires_at: number };
  return { ...body, token: new URL(body.url).hash.slice(1) };
}

export interface ConsoleSession {
  /** `itapi_console=…`, ready for a Cookie header. */
  cookie: string;
  /** The page's CSRF token (its `<meta name="csrf-token">`). */
  csrf: string;
}

/** Posts a link's token as the sign-in page's script does (same origin); returns the raw answer. */
export function postSignIn(gw: LocalGateway, token: string, headers: Record<string, string> = { 'sec-fetch-site': 'same-origin' }): Promise<Response> {
  return fetch(`${consoleOrigin(gw)}/console/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ token }).toString(),
    redirect: 'manual',
  });
}

export function sessionCookieOf(res: Response): string {
  const cookie = res.headers.getSetCookie().find((c) => c.startsWith('itapi_console='));
  if (!cookie) throw new Error(`no session cookie in ${JSON.stringify(res.headers.getSetCookie())}`);
  return cookie.split(';')[0];
}

/** Signs in to an account's console with a fresh link and reads the page's CSRF token. */
export async function signIn(gw: LocalGateway, accountId: string): Promise<ConsoleSession> {
  const { token } = await consoleLink(gw, accountId);
  const res = await postSignIn(gw, token);
  if (res.status !== 303) throw new Error(`sign-in answered ${res.status}: ${await res.text()}`);
  const cookie = sessionCookieOf(res);
  const page = await fetch(`${consoleOrigin(gw)}/console/`, { headers: { cookie } });
  const csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(await page.text())?.[1];
  if (!csrf) throw new Error('no CSRF token in the console page');
  return { cookie, csrf };
}

/**
 * A console API call with the session's cookie; changes carry the CSRF token and
 * `Sec-Fetch-Site: same-origin` unless `headers` say otherwise (null: leave the header out).
 */
export async function consoleApi(
  gw: LocalGateway,
  session: ConsoleSession | undefined,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string | null> = {},
): Promise<{ status: number; json: any; headers: Headers; text: string }> {
  const h: Record<string, string> = { accept: 'application/json' };
  if (session) h.cookie = session.cookie;
  if (method !== 'GET' && session) {
    h['x-csrf-token'] = session.csrf;
    h['sec-fetch-site'] = 'same-origin';
  }
  if (body !== undefined) h['content-type'] = 'application/json';
  for (const [name, value] of Object.entries(headers)) {
    if (value === null) delete h[name];
    else h[name] = value;
  }
  const res = await fetch(`${consoleOrigin(gw)}/console/api/${path}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, headers: res.headers, text };
}
