import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, dirname, sep } from 'node:path';

/** The walls of the new shape (docs/ARCHITECTURE.md): the core imports nothing of the gateway; codecs only the core and the contract. */

const LAMBDA = join(__dirname, '..', '..', 'lambda');

function importsIn(folder: string): Array<{ file: string; from: string; typeOnly: boolean }> {
  const dir = join(LAMBDA, folder);
  return readdirSync(dir).filter((f) => f.endsWith('.ts')).flatMap((name) => {
    const file = join(dir, name);
    const text = readFileSync(file, 'utf8');
    return [...text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'";]*?from\s+'([^']+)'/gm)].map((m) => ({ file, from: m[3], typeOnly: m[2] !== undefined }));
  });
}

const folderOf = (file: string, from: string) => (from.startsWith('.') ? relative(LAMBDA, resolve(dirname(file), from)).split(sep)[0] : from);

describe('walls of the canonical model and the codecs', () => {
  it('the core imports only itself', () => {
    const offenders = importsIn('core').filter((i) => folderOf(i.file, i.from) !== 'core');
    expect(offenders.map((i) => `${relative(LAMBDA, i.file)} imports ${i.from}`)).toEqual([]);
  });

  it('codecs import only the core, the contract, each other, and SDK types (type-only)', () => {
    const offenders = importsIn('codecs').filter((i) => {
      const to = folderOf(i.file, i.from);
      if (['core', 'contract', 'codecs'].includes(to)) return false;
      return !(i.typeOnly && (to.startsWith('@anthropic-ai/sdk') || to.startsWith('openai')));
    });
    expect(offenders.map((i) => `${relative(LAMBDA, i.file)} imports ${i.from}`)).toEqual([]);
  });

  it('nothing outside core/ writes SSE frame text among the new modules', () => {
    const writers = ['core', 'codecs'].flatMap((folder) =>
      readdirSync(join(LAMBDA, folder)).filter((f) => f.endsWith('.ts')).filter((f) => /data: (\$\{|\[DONE\])|\[DONE\]\\n/.test(readFileSync(join(LAMBDA, folder, f), 'utf8'))).map((f) => `${folder}/${f}`),
    );
    expect(writers).toEqual(['core/sse.ts']);
  });
});
