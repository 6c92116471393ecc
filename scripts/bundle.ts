import { build, type BuildOptions } from 'esbuild';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { CLIENT_BUILD_OPTIONS, CLIENT_ENTRY } from '../lambda/console/assets';
import { CL100K_FILE } from '../lambda/money/tokens';

/**
 * The chat function's bundle as CDK builds it (lib/ uses the same options, but targets node24, the
 * runtime; node20 here so that the bench and tests can run it on this Node): minified CommonJS
 * for Node, AWS SDK left to the runtime, each tokenizer as a file of its own loaded after an answer.
 */
export const CHAT_BUNDLE_OPTIONS: BuildOptions = {
  bundle: true,
  minify: true,
  sourcemap: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: ['@aws-sdk/*'],
  legalComments: 'none',
  logLevel: 'error',
};

export const TOKENIZER_ENTRY = join(__dirname, '../lambda/money/tokenizer-entry.ts');
export const CL100K_TOKENIZER_ENTRY = join(__dirname, '../lambda/money/tokenizer-cl100k-entry.ts');
export const CONSOLE_ENTRY = join(__dirname, '../lambda/console/index.tsx');

export interface ChatBundleFiles {
  handlerFile: string;
  tokenizerFile: string;
  /** cl100k_base, beside tokenizer.js (lambda/money/tokens.ts finds it there). */
  cl100kTokenizerFile: string;
  /** The console, loaded on the first `/console` request, and its browser script. */
  consoleFile: string;
  consoleScriptFile: string;
  /** Size of index.js, what every cold start loads. */
  bytes: number;
}

export async function bundleChat(outdir: string): Promise<ChatBundleFiles> {
  const handlerFile = join(outdir, 'index.js');
  const tokenizerFile = join(outdir, 'tokenizer.js');
  const cl100kTokenizerFile = join(outdir, CL100K_FILE);
  const consoleFile = join(outdir, 'console.js');
  const consoleScriptFile = join(outdir, 'console-client.js');
  await build({ ...CHAT_BUNDLE_OPTIONS, entryPoints: [join(__dirname, '../lambda/entry/lambda.ts')], outfile: handlerFile });
  await build({ ...CHAT_BUNDLE_OPTIONS, sourcemap: false, entryPoints: [TOKENIZER_ENTRY], outfile: tokenizerFile });
  await build({ ...CHAT_BUNDLE_OPTIONS, sourcemap: false, entryPoints: [CL100K_TOKENIZER_ENTRY], outfile: cl100kTokenizerFile });
  await build({ ...CHAT_BUNDLE_OPTIONS, jsx: 'automatic', jsxImportSource: 'hono/jsx', entryPoints: [CONSOLE_ENTRY], outfile: consoleFile });
  await build({ ...CLIENT_BUILD_OPTIONS, entryPoints: [CLIENT_ENTRY], outfile: consoleScriptFile });
  return { handlerFile, tokenizerFile, cl100kTokenizerFile, consoleFile, consoleScriptFile, bytes: statSync(handlerFile).size };
}

if (require.main === module) {
  const outdir = process.argv[2] ?? join(__dirname, '../dist/chat');
  bundleChat(outdir).then((files) => {
    for (const file of [files.handlerFile, files.tokenizerFile, files.cl100kTokenizerFile, files.consoleFile, files.consoleScriptFile]) {
      process.stdout.write(`${file}: ${statSync(file).size} bytes\n`);
    }
  });
}
