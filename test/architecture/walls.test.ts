import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, dirname, sep } from 'node:path';

/** The walls of docs/ARCHITECTURE.md, checked on the import statements of every runtime file. */

const ROOT = join(__dirname, '..', '..');
const LAMBDA = join(ROOT, 'lambda');

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : /\.tsx?$/.test(path) ? [path] : [];
  });
}

interface Import {
  file: string;
  from: string;
  typeOnly: boolean;
}

/** Every `import … from '…'`, `export … from '…'`, `import '…'`, `import('…')` and `require('…')` of a file. */
function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const found: Import[] = [];
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'";]*?from\s+['"]([^'"]+)['"]/gm)) {
    found.push({ file, from: m[3], typeOnly: m[2] !== undefined });
  }
  for (const m of text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) found.push({ file, from: m[1], typeOnly: false });
  for (const m of text.matchAll(/\b(?:import|require)\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push({ file, from: m[1], typeOnly: false });
  return found;
}

/** The folder under `root` a file or module path lies in; files directly under `root` share one node. */
const TOP_LEVEL = '(lambda/*.ts)';
function folderOf(root: string, path: string): string {
  const parts = relative(root, path).split(sep);
  return parts.length > 1 ? parts[0] : isDirectory(join(root, parts[0])) ? parts[0] : TOP_LEVEL;
}
const isDirectory = (path: string) => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};

/** Where a relative import lands, relative to `root` (`store/accounts`, `providers`, …), or the package name. */
function targetPath(root: string, imp: Import): string {
  if (!imp.from.startsWith('.')) return imp.from;
  return relative(root, resolve(dirname(imp.file), imp.from)).split(sep).join('/');
}
function targetFolder(root: string, imp: Import): string | undefined {
  if (!imp.from.startsWith('.')) return undefined;
  const path = resolve(dirname(imp.file), imp.from);
  return relative(root, path).startsWith('..') ? undefined : folderOf(root, path);
}

/** Folder → folder it imports → the import lines that make that edge. */
type FolderGraph = Map<string, Map<string, string[]>>;

function folderGraph(root: string, imports: Import[]): FolderGraph {
  const graph: FolderGraph = new Map();
  for (const imp of imports) {
    const from = folderOf(root, imp.file);
    const to = targetFolder(root, imp);
    if (to === undefined || to === from) continue;
    const edges = graph.get(from) ?? graph.set(from, new Map()).get(from)!;
    const lines = edges.get(to) ?? edges.set(to, []).get(to)!;
    lines.push(`${relative(root, imp.file).split(sep).join('/')} imports ${imp.from}`);
  }
  return graph;
}

/** The cycles among folders (Tarjan's groups, then the shortest cycle through each folder), each told as `a → b → a` with an import proving each step. */
function folderCycles(graph: FolderGraph): string[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const groups: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        group.push(w);
      } while (w !== v);
      if (group.length > 1) groups.push(group);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);

  // Within each group, the shortest cycle through each of its folders (breadth first), each cycle told once.
  const told = new Set<string>();
  const cycles: string[] = [];
  for (const group of groups) {
    for (const start of [...group].sort()) {
      const cameFrom = new Map<string, string>();
      const queue = [start];
      let last: string | undefined;
      while (queue.length && last === undefined) {
        const v = queue.shift()!;
        for (const w of [...(graph.get(v)?.keys() ?? [])].sort()) {
          if (!group.includes(w)) continue;
          if (w === start) {
            last = v;
            break;
          }
          if (!cameFrom.has(w)) {
            cameFrom.set(w, v);
            queue.push(w);
          }
        }
      }
      const path = [start];
      for (let v = last!; v !== start; v = cameFrom.get(v)!) path.splice(1, 0, v);
      const key = [...path].sort().join();
      if (told.has(key)) continue;
      told.add(key);
      path.push(start);
      const steps = path.slice(0, -1).map((v, i) => `  ${v} → ${path[i + 1]}: ${graph.get(v)!.get(path[i + 1])![0]}`);
      cycles.push([`cycle ${path.join(' → ')}`, ...steps].join('\n'));
    }
  }
  return cycles;
}

const area = (file: string) => folderOf(LAMBDA, file);
const all = filesUnder(LAMBDA).flatMap(importsOf);
const describeImport = (imp: Import) => `${relative(ROOT, imp.file).split(sep).join('/')} imports ${imp.from}`;

describe('no folder cycle in lambda/', () => {
  it('the folders of lambda/ import each other without a cycle', () => {
    expect(folderCycles(folderGraph(LAMBDA, all))).toEqual([]);
  });

  it('the check finds and names a cycle, through type-only, dynamic and require imports alike', () => {
    const dir = mkdtempSync(join(tmpdir(), 'itapi-walls-'));
    try {
      const write = (path: string, text: string) => {
        mkdirSync(dirname(join(dir, path)), { recursive: true });
        writeFileSync(join(dir, path), text);
      };
      write('a/one.ts', "import type { B } from '../b/two';\n");
      write('b/two.ts', "export type B = number;\nexport const c = () => import('../c');\n");
      write('c/index.ts', "const a = require('../a/one');\n");
      write('d/leaf.ts', "import { x } from '../a/one';\n");
      const graph = folderGraph(dir, filesUnder(dir).flatMap(importsOf));
      expect(folderCycles(graph)).toEqual([
        ['cycle a → b → c → a', '  a → b: a/one.ts imports ../b/two', '  b → c: b/two.ts imports ../c', '  c → a: c/index.ts imports ../a/one'].join('\n'),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const ENDPOINTS = ['chat', 'messages', 'responses', 'embeddings'];
const SDK_TYPES = /^(openai|@anthropic-ai\/sdk)(\/|$)/;

interface Wall {
  rule: string;
  /** The folders whose imports the rule reads. */
  in: (folder: string) => boolean;
  /** True for an import that breaks the rule. */
  breaks: (imp: Import, to: string | undefined, path: string) => boolean;
  /** Imports known to break it today, each removed by the work named beside it; empty it when that work lands. */
  allowed?: string[];
}

const WALLS: Wall[] = [
  {
    rule: 'core/ imports nothing but itself (no gateway folder, no package)',
    in: (f) => f === 'core',
    breaks: (_imp, to) => to !== 'core',
  },
  {
    rule: 'codecs/ import only core/, contract/, each other, and SDK types (type-only)',
    in: (f) => f === 'codecs',
    breaks: (imp, to) => (to === undefined ? !(imp.typeOnly && SDK_TYPES.test(imp.from)) : !['core', 'contract', 'codecs'].includes(to)),
  },
  {
    rule: 'store/ imports nothing of money/',
    in: (f) => f === 'store',
    breaks: (_imp, to) => to === 'money',
  },
  {
    rule: 'endpoints never import a provider’s internals (only providers/index and providers/types)',
    in: (f) => ENDPOINTS.includes(f),
    breaks: (_imp, to, path) => to === 'providers' && !['providers', 'providers/index', 'providers/types'].includes(path),
    allowed: [
      // removed by issue 18 step 4 (chat/ on the one pipeline: finish reasons from the Chat codec)
      'lambda/chat/passthrough.ts imports ../providers/openai-compatible',
    ],
  },
  {
    rule: 'providers/ never import an endpoint (chat/, messages/, responses/, embeddings/)',
    in: (f) => f === 'providers',
    breaks: (_imp, to) => to !== undefined && ENDPOINTS.includes(to),
  },
  {
    rule: 'providers/ never touch the store',
    in: (f) => f === 'providers',
    breaks: (_imp, to) => to === 'store',
  },
  {
    rule: 'contract/ imports nothing of ours',
    in: (f) => f === 'contract',
    breaks: (imp, to) => imp.from.startsWith('.') && to !== 'contract',
  },
  {
    rule: 'lambda/ never imports lib/',
    in: () => true,
    breaks: (imp, to) => imp.from.startsWith('.') && to === undefined && /^lib(\/|$)/.test(relative(ROOT, resolve(dirname(imp.file), imp.from)).split(sep).join('/')),
  },
];

describe('walls between the runtime folders', () => {
  it.each(WALLS.map((wall) => [wall.rule, wall] as const))('%s', (_rule, wall) => {
    const breaking = all
      .filter((imp) => wall.in(area(imp.file)) && wall.breaks(imp, targetFolder(LAMBDA, imp), targetPath(LAMBDA, imp)))
      .map(describeImport);
    const allowed = new Set(wall.allowed ?? []);
    expect({ rule: wall.rule, offenders: breaking.filter((line) => !allowed.has(line)) }).toEqual({ rule: wall.rule, offenders: [] });
    // An allow-list entry that no longer breaks the rule is removed here, so the list only shrinks.
    expect({ rule: wall.rule, staleAllowListEntries: [...allowed].filter((line) => !breaking.includes(line)) }).toEqual({
      rule: wall.rule,
      staleAllowListEntries: [],
    });
  });

  it.each([
    ['core/', 'core/answer.ts', '../contract/errors', false, true],
    ['core/', 'core/answer.ts', 'openai', true, true],
    ['core/', 'core/answer.ts', './prompt', false, false],
    ['codecs/', 'codecs/openai-chat.ts', '../money/cost', false, true],
    ['codecs/', 'codecs/openai-chat.ts', 'openai/resources', false, true],
    ['codecs/', 'codecs/openai-chat.ts', 'openai/resources', true, false],
    ['codecs/', 'codecs/openai-chat.ts', '../core/answer', false, false],
    ['store/', 'store/accounts.ts', '../money/sliding-window', true, true],
    ['endpoints', 'messages/create.ts', '../providers/anthropic/stream', false, true],
    ['endpoints', 'responses/stream.ts', '../providers/http', false, true],
    ['endpoints', 'chat/pipeline.ts', '../providers', false, false],
    ['endpoints', 'chat/pipeline.ts', '../providers/types', true, false],
    ['providers/ never import', 'providers/anthropic/index.ts', '../../messages/wire', true, true],
    ['providers/ never touch', 'providers/bedrock/index.ts', '../../store/keys', false, true],
    ['contract/', 'contract/usage.ts', '../core/answer', true, true],
    ['lambda/ never imports lib/', 'entry/lambda.ts', '../../lib/gateway', false, true],
  ] as const)('the wall "%s…" on lambda/%s importing %s (type-only: %s) breaks it: %s', (rule, file, from, typeOnly, breaks) => {
    const wall = WALLS.find((w) => w.rule.startsWith(rule))!;
    const imp: Import = { file: join(LAMBDA, file), from, typeOnly };
    expect(wall.in(area(imp.file)) && wall.breaks(imp, targetFolder(LAMBDA, imp), targetPath(LAMBDA, imp))).toBe(breaks);
  });

  it('only store/ speaks DynamoDB (type-only imports aside)', () => {
    const offenders = all.filter((i) => !i.typeOnly && /^@aws-sdk\/(client|lib)-dynamodb/.test(i.from) && area(i.file) !== 'store');
    expect(offenders.map(describeImport)).toEqual([]);
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
});
