import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname, sep } from 'node:path';

/** The walls of ARCHITECTURE §9, checked on the import statements of every runtime file. */

const ROOT = join(__dirname, '..', '..');
const LAMBDA = join(ROOT, 'lambda');

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : path.endsWith('.ts') ? [path] : [];
  });
}

interface Import {
  file: string;
  from: string;
  typeOnly: boolean;
}

/** Every `import … from '…'`, `export … from '…'`, `import('…')` and `require('…')` of a file. */
function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const found: Import[] = [];
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'";]*?from\s+'([^']+)'/gm)) {
    found.push({ file, from: m[3], typeOnly: m[2] !== undefined });
  }
  for (const m of text.matchAll(/(?:import|require)\(\s*'([^']+)'\s*\)/g)) found.push({ file, from: m[1], typeOnly: false });
  return found;
}

/** The folder of lambda/ a relative import lands in (`store`, `entry`, …), or the package name. */
function target(imp: Import): string {
  if (!imp.from.startsWith('.')) return imp.from;
  const path = relative(LAMBDA, resolve(dirname(imp.file), imp.from));
  return path.startsWith('..') ? `../${relative(ROOT, resolve(dirname(imp.file), imp.from))}` : path.split(sep)[0];
}

const area = (file: string) => relative(LAMBDA, file).split(sep)[0];
const all = filesUnder(LAMBDA).flatMap(importsOf);
const describeImport = (imp: Import) => `${relative(ROOT, imp.file)} imports ${imp.from}`;

describe('walls between the runtime folders', () => {
  it('only store/ speaks DynamoDB (type-only imports aside)', () => {
    const offenders = all.filter((i) => !i.typeOnly && /^@aws-sdk\/(client|lib)-dynamodb/.test(i.from) && area(i.file) !== 'store');
    expect(offenders.map(describeImport)).toEqual([]);
  });

  it('lambda/ never imports lib/', () => {
    expect(all.filter((i) => target(i).startsWith('../lib')).map(describeImport)).toEqual([]);
  });

  it('only entry/ knows Lambda or Node’s HTTP server', () => {
    const runtimeSpecific = /^(hono\/aws-lambda|@hono\/aws-lambda|@hono\/node-server|node:http|node:https|node:net)$/;
    const offenders = all.filter((i) => runtimeSpecific.test(i.from) && !['entry', 'providers', 'cli', 'store', 'alerts'].includes(area(i.file)));
    // Providers call upstreams over HTTP, the store calls DynamoDB, the CLI the admin API and alerts post webhooks
    // (checking the address they connect to): none serves requests.
    expect(offenders.map(describeImport)).toEqual([]);
    const knowsLambdaGlobal = filesUnder(LAMBDA).filter((f) => area(f) !== 'entry' && /\bawslambda\b/.test(readFileSync(f, 'utf8')));
    expect(knowsLambdaGlobal.map((f) => relative(ROOT, f))).toEqual([]);
  });

  it('providers never touch the store', () => {
    expect(all.filter((i) => area(i.file) === 'providers' && target(i) === 'store').map(describeImport)).toEqual([]);
  });

  it('contract/ imports nothing of ours', () => {
    expect(all.filter((i) => area(i.file) === 'contract' && i.from.startsWith('.') && target(i) !== 'contract').map(describeImport)).toEqual([]);
  });
});
