// A gateway in a process of its own (own caches), for tests of limits across instances and of
// instances that die. Reads the DynamoDB endpoint, table names and settings (ITAPI_MODELS,
// ITAPI_MAX_REQUEST_S, ITAPI_SWEEP_*) from the environment; prints `ITAPI_BASE_URL=...`.
import { loadCatalog, parseCatalog } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { startLocal } from '../../lambda/entry/local-server';

startLocal({
  port: 0,
  seedDemo: false,
  catalog: process.env.ITAPI_MODELS ? loadCatalog() : parseCatalog(DEFAULT_CATALOG, 'default').withMockRoutes(),
  log: { info: () => undefined, error: (event, fields) => process.stderr.write(`${JSON.stringify({ event, ...fields })}\n`) },
}).then(
  (local) => {
    process.stdout.write(`ITAPI_BASE_URL=${local.baseUrl}\n`);
    process.on('SIGTERM', () => void local.stop().then(() => process.exit(0)));
  },
  (err) => {
    process.stderr.write(`${err}\n`);
    process.exit(1);
  },
);
