import { createHash } from 'node:crypto';
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
}

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

async function clientScript(scriptFile: string | undefined): Promise<string> {
  if (scriptFile) return readFile(scriptFile, 'utf8');
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
    }),
    (err) => {
      loading = undefined;
      throw err;
    },
  );
  return loading;
}
