import { build, type BuildOptions } from 'esbuild';
import { statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The chat function's bundle as CDK builds it (lib/ uses the same options): minified CommonJS
 * for Node, AWS SDK left to the runtime, the tokenizer as a separate file loaded after start-up.
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

export async function bundleChat(outdir: string): Promise<{ handlerFile: string; tokenizerFile: string; bytes: number }> {
  const handlerFile = join(outdir, 'index.js');
  const tokenizerFile = join(outdir, 'tokenizer.js');
  await build({ ...CHAT_BUNDLE_OPTIONS, entryPoints: [join(__dirname, '../lambda/entry/lambda.ts')], outfile: handlerFile });
  await build({ ...CHAT_BUNDLE_OPTIONS, sourcemap: false, entryPoints: [TOKENIZER_ENTRY], outfile: tokenizerFile });
  return { handlerFile, tokenizerFile, bytes: statSync(handlerFile).size };
}

if (require.main === module) {
  const outdir = process.argv[2] ?? join(__dirname, '../dist/chat');
  bundleChat(outdir).then(({ handlerFile, bytes }) => process.stdout.write(`${handlerFile}: ${bytes} bytes\n`));
}
