import type * as zod from 'zod';

/**
 * zod, required when the first schema is built rather than at init: its own module (the
 * library's classes and first-party types) cost a cold start's require a few CPU-ms while no
 * schema is built until a request or an operator's catalog asks for one (docs/BENCHMARKS.md,
 * "Cold start"). Schema builders call it once: `const { z } = zodOnFirstUse();`.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const zodOnFirstUse = (): typeof zod => require('zod');
