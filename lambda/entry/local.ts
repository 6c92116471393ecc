import type { Catalog, ModelEntry, RouteConfig } from '../catalog';
import { explicitCatalogSource } from '../catalog';
import { checkCatalog } from '../catalog/check';
import { providerKeyVariable } from '../secrets/provider-keys';
import { DEMO_ACCOUNT_ID, startLocal } from './local-server';

// Node 20 is supported here; the SDK's notice about its future Node versions would bury the three lines scripts read.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** `npm start`: prints the three lines scripts read, then which model routes where, then serves until Ctrl-C. */
async function main(): Promise<void> {
  const local = await startLocal();
  process.stdout.write(`ITAPI_BASE_URL=${local.baseUrl}\nITAPI_API_KEY=${local.apiKey}\nITAPI_ADMIN_TOKEN=${local.adminToken}\n`);
  // After the three lines scripts read: the demo account's console, one use within 15 minutes.
  if (local.consoleLink) process.stdout.write(`ITAPI_CONSOLE_LINK=${local.consoleLink}\n`);
  process.stderr.write(routingReport(local.catalog, local.usingMock, process.env).join('\n') + '\n');
  if (local.consoleLink) {
    process.stderr.write(
      `itapi: open ITAPI_CONSOLE_LINK in a browser for the demo account's console (it works once, within 15 minutes; another: npx itapi console-link ${DEMO_ACCOUNT_ID}).\n`,
    );
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await local.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/** One line on where the catalog comes from, then one per model: its routes in the order they are tried. */
function routingReport(catalog: Catalog, usingMock: boolean, env: NodeJS.ProcessEnv): string[] {
  const source = explicitCatalogSource(env);
  const heading = source
    ? `itapi: serving the catalog ${source} as written; models route to:`
    : usingMock
      ? 'itapi: no provider keys in the environment (ITAPI_SECRET_<NAME>), so the built-in catalog is served by the offline mock provider:'
      : 'itapi: serving the built-in catalog; models route to:';
  const until = (m: ModelEntry) => (m.shutdownDate ? ` (until ${m.shutdownDate}, then ${m.successor ?? 'no successor'})` : '');
  // The same routes `itapi catalog check` lists: those within 30 days of their provider's shutdown.
  const near = checkCatalog(catalog).near.map((s) => `itapi: note: ${s.model}'s route ${s.route} shuts down on ${s.shutdownDate}${s.successor ? `, then ${s.successor} serves it` : ''}`);
  return [heading, ...catalog.list().map((m) => `itapi:   ${m.id} -> ${m.routes.map((r) => describeRoute(r, env)).join(', then ')}${until(m)}`), ...near];
}

function describeRoute(route: RouteConfig, env: NodeJS.ProcessEnv): string {
  const where = route.base_url ? ` at ${route.base_url}` : route.region ? ` in ${route.region}` : '';
  const variable = route.secret ? providerKeyVariable(route.secret) : undefined;
  const key = variable && !env[variable] ? ` (${variable} is not set: this route fails)` : '';
  return `${route.provider}:${route.model}${where}${key}`;
}

main().catch((err) => {
  process.stderr.write(`itapi: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
