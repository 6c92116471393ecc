/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  // Bundles under the OS temp dir resolve the AWS SDK (left out of them, as in Lambda) from here.
  modulePaths: ['<rootDir>/node_modules'],
  testMatch: ['**/*.test.ts'],
  // JSX (the console's pages) with Hono's runtime, as tsconfig.json says for tsc, tsx and esbuild.
  transform: {
    '^.+\\.(t|j)sx?$': [
      '@swc/jest',
      { jsc: { target: 'es2022', transform: { react: { runtime: 'automatic', importSource: 'hono/jsx' } } }, module: { type: 'commonjs' } },
    ],
  },
  transformIgnorePatterns: ['/node_modules/(?!(eventsource-parser)/)'],
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testTimeout: 30000,
  maxWorkers: 2,
  // A worker is replaced once it holds more than this after a test file. Without it each worker
  // ended the run with 1-2 GB resident and took longer than jest's 500 ms to exit (freeing it), so
  // jest force-exited it ("A worker process has failed to exit gracefully"; docs/BENCHMARKS.md,
  // twentieth pass).
  workerIdleMemoryLimit: '800MB',
};
