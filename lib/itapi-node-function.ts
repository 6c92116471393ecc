import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** Repository root: the entry modules live in `lambda/entry/`. */
export const PROJECT_ROOT = path.join(__dirname, '..');

/** Entry modules bundled by the stack (paths only: lib/ never imports runtime code). */
export const ENTRY = {
  chat: path.join(PROJECT_ROOT, 'lambda', 'entry', 'lambda.ts'),
  admin: path.join(PROJECT_ROOT, 'lambda', 'entry', 'admin-lambda.ts'),
  seedTiers: path.join(PROJECT_ROOT, 'lambda', 'entry', 'seed-tiers.ts'),
  sweeper: path.join(PROJECT_ROOT, 'lambda', 'entry', 'sweeper-lambda.ts'),
  rollups: path.join(PROJECT_ROOT, 'lambda', 'entry', 'rollup-lambda.ts'),
} as const;

export interface ItapiNodeFunctionProps {
  readonly entry: string;
  readonly description: string;
  readonly memorySize: number;
  readonly timeout: Duration;
  readonly environment?: Record<string, string>;
  readonly logRetention: logs.RetentionDays;
  readonly reservedConcurrentExecutions?: number;
  readonly commandHooks?: nodejs.ICommandHooks;
  /**
   * Map stack traces through the bundle's source map at run time (`NODE_OPTIONS=--enable-source-maps`).
   * Node then parses the whole map when it loads the bundle: for the chat function that was the
   * largest part of a cold start's require (docs/BENCHMARKS.md), so it ships the map without it.
   * @default true
   */
  readonly sourceMapsAtRuntime?: boolean;
}

/**
 * A `NodejsFunction` as every itapi function is built: Node.js 24 on arm64, bundled by the local
 * esbuild (no Docker), minified with source maps, AWS SDK v3 left to the runtime, its own log group
 * and an execution role that may write only to that log group until grants add more.
 */
export class ItapiNodeFunction extends Construct {
  public readonly function: nodejs.NodejsFunction;
  public readonly logGroup: logs.LogGroup;
  public readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: ItapiNodeFunctionProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Own role instead of AWSLambdaBasicExecutionRole: writes to this function's log group only.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${props.description} (execution role)`,
    });
    this.logGroup.grantWrite(this.role);
    const lockFile = path.join(PROJECT_ROOT, 'package-lock.json');
    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry: props.entry,
      handler: 'handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      logGroup: this.logGroup,
      role: this.role,
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: existsSync(lockFile) ? lockFile : undefined,
      environment: {
        ...(props.sourceMapsAtRuntime === false ? {} : { NODE_OPTIONS: '--enable-source-maps' }),
        ...props.environment,
      },
      bundling: {
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        target: 'node24',
        format: nodejs.OutputFormat.CJS,
        externalModules: ['@aws-sdk/*'],
        forceDockerBundling: false,
        commandHooks: props.commandHooks,
      },
    });
  }
}
