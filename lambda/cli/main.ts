import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CatalogError, loadCatalog } from '../catalog';
import { checkCatalog, describeCatalogCheck } from '../catalog/check';
import { SHUTDOWN_WARNING_DAYS } from '../catalog/lifecycle';
import { apiGatewayRegion, signRequest, type AwsCredentials } from './sigv4';

/**
 * `itapi` — the admin CLI (ARCHITECTURE §8). Wraps every admin call; readable output by default,
 * `--json` for the raw answer. Exit codes: 0 ok, 1 the API (or the network) failed, 2 usage error.
 * The only secrets it ever prints are the key `keys create` returns and the one-time sign-in link
 * of `console-link`.
 */

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  fetch: typeof fetch;
}

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:8787/admin';

const HELP = `itapi — manage an itapi gateway: accounts, credits, keys, tiers, usage

Usage:
  itapi accounts create --tier TIER [--id ID] [--name NAME] [--credits USD] [--rpm N] [--tpm N]
  itapi accounts get ACCOUNT
  itapi accounts update ACCOUNT [--tier TIER] [--name NAME] [--rpm N|tier] [--tpm N|tier] [--status active|disabled]
  itapi credits add ACCOUNT --amount USD --reference REF
  itapi keys create --account ACCOUNT [--name NAME] [--models a,b] [--expires ISO|UNIX_SECONDS] [--rpm N] [--tpm N] [--spend-cap USD]
  itapi keys list ACCOUNT
  itapi keys get KEY_ID
  itapi keys update KEY_ID [--name NAME] [--status active|disabled] [--spend-cap USD|none]
  itapi keys disable KEY_ID
  itapi keys enable KEY_ID
  itapi keys revoke KEY_ID
  itapi tiers list
  itapi tiers set TIER --rpm N --tpm N [--models a,b|all] [--description TEXT]
  itapi usage ACCOUNT [--from ISO|MS] [--to ISO|MS]
  itapi console-link ACCOUNT
  itapi console-sessions revoke ACCOUNT
  itapi catalog check [--catalog FILE] [--days N] [--at YYYY-MM-DD]

Options:
  --json        print the API's JSON answer as is
  --url URL     admin API base URL (default: $ITAPI_ADMIN_URL, else ${DEFAULT_ADMIN_URL})
  -h, --help    show this help

Environment:
  ITAPI_ADMIN_URL    e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/prod/admin
  ITAPI_ADMIN_TOKEN  bearer token of a local gateway (npm start prints it)
  ITAPI_ADMIN_AUTH   token | sigv4 (default: sigv4 for *.execute-api.*.amazonaws.com, else token)
  AWS_REGION, AWS_PROFILE, …  credentials and region for SigV4 (the AWS SDK's default chain)

\`catalog check\` reads the catalog locally (--catalog, else $ITAPI_MODELS, else the built-in one) and
lists the routes within N days (default ${SHUTDOWN_WARNING_DAYS}) of their shutdown_date, as the deployed
stack's daily check does (metric RoutesNearShutdown); --at (or $ITAPI_NOW) sets the day.

Amounts are US dollars with at most 6 decimals; balances are kept in integer micro-USD.
Limits: rpm/tpm per minute for the whole account; 0 means no limit.

Exit codes: 0 ok, 1 the API answered an error (or was unreachable), 2 usage error.`;

class UsageError extends Error {}

interface Common {
  json: boolean;
  url?: string;
}

type Options = NonNullable<ParseArgsConfig['options']>;
const COMMON: Options = {
  json: { type: 'boolean' },
  url: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

interface Command {
  usage: string;
  options: Options;
  positionals: string[];
  run(ctx: Ctx, values: Record<string, string | boolean | undefined>, positionals: string[]): Promise<number>;
}

interface Ctx {
  io: CliIo;
  common: Common;
  call(method: string, path: string, body?: unknown): Promise<any>;
  out(line?: string): void;
}

const COMMANDS: Record<string, Command> = {
  'catalog check': {
    usage: 'itapi catalog check [--catalog FILE] [--days N] [--at YYYY-MM-DD]',
    options: { catalog: { type: 'string' }, days: { type: 'string' }, at: { type: 'string' } },
    positionals: [],
    async run(ctx, v) {
      const days = v.days === undefined ? SHUTDOWN_WARNING_DAYS : integer(v.days as string, '--days');
      const env: NodeJS.ProcessEnv = { ...ctx.io.env };
      if (v.catalog !== undefined) {
        env.ITAPI_MODELS = v.catalog as string;
        delete env.ITAPI_MODELS_JSON;
      }
      if (v.at !== undefined) env.ITAPI_NOW = v.at as string;
      let check;
      try {
        check = checkCatalog(loadCatalog(env), days);
      } catch (err) {
        if (err instanceof CatalogError) throw new UsageError(err.message);
        throw err;
      }
      if (ctx.common.json) {
        ctx.out(JSON.stringify(check, null, 2));
        return 0;
      }
      for (const line of describeCatalogCheck(check)) ctx.out(line);
      return 0;
    },
  },
  'accounts create': {
    usage: 'itapi accounts create --tier TIER [--id ID] [--name NAME] [--credits USD] [--rpm N] [--tpm N]',
    options: { tier: { type: 'string' }, id: { type: 'string' }, name: { type: 'string' }, credits: { type: 'string' }, rpm: { type: 'string' }, tpm: { type: 'string' } },
    positionals: [],
    async run(ctx, v) {
      const body: Record<string, unknown> = { tier: required(v.tier, '--tier') };
      if (v.id !== undefined) body.id = v.id;
      if (v.name !== undefined) body.name = v.name;
      if (v.credits !== undefined) body.credits_usd = decimal(v.credits as string, '--credits');
      if (v.rpm !== undefined) body.rpm = integer(v.rpm as string, '--rpm');
      if (v.tpm !== undefined) body.tpm = integer(v.tpm as string, '--tpm');
      return show(ctx, await ctx.call('POST', '/accounts', body), printAccount);
    },
  },
  'accounts get': {
    usage: 'itapi accounts get ACCOUNT',
    options: {},
    positionals: ['ACCOUNT'],
    async run(ctx, _v, [id]) {
      return show(ctx, await ctx.call('GET', `/accounts/${seg(id)}`), printAccount);
    },
  },
  'accounts update': {
    usage: 'itapi accounts update ACCOUNT [--tier TIER] [--name NAME] [--rpm N|tier] [--tpm N|tier] [--status active|disabled]',
    options: { tier: { type: 'string' }, name: { type: 'string' }, rpm: { type: 'string' }, tpm: { type: 'string' }, status: { type: 'string' } },
    positionals: ['ACCOUNT'],
    async run(ctx, v, [id]) {
      const body: Record<string, unknown> = {};
      if (v.tier !== undefined) body.tier = v.tier;
      if (v.name !== undefined) body.name = v.name;
      // `tier` puts a limit back to the tier's own.
      if (v.rpm !== undefined) body.rpm = v.rpm === 'tier' ? null : integer(v.rpm as string, '--rpm');
      if (v.tpm !== undefined) body.tpm = v.tpm === 'tier' ? null : integer(v.tpm as string, '--tpm');
      if (v.status !== undefined) {
        if (v.status !== 'active' && v.status !== 'disabled') throw new UsageError(`--status must be active or disabled, not '${v.status}'`);
        body.status = v.status;
      }
      if (!Object.keys(body).length) throw new UsageError('nothing to change: give --tier, --name, --rpm, --tpm or --status');
      return show(ctx, await ctx.call('PATCH', `/accounts/${seg(id)}`, body), printAccount);
    },
  },
  'credits add': {
    usage: 'itapi credits add ACCOUNT --amount USD --reference REF',
    options: { amount: { type: 'string' }, reference: { type: 'string' } },
    positionals: ['ACCOUNT'],
    async run(ctx, v, [id]) {
      const body = { amount_usd: decimal(required(v.amount, '--amount'), '--amount'), reference: required(v.reference, '--reference') };
      const answer = await ctx.call('POST', `/accounts/${seg(id)}/credits`, body);
      return show(ctx, answer, (c, a) => {
        if (a.top_up?.result === 'duplicate') c.out(`Reference '${a.top_up.reference}' was already applied; nothing added.`);
        else if (a.top_up?.owed_paid_micro_usd > 0) {
          c.out(`Added ${money(a.top_up.amount_micro_usd)} (reference '${a.top_up.reference}'): ${money(a.top_up.owed_paid_micro_usd)} paid what was owed, ${money(a.top_up.balance_added_micro_usd)} to the balance.`);
        } else if (a.top_up) c.out(`Added ${money(a.top_up.amount_micro_usd)} (reference '${a.top_up.reference}').`);
        printAccount(c, a);
      });
    },
  },
  'keys create': {
    usage: 'itapi keys create --account ACCOUNT [--name NAME] [--models a,b] [--expires ISO|UNIX_SECONDS] [--rpm N] [--tpm N] [--spend-cap USD]',
    options: { account: { type: 'string' }, name: { type: 'string' }, models: { type: 'string' }, expires: { type: 'string' }, rpm: { type: 'string' }, tpm: { type: 'string' }, 'spend-cap': { type: 'string' } },
    positionals: [],
    async run(ctx, v) {
      const body: Record<string, unknown> = { account_id: required(v.account, '--account') };
      if (v.name !== undefined) body.name = v.name;
      if (v.models !== undefined) body.models = list(v.models as string, '--models');
      if (v.expires !== undefined) body.expires_at = /^\d+$/.test(v.expires as string) ? Number(v.expires) : v.expires;
      if (v.rpm !== undefined) body.rpm = integer(v.rpm as string, '--rpm');
      if (v.tpm !== undefined) body.tpm = integer(v.tpm as string, '--tpm');
      if (v['spend-cap'] !== undefined) body.monthly_spend_cap_usd = v['spend-cap'];
      const key = await ctx.call('POST', '/keys', body);
      return show(ctx, key, (c, k) => {
        printKey(c, k);
        c.out();
        c.out(`key:        ${k.key}`);
        c.io.stderr('Store this key now: it is shown only once and cannot be recovered.\n');
      });
    },
  },
  'keys list': {
    usage: 'itapi keys list ACCOUNT',
    options: {},
    positionals: ['ACCOUNT'],
    async run(ctx, _v, [id]) {
      return show(ctx, await ctx.call('GET', `/accounts/${seg(id)}/keys`), (c, a) => {
        if (!a.data.length) return c.out('No keys.');
        table(c, ['ID', 'NAME', 'PREFIX', 'STATUS', 'LAST USED', 'SPEND 30D', 'SPEND MONTH', 'SPEND CAP', 'MODELS', 'RPM', 'TPM', 'CREATED', 'EXPIRES'], a.data.map((k: any) => [
          k.id, k.name || '-', k.prefix, k.status, k.last_used_at ? date(k.last_used_at) : 'never', money(k.spend.last_30_days_micro_usd), money(k.spend.this_month_micro_usd),
          k.monthly_spend_cap_micro_usd === null ? 'none' : money(k.monthly_spend_cap_micro_usd), k.models ? k.models.join(',') : 'tier', cap(k.rpm), cap(k.tpm), date(k.created_at), k.expires_at ? date(k.expires_at) : 'never',
        ]));
      });
    },
  },
  'keys get': {
    usage: 'itapi keys get KEY_ID',
    options: {},
    positionals: ['KEY_ID'],
    async run(ctx, _v, [id]) {
      return show(ctx, await ctx.call('GET', `/keys/${seg(id)}`), printKey);
    },
  },
  'keys update': {
    usage: 'itapi keys update KEY_ID [--name NAME] [--status active|disabled] [--spend-cap USD|none]',
    options: { name: { type: 'string' }, status: { type: 'string' }, 'spend-cap': { type: 'string' } },
    positionals: ['KEY_ID'],
    async run(ctx, v, [id]) {
      const body: Record<string, unknown> = {};
      if (v.name !== undefined) body.name = v.name;
      if (v.status !== undefined) body.status = v.status;
      if (v['spend-cap'] !== undefined) body.monthly_spend_cap_usd = v['spend-cap'] === 'none' ? null : v['spend-cap'];
      return show(ctx, await ctx.call('PATCH', `/keys/${seg(id)}`, body), printKey);
    },
  },
  'keys disable': {
    usage: 'itapi keys disable KEY_ID',
    options: {},
    positionals: ['KEY_ID'],
    async run(ctx, _v, [id]) {
      return show(ctx, await ctx.call('PATCH', `/keys/${seg(id)}`, { status: 'disabled' }), (c, k) => {
        printKey(c, k);
        c.out('Every gateway instance refuses it within 5 s (the auth cache lifetime); enable it again with: itapi keys enable ' + k.id);
      });
    },
  },
  'keys enable': {
    usage: 'itapi keys enable KEY_ID',
    options: {},
    positionals: ['KEY_ID'],
    async run(ctx, _v, [id]) {
      return show(ctx, await ctx.call('PATCH', `/keys/${seg(id)}`, { status: 'active' }), printKey);
    },
  },
  'keys revoke': {
    usage: 'itapi keys revoke KEY_ID',
    options: {},
    positionals: ['KEY_ID'],
    async run(ctx, _v, [id]) {
      return show(ctx, await ctx.call('DELETE', `/keys/${seg(id)}`), (c, k) => {
        c.out(`Revoked ${k.id} (${k.prefix}) of account ${k.account_id}.`);
        c.out('Other gateway instances stop accepting it within the auth cache lifetime (5 s).');
      });
    },
  },
  'tiers list': {
    usage: 'itapi tiers list',
    options: {},
    positionals: [],
    async run(ctx) {
      return show(ctx, await ctx.call('GET', '/tiers'), (c, a) => {
        table(c, ['ID', 'RPM', 'TPM', 'MODELS', 'DESCRIPTION'], a.data.map((t: any) => [
          t.id, limit(t.rpm), limit(t.tpm), t.models ? t.models.join(',') : 'all', t.description ?? '',
        ]));
      });
    },
  },
  'tiers set': {
    usage: 'itapi tiers set TIER --rpm N --tpm N [--models a,b|all] [--description TEXT]',
    options: { rpm: { type: 'string' }, tpm: { type: 'string' }, models: { type: 'string' }, description: { type: 'string' } },
    positionals: ['TIER'],
    async run(ctx, v, [id]) {
      const body: Record<string, unknown> = {
        rpm: integer(required(v.rpm, '--rpm'), '--rpm'),
        tpm: integer(required(v.tpm, '--tpm'), '--tpm'),
      };
      if (v.models !== undefined) body.models = v.models === 'all' ? null : list(v.models as string, '--models');
      if (v.description !== undefined) body.description = v.description;
      return show(ctx, await ctx.call('PUT', `/tiers/${seg(id)}`, body), (c, t) =>
        pairs(c, [
          ['tier', t.id],
          ['rpm', limit(t.rpm)],
          ['tpm', limit(t.tpm)],
          ['models', t.models ? t.models.join(', ') : 'all'],
          ['description', t.description ?? ''],
        ]),
      );
    },
  },
  'console-link': {
    usage: 'itapi console-link ACCOUNT',
    options: {},
    positionals: ['ACCOUNT'],
    async run(ctx, _v, [id]) {
      return show(ctx, await ctx.call('POST', `/accounts/${seg(id)}/console-links`), (c, l) => {
        // The link alone on stdout, so that `$(itapi console-link acme)` is the link.
        c.out(l.url);
        c.io.stderr(`A one-time sign-in link to the console of ${l.account_id}, valid until ${date(l.expires_at)}: send it to the account holder only.\n`);
      });
    },
  },
  'console-sessions revoke': {
    usage: 'itapi console-sessions revoke ACCOUNT',
    options: {},
    positionals: ['ACCOUNT'],
    async run(ctx, _v, [id]) {
      return show(ctx, await ctx.call('DELETE', `/accounts/${seg(id)}/console-sessions`), (c, a) => {
        c.out(`Ended ${a.revoked} console session${a.revoked === 1 ? '' : 's'} and unused sign-in links of ${a.account_id}.`);
      });
    },
  },
  usage: {
    usage: 'itapi usage ACCOUNT [--from ISO|MS] [--to ISO|MS]',
    options: { from: { type: 'string' }, to: { type: 'string' } },
    positionals: ['ACCOUNT'],
    async run(ctx, v, [id]) {
      const query = new URLSearchParams();
      if (v.from !== undefined) query.set('from', v.from as string);
      if (v.to !== undefined) query.set('to', v.to as string);
      const qs = query.size ? `?${query}` : '';
      return show(ctx, await ctx.call('GET', `/accounts/${seg(id)}/usage${qs}`), printUsage);
    },
  },
};

export async function main(argv: string[], ioIn: Partial<CliIo> = {}): Promise<number> {
  const io: CliIo = {
    stdout: ioIn.stdout ?? ((t) => void process.stdout.write(t)),
    stderr: ioIn.stderr ?? ((t) => void process.stderr.write(t)),
    env: ioIn.env ?? process.env,
    fetch: ioIn.fetch ?? ((...args) => fetch(...args)),
  };
  const allOptions: Options = Object.assign({}, COMMON, ...Object.values(COMMANDS).map((c) => c.options));
  let words: string[];
  try {
    words = parseArgs({ args: argv, options: allOptions, allowPositionals: true, strict: false }).positionals;
  } catch {
    words = argv.filter((a) => !a.startsWith('-'));
  }
  const wantsHelp = argv.includes('--help') || argv.includes('-h') || words[0] === 'help';
  const name = [`${words[0]} ${words[1]}`, words[0]].find((n) => n && COMMANDS[n]);
  if (!name) {
    if (wantsHelp || argv.length === 0) {
      (argv.length === 0 ? io.stderr : io.stdout)(`${HELP}\n`);
      return argv.length === 0 ? 2 : 0;
    }
    io.stderr(`itapi: unknown command '${words.slice(0, 2).join(' ') || argv[0]}'. Run 'itapi --help'.\n`);
    return 2;
  }
  const command = COMMANDS[name];
  if (wantsHelp) {
    io.stdout(`Usage: ${command.usage} [--json] [--url URL]\n`);
    return 0;
  }
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    const parsed = parseArgs({ args: argv, options: { ...COMMON, ...command.options }, allowPositionals: true, strict: true });
    values = parsed.values as Record<string, string | boolean | undefined>;
    positionals = parsed.positionals.slice(name.split(' ').length);
    if (positionals.length !== command.positionals.length) {
      throw new UsageError(
        command.positionals.length
          ? `expected ${command.positionals.join(' ')}${positionals.length > command.positionals.length ? `, got extra '${positionals[command.positionals.length]}'` : ''}`
          : `unexpected argument '${positionals[0]}'`,
      );
    }
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    io.stderr(`itapi: ${message}\nUsage: ${command.usage}\n`);
    return 2;
  }
  const common: Common = { json: values.json === true, url: values.url as string | undefined };
  const lines: string[] = [];
  const ctx: Ctx = {
    io,
    common,
    call: (method, path, body) => request(io, common, method, path, body),
    out: (line = '') => lines.push(line),
  };
  try {
    const code = await command.run(ctx, values, positionals);
    if (lines.length) io.stdout(`${lines.join('\n')}\n`);
    return code;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`itapi: ${err.message}\nUsage: ${command.usage}\n`);
      return 2;
    }
    if (err instanceof ApiError) {
      io.stderr(`itapi: ${err.message}\n`);
      if (common.json && err.body !== undefined) io.stdout(`${JSON.stringify(err.body, null, 2)}\n`);
      return 1;
    }
    io.stderr(`itapi: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  }
}

class ApiError extends Error {
  constructor(
    message: string,
    readonly body?: unknown,
  ) {
    super(message);
  }
}

async function request(io: CliIo, common: Common, method: string, path: string, body?: unknown): Promise<any> {
  const base = (common.url ?? io.env.ITAPI_ADMIN_URL ?? DEFAULT_ADMIN_URL).replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(base + path);
  } catch {
    throw new UsageError(`invalid admin URL '${base}'`);
  }
  const text = body === undefined ? undefined : JSON.stringify(body);
  let headers: Record<string, string> = { accept: 'application/json' };
  if (text !== undefined) headers['content-type'] = 'application/json';

  const region = apiGatewayRegion(url);
  const mode = io.env.ITAPI_ADMIN_AUTH ?? (region ? 'sigv4' : 'token');
  if (mode === 'sigv4') {
    const signingRegion = region ?? io.env.AWS_REGION ?? io.env.AWS_DEFAULT_REGION;
    if (!signingRegion) throw new UsageError('SigV4 needs a region: set AWS_REGION');
    const credentials: AwsCredentials | undefined =
      io.env !== process.env && io.env.AWS_ACCESS_KEY_ID && io.env.AWS_SECRET_ACCESS_KEY
        ? { accessKeyId: io.env.AWS_ACCESS_KEY_ID, secretAccessKey: io.env.AWS_SECRET_ACCESS_KEY, sessionToken: io.env.AWS_SESSION_TOKEN }
        : undefined;
    try {
      headers = await signRequest({ method, url, headers, body: text, region: signingRegion, credentials });
    } catch (err) {
      throw new ApiError(`cannot sign the request with AWS credentials: ${(err as Error).message}`);
    }
  } else if (mode === 'token') {
    if (io.env.ITAPI_ADMIN_TOKEN) headers.authorization = `Bearer ${io.env.ITAPI_ADMIN_TOKEN}`;
  } else {
    throw new UsageError(`ITAPI_ADMIN_AUTH must be 'token' or 'sigv4', not '${mode}'`);
  }

  let res: Response;
  try {
    res = await io.fetch(url, { method, headers, body: text });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new ApiError(`cannot reach the admin API at ${url.origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  const raw = await res.text();
  let parsed: any;
  try {
    parsed = raw ? JSON.parse(raw) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const e = parsed?.error;
    if (e?.message) {
      const detail = [e.code, e.param ? `param ${e.param}` : undefined].filter(Boolean).join(', ');
      throw new ApiError(`${e.message} (HTTP ${res.status}${detail ? `, ${detail}` : ''})`, parsed);
    }
    // API Gateway's own answers (e.g. a missing or bad signature) are `{"message": …}`.
    const message = parsed?.message ?? parsed?.Message ?? (raw.slice(0, 200) || res.statusText);
    const hint = res.status === 401 && mode === 'token' && !io.env.ITAPI_ADMIN_TOKEN ? ' — set ITAPI_ADMIN_TOKEN' : '';
    throw new ApiError(`HTTP ${res.status}: ${message}${hint}`, parsed);
  }
  if (parsed === undefined) throw new ApiError(`the admin API answered HTTP ${res.status} without JSON`);
  return parsed;
}

// --- argument helpers -------------------------------------------------------------------------

function required(value: string | boolean | undefined, flag: string): string {
  if (typeof value !== 'string' || value === '') throw new UsageError(`${flag} is required`);
  return value;
}

function integer(value: string, flag: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new UsageError(`${flag} must be a whole number, not '${value}'`);
  return Number(value);
}

/** Dollar amounts go to the API as decimal strings, so nothing is lost to floating point. */
function decimal(value: string, flag: string): string {
  if (!/^\d+(\.\d+)?$/.test(value.trim())) throw new UsageError(`${flag} must be an amount in US dollars such as 10 or 2.50, not '${value}'`);
  return value.trim();
}

function list(value: string, flag: string): string[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (!items.length) throw new UsageError(`${flag} needs at least one model id`);
  return items;
}

const seg = (id: string) => encodeURIComponent(id);

// --- output --------------------------------------------------------------------------------------

function show(ctx: Ctx, answer: any, print: (ctx: Ctx, answer: any) => void): number {
  if (ctx.common.json) ctx.out(JSON.stringify(answer, null, 2));
  else print(ctx, answer);
  return 0;
}

/** `$12.500000`, exact from integer micro-USD. */
export function money(micro: number): string {
  const sign = micro < 0 ? '-' : '';
  const abs = Math.abs(micro);
  return `${sign}$${Math.floor(abs / 1e6)}.${String(abs % 1e6).padStart(6, '0')}`;
}

const limit = (n: number) => (n ? String(n) : 'unlimited');
const cap = (n: number | null) => (n === null || n === undefined ? '-' : String(n));
const date = (seconds: number) => new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');

function pairs(ctx: Ctx, rows: Array<[string, string]>): void {
  const width = Math.max(...rows.map(([k]) => k.length)) + 1;
  for (const [k, v] of rows) ctx.out(`${`${k}:`.padEnd(width)} ${v}`);
}

function table(ctx: Ctx, head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : String(c).padEnd(widths[i]))).join('  ').trimEnd();
  ctx.out(line(head));
  for (const r of rows) ctx.out(line(r));
}

function printAccount(ctx: Ctx, a: any): void {
  const m = a.usage_this_minute;
  const custom = (v: number | null) => (v === null ? '' : ' (account)');
  pairs(ctx, [
    ['account', a.id],
    ['name', a.name],
    ['tier', a.tier],
    ['status', a.status],
    ['balance', `${money(a.balance_micro_usd)} (${a.balance_micro_usd} micro-USD)`],
    ...(a.owed_micro_usd > 0 ? ([['owed', `${money(a.owed_micro_usd)} (${a.owed_micro_usd} micro-USD; the next top-up pays it first)`]] as Array<[string, string]>) : []),
    ...(a.in_flight ? ([['held', `${money(a.held_micro_usd)} by ${a.in_flight} request${a.in_flight === 1 ? '' : 's'} in flight`]] as Array<[string, string]>) : []),
    ['rpm', `${limit(a.limits.rpm)}${custom(a.rpm)}`],
    ['tpm', `${limit(a.limits.tpm)}${custom(a.tpm)}`],
    ...(m
      ? ([
          ['this minute', `${m.requests} requests, ${m.tokens} tokens` + (m.remaining_requests !== null || m.remaining_tokens !== null
            ? `; remaining ${m.remaining_requests ?? '∞'} requests, ${m.remaining_tokens ?? '∞'} tokens`
            : '')],
        ] as Array<[string, string]>)
      : []),
    ['created', date(a.created_at)],
  ]);
}

function printKey(ctx: Ctx, k: any): void {
  pairs(ctx, [
    ['id', k.id],
    ['account', k.account_id],
    ['name', k.name || '-'],
    ['prefix', k.prefix],
    ['status', k.status],
    ['models', k.models ? k.models.join(', ') : "the tier's"],
    ['rpm', cap(k.rpm)],
    ['tpm', cap(k.tpm)],
    ['spend cap', k.monthly_spend_cap_micro_usd == null ? 'none' : `${money(k.monthly_spend_cap_micro_usd)} a month`],
    ['spend 30d', k.spend ? money(k.spend.last_30_days_micro_usd) : '-'],
    ['spend month', k.spend ? money(k.spend.this_month_micro_usd) : '-'],
    ['last used', k.last_used_at ? date(k.last_used_at) : 'never'],
    ['expires', k.expires_at ? date(k.expires_at) : 'never'],
  ]);
}

function printUsage(ctx: Ctx, u: any): void {
  ctx.out(`Usage of ${u.account_id} from ${u.from} to ${u.to}`);
  ctx.out();
  if (u.items.length) {
    table(ctx, ['TIME', 'KIND', 'ID', 'MODEL', 'STATUS', 'PROMPT', 'COMPLETION', 'AMOUNT'], u.items.map((i: any) =>
      i.kind === 'topup'
        ? [i.at, 'top-up', i.reference, '', '', '', '', `+${money(i.amount_micro_usd)}`]
        : [i.at, 'request', i.id, i.model ?? '', String(i.status ?? ''), String(i.prompt_tokens), String(i.completion_tokens), `-${money(i.cost_micro_usd)}`],
    ));
  } else {
    ctx.out('No usage in this period.');
  }
  const t = u.totals;
  ctx.out();
  pairs(ctx, [
    ['requests', `${t.requests}${t.failed_requests ? ` (${t.failed_requests} failed)` : ''}`],
    ['prompt tokens', String(t.prompt_tokens)],
    ['completion tokens', String(t.completion_tokens)],
    ['cost', `${money(t.cost_micro_usd)} (${t.cost_micro_usd} micro-USD)`],
    ['top-ups', `${t.top_ups}, ${money(t.top_up_micro_usd)}`],
  ]);
}
