#!/usr/bin/env node
'use strict';
// `npx itapi …`: runs the TypeScript CLI through tsx's CommonJS hook (tsx is a runtime dependency).
require('tsx/cjs');
const { main } = require('../lambda/cli/main.ts');

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`itapi: ${err && err.message ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
