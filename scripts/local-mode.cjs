#!/usr/bin/env node
'use strict';
// `npm start`: local mode run from one CommonJS bundle of lambda/entry/local.ts, built by esbuild as
// it starts, as Lambda runs the chat function from one bundle. Not through tsx: tsx compiles with
// esbuild's `keepNames`, which wraps every function made at run time (each closure of every
// request) in a call that sets its name; run from a bundle, local mode's work before the upstream
// call and after its first bytes is 0.16-0.27 ms shorter (docs/BENCHMARKS.md, "seventeenth pass").
// Packages stay outside the bundle (node_modules, as before); stack traces still name the
// TypeScript files and lines (an inline source map, with Node's source maps on, as tsx had them).
const { createHash } = require('node:crypto');
const { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { dirname, join } = require('node:path');

const ROOT = join(__dirname, '..');
const LOCAL_ENTRY = join(ROOT, 'lambda', 'entry', 'local.ts');

/**
 * `__dirname` in our TypeScript files names the folder of the file itself (the DynamoDB Local
 * launcher's Java source, the console's browser script): the bundle lives elsewhere, so each
 * file's own folder is written in as it is loaded.
 */
const ownFolder = {
  name: 'own-folder',
  setup(build) {
    build.onLoad({ filter: /\.tsx?$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('__dirname')) return undefined;
      return { contents: text.replace(/\b__dirname\b/g, JSON.stringify(dirname(args.path))), loader: args.path.endsWith('x') ? 'tsx' : 'ts' };
    });
  },
};

/** node_modules/.cache (the usual place for tools' caches), else a private folder in the OS temp folder. */
function cacheDir() {
  const inNodeModules = join(ROOT, 'node_modules', '.cache', 'itapi-local');
  try {
    mkdirSync(inNodeModules, { recursive: true });
    accessSync(inNodeModules, constants.W_OK);
    return inNodeModules;
  } catch {
    const inTemp = join(tmpdir(), `itapi-local-${process.getuid ? process.getuid() : 'user'}`);
    mkdirSync(inTemp, { recursive: true, mode: 0o700 });
    // A shared temp folder: load no code from a folder someone else made or can write to.
    const stat = statSync(inTemp);
    if ((process.getuid && stat.uid !== process.getuid()) || (stat.mode & 0o022) !== 0) {
      throw new Error(`${inTemp} belongs to another user or is writable by others: remove it, or make node_modules writable`);
    }
    return inTemp;
  }
}

/**
 * Bundles `entry` (a TypeScript file of this checkout) and returns the bundle's path. The file is
 * named after its contents and written whole (a temporary file renamed), so that processes starting
 * at once share it and none reads one half written.
 */
async function bundleLocal(entry = LOCAL_ENTRY) {
  const { build } = require('esbuild');
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    packages: 'external',
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: 'inline',
    sourcesContent: false,
    write: false,
    outfile: 'local.cjs',
    plugins: [ownFolder],
    // Packages resolve from this checkout wherever the bundle lies (a temp folder when node_modules
    // is read-only): the module's `require` is replaced by one made for the checkout's package.json,
    // and `import()` of a name known only at run time (the tokenizers) is made a `require` too.
    supported: { 'dynamic-import': false },
    // "use strict" first: the banner would otherwise push esbuild's own out of the directive's place.
    banner: { js: `"use strict";\nrequire = require('node:module').createRequire(${JSON.stringify(join(ROOT, 'package.json'))});` },
    logLevel: 'error',
  });
  const code = result.outputFiles[0].contents;
  const dir = cacheDir();
  const file = join(dir, `local-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.cjs`);
  if (existsSync(file)) {
    // In use again: kept fresh, so that pruning (below) leaves it.
    const now = new Date();
    utimesSync(file, now, now);
  } else {
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, code);
    renameSync(temp, file);
  }
  prune(dir, file);
  return file;
}

/** Bundles of code since changed, and files of builds that died half-way: removed after a week unused. */
const PRUNE_AFTER_MS = 7 * 24 * 3600 * 1000;

function prune(dir, keep) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (path === keep || !/^local-[0-9a-f]{16}\.cjs(\.\d+\.tmp)?$/.test(name)) continue;
    try {
      if (Date.now() - statSync(path).mtimeMs > PRUNE_AFTER_MS) unlinkSync(path);
    } catch {
      // Gone already (another start pruned it), or not ours to remove: left as it is.
    }
  }
}

module.exports = { bundleLocal, LOCAL_ENTRY };

// `node scripts/local-mode.cjs [entry]`: another TypeScript entry runs the same way (the tests' probe).
if (require.main === module) {
  bundleLocal(process.argv[2] ? require('node:path').resolve(process.argv[2]) : LOCAL_ENTRY).then(
    (file) => {
      process.setSourceMapsEnabled(true);
      require(file);
    },
    (err) => {
      process.stderr.write(`itapi: could not build local mode: ${err && err.message ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
