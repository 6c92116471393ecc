import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../lambda/cli/main';

/** `itapi catalog check` (issue 20, item 6): what the deployed stack's daily check counts, printed locally. */

async function itapi(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  // No admin URL or token: the check never calls the API.
  const code = await main(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), env, fetch: () => Promise.reject(new Error('no network expected')) });
  return { code, out, err };
}

const model = (route: Record<string, string>) => ({
  owned_by: 'test',
  pricing: { input_per_mtok: 1, output_per_mtok: 2 },
  context_window: 1000,
  max_output_tokens: 100,
  routes: [{ provider: 'mock', ...route }],
});

function catalogFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'itapi-check-')), 'catalog.json');
  writeFileSync(
    file,
    JSON.stringify({
      models: {
        soon: model({ model: 'soon-up', shutdown_date: '2027-01-10', successor: 'next' }),
        today: model({ model: 'today-up', shutdown_date: '2027-01-01' }),
        later: model({ model: 'later-up', shutdown_date: '2027-06-01', successor: 'next' }),
        gone: model({ model: 'gone-up', shutdown_date: '2026-12-01', successor: 'next' }),
        next: model({ model: 'next-up' }),
      },
    }),
  );
  return file;
}

describe('itapi catalog check', () => {
  it('lists the routes within 30 days of their shutdown, soonest first, and those past it', async () => {
    const { code, out, err } = await itapi(['catalog', 'check', '--catalog', catalogFile(), '--at', '2027-01-01']);
    expect({ code, err }).toEqual({ code: 0, err: '' });
    expect(out.trim().split('\n')).toEqual([
      'Catalog check on 2027-01-01: routes shutting down within 30 days',
      '  today  mock:today-up  shuts down 2027-01-01 (today), no successor: the route is dropped then',
      '  soon  mock:soon-up  shuts down 2027-01-10 (in 9 days), then served by next',
      'Routes past their shutdown:',
      '  gone  mock:gone-up  shut down 2026-12-01, served by next',
    ]);
  });

  it('reads the catalog from ITAPI_MODELS and the day from ITAPI_NOW, the window from --days, and answers JSON with --json', async () => {
    const { code, out } = await itapi(['catalog', 'check', '--days', '200', '--json'], { ITAPI_MODELS: catalogFile(), ITAPI_NOW: '2027-01-01' });
    expect(code).toBe(0);
    const check = JSON.parse(out);
    expect(check.today).toBe('2027-01-01');
    expect(check.near.map((s: { model: string; daysLeft: number }) => `${s.model}:${s.daysLeft}`)).toEqual(['today:0', 'soon:9', 'later:151']);
  });

  it('checks the built-in catalog by default: on 2026-12-05 the gpt-5 family is due on 2026-12-11', async () => {
    const { code, out } = await itapi(['catalog', 'check', '--at', '2026-12-05']);
    expect(code).toBe(0);
    expect(out).toContain('  gpt-5  openai-compatible:gpt-5  shuts down 2026-12-11 (in 6 days), then served by gpt-6.1-sol');
    expect(out).not.toContain('gpt-4o');
  });

  it('is a usage error (exit 2) for a catalog that does not load or a day that is not one', async () => {
    expect(await itapi(['catalog', 'check', '--catalog', '/nonexistent/catalog.json'])).toMatchObject({ code: 2, err: expect.stringContaining('Cannot read the model catalog') });
    expect(await itapi(['catalog', 'check', '--at', 'soon'])).toMatchObject({ code: 2, err: expect.stringContaining('ITAPI_NOW must be an ISO date') });
    expect(await itapi(['catalog', 'check', '--days', 'many'])).toMatchObject({ code: 2 });
  });
});
