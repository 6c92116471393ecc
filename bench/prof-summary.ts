// Summarises a .cpuprofile (node --cpu-prof): self time by package and the top functions.
//   npx tsx bench/prof-summary.ts file.cpuprofile [top]
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }
const file = process.argv[2];
const top = Number(process.argv[3] ?? 25);
const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };
const self = new Map<number, number>();
for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const pkg = (url: string, fn: string) => {
  if (!url) return fn.startsWith('(') ? fn : '(native/builtin)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.startsWith('node:')) return url.replace(/^node:internal\/([^/]+).*/, 'node:$1');
  return url.replace(/^file:\/\//, '').replace(/.*\/work\/main\//, '');
};
const byPkg = new Map<string, number>();
const byFn = new Map<string, number>();
let total = 0;
for (const [id, us] of self) {
  const n = byId.get(id)!;
  const p = pkg(n.callFrame.url, n.callFrame.functionName);
  total += us;
  byPkg.set(p, (byPkg.get(p) ?? 0) + us);
  const key = `${n.callFrame.functionName || '(anon)'} ${p}:${n.callFrame.lineNumber}`;
  byFn.set(key, (byFn.get(key) ?? 0) + us);
}
const show = (m: Map<string, number>, k: number) =>
  [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, k).map(([name, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${name}`).join('\n');
process.stdout.write(`total ${(total / 1000).toFixed(0)} ms sampled\n\nby package\n${show(byPkg, top)}\n\nby function\n${show(byFn, top)}\n`);
