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
};
