import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { synthesizeItapi } from './synth-itapi';

/** Construct path of the chat function inside `ItapiStack` (see lib/itapi-chat-function.ts). */
export const CHAT_FUNCTION_PATH = 'Gateway/Chat/Handler/Function/Resource';
export const ADMIN_FUNCTION_PATH = 'Gateway/Admin/Handler/Function/Resource';

interface TemplateJson {
  Resources: Record<string, { Type: string; Properties?: { Code?: { S3Key?: unknown } }; Metadata?: Record<string, unknown> }>;
}
interface AssetManifest {
  files: Record<string, { source: { path?: string; packaging?: string } }>;
}

/**
 * The directory CDK bundled for one function of a synthesized cloud assembly: the function's
 * `Code.S3Key` (`<hash>.zip`) names the asset, and the stack's asset manifest says where its
 * source directory lies. This is exactly what `cdk deploy` zips and uploads.
 */
export function findFunctionBundleDir(outdir: string, stackName: string, constructPathSuffix: string): string {
  const template = JSON.parse(readFileSync(path.join(outdir, `${stackName}.template.json`), 'utf8')) as TemplateJson;
  const matches = Object.values(template.Resources).filter(
    (r) => r.Type === 'AWS::Lambda::Function' && String(r.Metadata?.['aws:cdk:path'] ?? '').endsWith(`${stackName}/${constructPathSuffix}`),
  );
  if (matches.length !== 1) throw new Error(`expected one function at ${stackName}/${constructPathSuffix}, found ${matches.length}`);
  const key = matches[0].Properties?.Code?.S3Key;
  if (typeof key !== 'string' || !key.endsWith('.zip')) throw new Error(`function code is not a zip asset: ${JSON.stringify(key)}`);
  const manifest = JSON.parse(readFileSync(path.join(outdir, `${stackName}.assets.json`), 'utf8')) as AssetManifest;
  const asset = manifest.files[key.slice(0, -'.zip'.length)];
  if (!asset?.source.path) throw new Error(`asset ${key} is not in ${stackName}.assets.json`);
  const dir = path.join(outdir, asset.source.path);
  if (!existsSync(path.join(dir, 'index.js'))) throw new Error(`no index.js in ${dir}`);
  return dir;
}

export interface ChatBundle {
  /** The cloud assembly directory (under the OS temp dir). */
  outdir: string;
  /** The chat function's bundle directory (what becomes `/var/task`). */
  dir: string;
  /** `<dir>/index.js`; `require(handlerFile).handler` is the deployed handler. */
  handlerFile: string;
}

let cached: ChatBundle | undefined;

/**
 * Synthesizes the app through `bin/itapi.ts` (offline, cdk-nag on) once per process and returns
 * the chat function's bundle. Pass `context` (e.g. `{ catalogFile: 'x.json' }`) for a fresh build.
 */
export function chatFunctionBundle(context?: Record<string, unknown>): ChatBundle {
  if (cached && !context) return cached;
  const { outdir, stack } = synthesizeItapi({ context });
  const dir = findFunctionBundleDir(outdir, stack.artifactId, CHAT_FUNCTION_PATH);
  const bundle = { outdir, dir, handlerFile: path.join(dir, 'index.js') };
  if (!context) cached = bundle;
  return bundle;
}
