import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';

/**
 * The browser for the console's tests and screenshots: the headless Chromium that ships inside the
 * `@sparticuz/chromium` npm package (no system browser needed), or the binary `ITAPI_CHROMIUM` names.
 *
 * The package unpacks fixed file names into the OS temp folder (shared by concurrent runs), so it is
 * unpacked in a child process whose TMPDIR is a fresh folder of this launch's own, removed on close.
 * Its NSS and expat libraries (the package's Amazon Linux 2023 set) come along, so nothing from the
 * machine's packages is needed beyond glibc. Its launch arguments are not used: they include
 * `--disable-web-security` and `--allow-running-insecure-content`. ARGS below is the whole list.
 */
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-domain-reliability',
  '--disable-sync',
  '--no-pings',
  '--font-render-hinting=none',
];

/** Flags that weaken the browser; a launch never carries them (tested on the running process). */
export const UNSAFE_ARGS = ['--disable-web-security', '--allow-running-insecure-content', '--disable-site-isolation-trials'];

export interface LaunchedChromium {
  context: BrowserContext;
  /** The binary that runs: inside this launch's own folder, unless ITAPI_CHROMIUM names one. */
  executablePath: string;
  /** The launch's own profile folder (Chromium's `--user-data-dir`). */
  userDataDir: string;
  close(): Promise<void>;
}

interface Unpacked {
  executablePath: string;
  env: Record<string, string>;
}

/** Unpacks the npm package's browser, fonts and libraries into `dir` (a child process, TMPDIR=dir). */
function unpackNpmChromium(dir: string): Promise<Unpacked> {
  const entry = pathToFileURL(require.resolve('@sparticuz/chromium')).href;
  const bin = join(require.resolve('@sparticuz/chromium'), '..', '..', 'bin');
  const script = `
    const { default: chromium, inflate } = await import(${JSON.stringify(entry)});
    const executablePath = await chromium.executablePath();
    await inflate(${JSON.stringify(join(bin, 'al2023.tar.br'))});
    process.stdout.write(executablePath);`;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', script],
      { env: { ...process.env, TMPDIR: dir }, encoding: 'utf8', timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`could not unpack @sparticuz/chromium into ${dir}: ${stderr || err.message}`));
        if (!stdout.startsWith(dir)) return reject(new Error(`@sparticuz/chromium unpacked outside its folder: ${stdout}`));
        // Its fonts.conf names /tmp/fonts; ours names this launch's folder.
        const fontsConf = join(dir, 'fonts.conf');
        writeFileSync(fontsConf, `<?xml version="1.0"?>\n<fontconfig><dir>${join(dir, 'fonts')}</dir><cachedir>${join(dir, 'fonts-cache')}</cachedir></fontconfig>\n`);
        const libs = join(dir, 'al2023', 'lib');
        resolve({ executablePath: stdout, env: { LD_LIBRARY_PATH: libs, FONTCONFIG_FILE: fontsConf } });
      },
    );
  });
}

/**
 * Headless Chromium driven by playwright-core, with a fresh profile; the profile (and the unpacked
 * browser) are removed on close. A missing browser is an error, never a skip.
 */
export async function launchChromium(
  options: { viewport?: { width: number; height: number }; extraArgs?: string[] } = {},
): Promise<LaunchedChromium> {
  const dir = mkdtempSync(join(tmpdir(), 'itapi-chromium-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    const override = process.env.ITAPI_CHROMIUM;
    const browser: Unpacked = override ? { executablePath: override, env: {} } : await unpackNpmChromium(mkdirBrowser(dir));
    const extraArgs = options.extraArgs ?? [];
    const unsafe = extraArgs.filter((arg) => UNSAFE_ARGS.some((flag) => arg.startsWith(flag)));
    if (unsafe.length) throw new Error(`refusing to launch Chromium with ${unsafe.join(' ')}`);
    const userDataDir = join(dir, 'profile');
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: browser.executablePath,
      headless: true,
      args: [...ARGS, ...extraArgs],
      env: { ...process.env, ...browser.env },
      acceptDownloads: true,
      viewport: options.viewport ?? { width: 1200, height: 900 },
    });
    return {
      context,
      executablePath: browser.executablePath,
      userDataDir,
      async close() {
        // The unpacked browser weighs hundreds of MB: removed even when closing fails.
        try {
          await context.close();
        } finally {
          remove();
        }
      },
    };
  } catch (err) {
    remove();
    throw err;
  }
}

function mkdirBrowser(dir: string): string {
  const browser = join(dir, 'browser');
  mkdirSync(browser);
  return browser;
}
