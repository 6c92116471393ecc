import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONSOLE_CSS } from './styles';

/**
 * The console's two static files. The browser script is built by esbuild from `client/main.tsx`:
 * at bundle time for Lambda (a file beside the handler, named by `ITAPI_CONSOLE_SCRIPT`), or from
 * source on first use locally. Both are served from the function itself, never from a CDN.
 */

export interface ConsoleAsset {
  body: string;
  contentType: string;
  /** A content hash, put in the page's asset URLs so browsers may cache each version for good. */
  version: string;
}

export interface ConsoleAssets {
  script: ConsoleAsset;
  styles: ConsoleAsset;
  icon: ConsoleAsset;
}

/** The tab icon: a small SVG, so browsers find one instead of asking for a missing `/favicon.ico`. */
const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0969da"/><path d="M4 12V7h2v5zm0-6V4h2v2zm4 6V4h2v2h2v2h-2v4z" fill="#fff"/></svg>';

/** esbuild options of the browser script; lib/itapi-chat-function.ts and scripts/bundle.ts pass the same flags. */
export const CLIENT_ENTRY = join(__dirname, 'client', 'main.tsx');
export const CLIENT_BUILD_OPTIONS = {
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2020',
  jsx: 'automatic',
  jsxImportSource: 'hono/jsx/dom',
  legalComments: 'none',
  logLevel: 'error',
} as const;

const versionOf = (body: string) => createHash('sha256').update(body).digest('base64url').slice(0, 16);

/** Where a bundle keeps the built script: beside the console module (lib/itapi-chat-function.ts, scripts/bundle.ts). */
const BUNDLED_SCRIPT = join(__dirname, 'console-client.js');

async function clientScript(scriptFile: string | undefined): Promise<string> {
  const file = scriptFile ?? (existsSync(BUNDLED_SCRIPT) ? BUNDLED_SCRIPT : undefined);
  if (file) return readFile(file, 'utf8');
  // A name, not a literal, so that bundlers leave esbuild (a native tool) out of the console bundle.
  const esbuildModule = 'esbuild';
  const esbuild = (await import(esbuildModule)) as typeof import('esbuild');
  const out = await esbuild.build({ ...CLIENT_BUILD_OPTIONS, entryPoints: [CLIENT_ENTRY], write: false });
  return out.outputFiles[0].text;
}

let loading: Promise<ConsoleAssets> | undefined;

export function loadConsoleAssets(scriptFile?: string): Promise<ConsoleAssets> {
  loading ??= clientScript(scriptFile).then(
    (script) => ({
      script: { body: script, contentType: 'text/javascript; charset=utf-8', version: versionOf(script) },
      styles: { body: CONSOLE_CSS, contentType: 'text/css; charset=utf-8', version: versionOf(CONSOLE_CSS) },
      icon: { body: ICON_SVG, contentType: 'image/svg+xml', version: versionOf(ICON_SVG) },
    }),
    (err) => {
      loading = undefined;
      throw err;
    },
  );
  return loading;
}
