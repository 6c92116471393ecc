// Run by test/e2e/local-mode.test.ts through `node scripts/local-mode.cjs <this file>`, bundled as
// `npm start` bundles local mode: prints what the bundle found at run time, as one JSON line.
import { CLIENT_ENTRY } from '../../lambda/console/assets';
import { countTokens, warmCl100kTokenizer, warmTokenizer } from '../../lambda/money/tokens';

const TEXT = 'The quick brown fox jumps over the lazy dog, twice: the quick brown fox.';

async function main(): Promise<void> {
  await warmTokenizer();
  await warmCl100kTokenizer();
  process.stdout.write(
    JSON.stringify({
      o200k: countTokens(TEXT),
      cl100k: countTokens(TEXT, 'cl100k_base'),
      bytes: Buffer.byteLength(TEXT),
      clientEntry: CLIENT_ENTRY,
      stack: new Error('where').stack?.split('\n')[1] ?? '',
    }) + '\n',
  );
}

void main();
