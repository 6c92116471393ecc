import type * as zod from 'zod';

/**
 * zod, required when the first schema is built rather than at init: its module (the library's
 * classes and first-party types) cost a cold start's require a few CPU-ms while no schema is
 * needed until a request, or an operator's catalog, asks for one (docs/BENCHMARKS.md, "Cold
 * start"). Schema builders call it where they build: `const { z } = zodOnFirstUse();`.
 *
 * Every module takes zod from here, never `import { z } from 'zod'` (types only: `import type`):
 * esbuild resolves a `require` to zod's CommonJS build and an `import` to its ESM build, so mixing
 * the two puts two copies of zod in one bundle.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const zodOnFirstUse = (): typeof zod => require('zod');
