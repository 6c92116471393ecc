import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { countTokens, warmCl100kTokenizer, warmTokenizer } from '../../lambda/money/tokens';
import { NPM_START } from '../support/spawned-gateway';

/** `npm start` runs local mode from a bundle that scripts/local-mode.cjs builds as it starts, packages left in node_modules. */

const ROOT = join(__dirname, '..', '..');
const PROBE = join(__dirname, '..', 'support', 'local-mode-probe.ts');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { bundleLocal } = require('../../scripts/local-mode.cjs') as { bundleLocal: (entry?: string) => Promise<string> };

it("is what package.json's start script runs", () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  expect(pkg.scripts.start).toBe(`node ${relative(ROOT, NPM_START)}`);
});

it.each([
  ['as npm start runs it', async () => (await promisify(execFile)(process.execPath, [NPM_START, PROBE], { cwd: ROOT, timeout: 60_000 })).stdout],
  [
    // Where node_modules is read-only the bundle is kept in a temp folder: packages still resolve from the checkout.
    'from a folder outside the checkout',
    async () => {
      const copy = join(mkdtempSync(join(tmpdir(), 'itapi-local-test-')), 'local.cjs');
      copyFileSync(await bundleLocal(PROBE), copy);
      return (await promisify(execFile)(process.execPath, ['--enable-source-maps', copy], { cwd: tmpdir(), timeout: 60_000 })).stdout;
    },
  ],
] as const)('run %s, loads both tokenizers from node_modules, keeps each file its own folder, and names the TypeScript file in a stack trace', async (_how, run) => {
  const stdout = await run();
  const seen = JSON.parse(stdout) as { o200k: number; cl100k: number; bytes: number; clientEntry: string; stack: string };
  await warmTokenizer();
  await warmCl100kTokenizer();
  const text = 'The quick brown fox jumps over the lazy dog, twice: the quick brown fox.';
  // The real tokenizers, not the byte count they fall back to when their module cannot be loaded.
  expect(seen.bytes).toBe(Buffer.byteLength(text));
  expect(seen.o200k).toBe(countTokens(text));
  expect(seen.cl100k).toBe(countTokens(text, 'cl100k_base'));
  expect(seen.o200k).toBeLessThan(seen.bytes / 2);
  // `__dirname` is the source file's folder, not the bundle's (the console's browser script is built from there).
  expect(seen.clientEntry).toBe(join(ROOT, 'lambda', 'console', 'client', 'main.tsx'));
  expect(existsSync(seen.clientEntry)).toBe(true);
  expect(seen.stack).toContain('local-mode-probe.ts');
}, 90_000);

it('gives launches at once the same whole file, named after its contents', async () => {
  const [a, b] = await Promise.all([bundleLocal(PROBE), bundleLocal(PROBE)]);
  expect(a).toBe(b);
  expect(a).toMatch(/local-[0-9a-f]{16}\.cjs$/);
  const text = readFileSync(a, 'utf8');
  // Strict mode, as each file had it: the directive must come first.
  expect(text.startsWith('"use strict";\n')).toBe(true);
  expect(text).toContain('sourceMappingURL=data:application/json');
  await expect(promisify(execFile)(process.execPath, ['--check', a])).resolves.toBeDefined();
}, 60_000);

it('removes bundles unused for a week, and keeps the one it gives and recent ones', async () => {
  const file = await bundleLocal(PROBE);
  const dir = dirname(file);
  const weekAndADay = (Date.now() - 8 * 24 * 3600 * 1000) / 1000;
  const stale = join(dir, 'local-0123456789abcdef.cjs');
  const staleTemp = join(dir, 'local-0123456789abcdee.cjs.4242.tmp');
  const recent = join(dir, 'local-0123456789abcded.cjs');
  const notOurs = join(dir, 'notes.txt');
  for (const f of [stale, staleTemp, recent, notOurs]) writeFileSync(f, '');
  for (const f of [stale, staleTemp, notOurs]) utimesSync(f, weekAndADay, weekAndADay);
  // The bundle given is old too: giving it again keeps it (and freshens it).
  utimesSync(file, weekAndADay, weekAndADay);
  try {
    expect(await bundleLocal(PROBE)).toBe(file);
    expect([file, stale, staleTemp, recent, notOurs].map((f) => existsSync(f))).toEqual([true, false, false, true, true]);
    expect(Date.now() - statSync(file).mtimeMs).toBeLessThan(60_000);
  } finally {
    for (const f of [stale, staleTemp, recent, notOurs]) rmSync(f, { force: true });
  }
}, 60_000);
