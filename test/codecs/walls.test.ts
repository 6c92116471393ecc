import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The SSE wall of the new shape (docs/ARCHITECTURE.md); the import walls of core/ and codecs/ are in test/architecture/walls.test.ts. */

const LAMBDA = join(__dirname, '..', '..', 'lambda');

describe('SSE frame text in the canonical model and the codecs', () => {
  it('nothing outside core/ writes SSE frame text among the new modules and the Responses endpoint', () => {
    const writers = ['core', 'codecs', 'responses'].flatMap((folder) =>
      readdirSync(join(LAMBDA, folder)).filter((f) => f.endsWith('.ts')).filter((f) => /data: (\$\{|\[DONE\])|\[DONE\]\\n/.test(readFileSync(join(LAMBDA, folder, f), 'utf8'))).map((f) => `${folder}/${f}`),
    );
    expect(writers).toEqual(['core/sse.ts']);
  });
});
