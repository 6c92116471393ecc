import { mkdtempSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks } from 'cdk-nag';
import { createItapiApp } from '../../bin/itapi';
import { ItapiStack, type ItapiStackProps } from '../../lib';

export const PROJECT_ROOT = path.join(__dirname, '..', '..');

/** The feature flags and settings of cdk.json, so tests synthesize what `cdk deploy` would. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as { context?: Record<string, unknown> };
  return cdkJson.context ?? {};
}

export interface SynthesizedItapi {
  outdir: string;
  stack: ItapiStack;
  assembly: CloudAssembly;
  template: Template;
  /** The raw template JSON. */
  json: { Resources: Record<string, { Type: string; Properties?: Record<string, unknown>; Metadata?: Record<string, unknown>; DeletionPolicy?: string; UpdateReplacePolicy?: string }>; Outputs?: Record<string, unknown> };
}

/**
 * Synthesizes (and bundles) an itapi stack into a fresh directory under the OS temp dir, with
 * cdk-nag's AWS Solutions pack as a validation plugin: an unacknowledged finding throws here.
 * With no `props`, the app is built by `bin/itapi.ts` itself.
 */
export function synthesizeItapi(options: { props?: ItapiStackProps; context?: Record<string, unknown> } = {}): SynthesizedItapi {
  const outdir = mkdtempSync(path.join(os.tmpdir(), 'itapi-cdk-'));
  const appProps = { outdir, context: { ...cdkJsonContext(), 'aws:cdk:enable-asset-metadata': true, 'aws:cdk:enable-path-metadata': true, ...options.context } };
  let app: App;
  let stack: ItapiStack;
  if (options.props) {
    app = new App(appProps);
    stack = new ItapiStack(app, 'Itapi', options.props);
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  } else {
    ({ app, stack } = createItapiApp(appProps));
  }
  const assembly = app.synth();
  const json = assembly.getStackByName(stack.stackName).template as SynthesizedItapi['json'];
  return { outdir, stack, assembly, template: Template.fromJSON(json), json };
}

/** Resources of one type, by logical id. */
export function resourcesOfType(json: SynthesizedItapi['json'], type: string): Array<[string, SynthesizedItapi['json']['Resources'][string]]> {
  return Object.entries(json.Resources).filter(([, r]) => r.Type === type);
}

/** The logical id of the resource at a construct path ending with `suffix`. */
export function logicalIdByPath(json: SynthesizedItapi['json'], suffix: string): string {
  const found = Object.entries(json.Resources).filter(([, r]) => String(r.Metadata?.['aws:cdk:path'] ?? '').endsWith(suffix));
  if (found.length !== 1) throw new Error(`expected one resource at …${suffix}, found ${found.length}`);
  return found[0][0];
}
