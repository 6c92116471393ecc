#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { App, Validations, type AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ItapiStack, type ItapiCatalog } from '../lib';

/**
 * The itapi CDK app: one `ItapiStack`, checked by cdk-nag's AWS Solutions pack (a finding fails
 * synthesis). Optional context: `-c stackName=Itapi`, `-c alarmEmail=ops@example.com`,
 * `-c catalogFile=./catalog.json`, `-c memorySize=1024`, `-c corsOrigins=https://a.example,https://b.example`,
 * `-c consoleUrl=https://llm.example.com/console/`, `-c topUpMinUsd=5`, `-c topUpMaxUsd=1000`.
 * `-c apiGatewayCloudWatchRole=false` (the account's API Gateway logging role is managed elsewhere),
 * `-c apiAccessLogs=false`.
 */
export function createItapiApp(props: AppProps = {}): { app: App; stack: ItapiStack } {
  const app = new App(props);
  const ctx = (key: string): string | undefined => {
    const value: unknown = app.node.tryGetContext(key);
    return value === undefined || value === null || value === '' ? undefined : String(value);
  };
  const catalogFile = ctx('catalogFile');
  const memorySize = ctx('memorySize');
  const dollars = (key: string) => (ctx(key) === undefined ? undefined : Number(ctx(key)));
  const stack = new ItapiStack(app, ctx('stackName') ?? 'Itapi', {
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
    alarmEmail: ctx('alarmEmail'),
    catalog: catalogFile ? (JSON.parse(readFileSync(catalogFile, 'utf8')) as ItapiCatalog) : undefined,
    memorySize: memorySize ? Number(memorySize) : undefined,
    corsOrigins: ctx('corsOrigins')?.split(',').map((o) => o.trim()),
    consoleUrl: ctx('consoleUrl'),
    topUpMinUsd: dollars('topUpMinUsd'),
    topUpMaxUsd: dollars('topUpMaxUsd'),
    apiGatewayCloudWatchRole: flag(ctx('apiGatewayCloudWatchRole')),
    apiAccessLogs: flag(ctx('apiAccessLogs')),
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}

/** A boolean context value (`-c name=false`); undefined when absent, so the prop's default applies. */
function flag(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value !== 'true' && value !== 'false') throw new Error(`expected true or false, got "${value}"`);
  return value === 'true';
}

if (require.main === module) {
  createItapiApp();
}
