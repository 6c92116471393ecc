import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { bedrockGrants, validateCatalog, type ItapiCatalog } from './itapi-catalog';
import { DEFAULT_METRICS_NAMESPACE } from './itapi-metrics';
import { acknowledgeNagRule } from './itapi-nag';
import { ENTRY, ItapiNodeFunction, PROJECT_ROOT } from './itapi-node-function';
import type { ItapiTables } from './itapi-tables';

/** Where the catalog lands in the deployed bundle (`/var/task` is the unpacked asset). */
export const CATALOG_FILE_NAME = 'catalog.json';
export const CATALOG_RUNTIME_PATH = `/var/task/${CATALOG_FILE_NAME}`;

export interface ItapiChatFunctionProps {
  readonly tables: ItapiTables;
  /** The provider-keys secret (JSON object, name → upstream key). */
  readonly providerSecret: secretsmanager.ISecret;
  /**
   * Model catalog (ARCHITECTURE §8), shipped as `catalog.json` inside the bundle, never in an
   * environment variable (4 KB limit). Bedrock routes also scope the function's Bedrock grant.
   * @default - the runtime's built-in catalog; no Bedrock permissions
   */
  readonly catalog?: ItapiCatalog;
  /** @default 512 */
  readonly memorySize?: number;
  /**
   * Longest answer a client can stream.
   * @default Duration.minutes(15)
   */
  readonly timeout?: Duration;
  /** @default - unreserved (shares the account's concurrency) */
  readonly reservedConcurrency?: number;
  /**
   * Origins allowed to call the Function URL from a browser.
   * @default - no CORS: browsers cannot call the gateway cross-origin
   */
  readonly corsOrigins?: string[];
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** @default 'Itapi' */
  readonly metricsNamespace?: string;
  /** Where settlements that keep failing are queued (the sweeper function applies them). @default - none: their holds are swept as abandoned */
  readonly settlementQueue?: sqs.IQueue;
  /** Where fired low-balance alerts go (the sweeper function delivers them). @default - none: alerts are delivered in-process */
  readonly alertQueue?: sqs.IQueue;
  /**
   * Smallest and largest Stripe top-up the console offers, in US dollars (whole cents).
   * @default 5 and 1000
   */
  readonly topUpMinUsd?: number;
  readonly topUpMaxUsd?: number;
  /**
   * Days a response stored by `POST /v1/responses` (`store: true`, the default) is kept before
   * its TTL removes it.
   * @default 30
   */
  readonly responsesTtlDays?: number;
}

/** Time left after a request's deadline for its settlement (retries included) before Lambda's timeout. */
export const SETTLEMENT_MARGIN = Duration.seconds(30);

/**
 * The chat function (the streaming Hono app) and its public Function URL: invoke mode
 * `RESPONSE_STREAM`, auth `NONE` because the gateway checks its own `it_…` keys in code.
 */
export class ItapiChatFunction extends Construct {
  public readonly function: lambda.Function;
  public readonly logGroup: logs.LogGroup;
  public readonly functionUrl: lambda.FunctionUrl;
  /** `<function url>v1`, the base URL OpenAI clients use. */
  public readonly baseUrl: string;
  /** `<function url>console/`, the account holders' console. */
  public readonly consoleUrl: string;

  constructor(scope: Construct, id: string, props: ItapiChatFunctionProps) {
    super(scope, id);
    const timeout = props.timeout ?? Duration.minutes(15);
    if (timeout.toSeconds() > 900) throw new Error('chat timeout: Lambda allows at most 15 minutes');
    if (timeout.toSeconds() <= 2 * SETTLEMENT_MARGIN.toSeconds()) throw new Error(`chat timeout: at least ${2 * SETTLEMENT_MARGIN.toSeconds() + 1} s (requests end ${SETTLEMENT_MARGIN.toSeconds()} s before it)`);
    const memorySize = props.memorySize ?? 512;
    if (!Number.isInteger(memorySize) || memorySize < 128 || memorySize > 10_240) {
      throw new Error(`memorySize: ${memorySize} is outside Lambda's 128–10240 MB`);
    }
    if (props.catalog) validateCatalog(props.catalog);
    if (props.responsesTtlDays !== undefined && (!Number.isInteger(props.responsesTtlDays) || props.responsesTtlDays < 1)) {
      throw new Error(`responsesTtlDays: expected a positive whole number of days, got ${props.responsesTtlDays}`);
    }

    const environment: Record<string, string> = {
      ...props.tables.environment(),
      // A secret imported by name has only a partial ARN, which GetSecretValue may not resolve: use the name then.
      ITAPI_PROVIDER_SECRET_ID: props.providerSecret.secretFullArn ?? props.providerSecret.secretName,
      ITAPI_METRICS_NAMESPACE: props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE,
    };
    if (props.catalog) environment.ITAPI_MODELS = CATALOG_RUNTIME_PATH;
    // A request ends (a stream with a final error event) early enough for its settlement to be written.
    environment.ITAPI_MAX_REQUEST_S = String(timeout.toSeconds() - SETTLEMENT_MARGIN.toSeconds());
    if (props.settlementQueue) environment.ITAPI_SETTLEMENT_QUEUE_URL = props.settlementQueue.queueUrl;
    if (props.alertQueue) environment.ITAPI_ALERT_QUEUE_URL = props.alertQueue.queueUrl;
    environment.ITAPI_TOKENIZER_MODULE = TOKENIZER_RUNTIME_PATH;
    environment.ITAPI_CONSOLE_MODULE = CONSOLE_RUNTIME_PATH;
    environment.ITAPI_CONSOLE_SCRIPT = CONSOLE_SCRIPT_RUNTIME_PATH;
    const topUpMin = props.topUpMinUsd ?? 5;
    const topUpMax = props.topUpMaxUsd ?? 1000;
    for (const [name, value] of [
      ['topUpMinUsd', topUpMin],
      ['topUpMaxUsd', topUpMax],
    ] as const) {
      if (!Number.isFinite(value) || Math.round(value * 100) !== value * 100 || value < 0.5) {
        throw new Error(`${name}: expected whole cents of at least 0.50 US dollars (Stripe's minimum), got ${value}`);
      }
    }
    if (topUpMax < topUpMin) throw new Error(`topUpMaxUsd (${topUpMax}) is below topUpMinUsd (${topUpMin})`);
    if (props.topUpMinUsd !== undefined) environment.ITAPI_TOP_UP_MIN_USD = String(topUpMin);
    if (props.topUpMaxUsd !== undefined) environment.ITAPI_TOP_UP_MAX_USD = String(topUpMax);
    environment.ITAPI_RESPONSES_TTL_DAYS = String(props.responsesTtlDays ?? 30);
    // CORS in one place: the app answers preflights and sets the headers of real answers, behind
    // the Function URL (no Cors of its own) and the REST API (no preflight of its own) alike.
    if (props.corsOrigins?.length) environment.ITAPI_CORS_ORIGINS = props.corsOrigins.join(',');

    const built = new ItapiNodeFunction(this, 'Handler', {
      entry: ENTRY.chat,
      description: 'itapi: OpenAI-compatible chat gateway (streaming)',
      memorySize,
      timeout,
      environment,
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      reservedConcurrentExecutions: props.reservedConcurrency,
      commandHooks: combineHooks(combineHooks(tokenizerFileHooks(), consoleFileHooks()), props.catalog ? catalogFileHooks(props.catalog) : undefined),
      // index.js.map ships beside the bundle (map a logged stack with it), but Node does not parse it at every cold start.
      sourceMapsAtRuntime: false,
    });
    this.function = built.function;
    this.logGroup = built.logGroup;

    props.tables.grantGatewayAccess(this.function);
    props.tables.grantResponsesAccess(this.function);
    props.tables.grantConsoleAccess(this.function);
    props.providerSecret.grantRead(this.function);
    props.settlementQueue?.grantSendMessages(this.function);
    props.alertQueue?.grantSendMessages(this.function);
    if (props.catalog) grantCatalogBedrock(this.function, built.role, props.catalog);

    this.functionUrl = this.function.addFunctionUrl({
      authType: lambda.FunctionUrlAuthType.NONE,
      invokeMode: lambda.InvokeMode.RESPONSE_STREAM,
    });
    this.baseUrl = `${this.functionUrl.url}v1`;
    this.consoleUrl = `${this.functionUrl.url}console/`;
  }
}

const BEDROCK_INVOKE_ACTIONS = ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'];

/**
 * The chat function may invoke exactly the catalog's Bedrock routes (Converse and ConverseStream
 * authorize as InvokeModel and InvokeModelWithResponseStream); models behind an inference profile
 * only through that profile (`bedrock:InferenceProfileArn`), in whichever Region it routes to.
 */
function grantCatalogBedrock(fn: lambda.Function, role: iam.Role, catalog: ItapiCatalog): void {
  const grants = bedrockGrants(fn, catalog);
  if (grants.direct.length === 0) return;
  fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'InvokeCatalogBedrockModels', actions: BEDROCK_INVOKE_ACTIONS, resources: grants.direct }));
  if (grants.throughProfiles.profiles.length === 0) return;
  fn.addToRolePolicy(
    new iam.PolicyStatement({
      sid: 'InvokeModelsThroughCatalogProfiles',
      actions: BEDROCK_INVOKE_ACTIONS,
      resources: grants.throughProfiles.resources,
      conditions: { StringEquals: { 'bedrock:InferenceProfileArn': grants.throughProfiles.profiles } },
    }),
  );
  // cdk-nag prints the partition and account as literals when the stack knows them, else as pseudo parameters.
  const stack = Stack.of(fn);
  const partition = Token.isUnresolved(stack.partition) ? '<AWS::Partition>' : stack.partition;
  const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
  const onlyThroughProfile = 'granted only on condition bedrock:InferenceProfileArn = a profile of the catalog, so it is reachable through that profile and never directly';
  for (const model of grants.crossRegionModels) {
    acknowledgeNagRule(
      role,
      `AwsSolutions-IAM5[Resource::arn:${partition}:bedrock:*::foundation-model/${model}]`,
      `A cross-Region inference profile may serve ${model} from any destination Region of its geography: this one model is ${onlyThroughProfile}.`,
    );
  }
  if (grants.anyModelThroughApplicationProfiles) {
    for (const resource of [`arn:${partition}:bedrock:*::foundation-model/*`, `arn:${partition}:bedrock:::foundation-model/*`, `arn:${partition}:bedrock:*:${account}:inference-profile/*`]) {
      acknowledgeNagRule(
        role,
        `AwsSolutions-IAM5[Resource::${resource}]`,
        `An application inference profile ARN does not say which model or system profile it wraps; whatever it wraps is ${onlyThroughProfile}.`,
      );
    }
  }
}

/** The o200k tokenizer, bundled as a file of its own beside index.js and loaded after the first answer (cl100k_base beside it, as tokenizer-cl100k.js). */
export const TOKENIZER_RUNTIME_PATH = '/var/task/tokenizer.js';

function tokenizerFileHooks(): nodejs.ICommandHooks {
  // The package's bin: a JS shim or, once its install script ran, the native binary; both run as they are.
  const esbuild = path.join(PROJECT_ROOT, 'node_modules', '.bin', 'esbuild');
  const files: Array<[string, string]> = [
    ['tokenizer-entry.ts', 'tokenizer.js'],
    // lambda/money/tokens.ts looks for it beside tokenizer.js (CL100K_FILE).
    ['tokenizer-cl100k-entry.ts', 'tokenizer-cl100k.js'],
  ];
  return {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (_inputDir: string, outputDir: string) =>
      files.map(([entry, out]) =>
        // CDK runs hooks inside `bash -c "…"`: single quotes only.
        [
          `'${esbuild}'`,
          `'${path.join(PROJECT_ROOT, 'lambda', 'money', entry)}'`,
          '--bundle --minify --platform=node --format=cjs --target=node24 --log-level=error',
          `'--outfile=${path.join(outputDir, out)}'`,
        ].join(' '),
      ),
  };
}

/** The console (a file of its own, loaded on the first `/console` request) and its browser script, beside index.js. */
export const CONSOLE_RUNTIME_PATH = '/var/task/console.js';
export const CONSOLE_SCRIPT_RUNTIME_PATH = '/var/task/console-client.js';

/**
 * esbuild hooks that build the console server module and its browser script (the flags of
 * lambda/console/assets.ts CLIENT_BUILD_OPTIONS) into the bundle directory.
 */
function consoleFileHooks(): nodejs.ICommandHooks {
  const esbuild = path.join(PROJECT_ROOT, 'node_modules', '.bin', 'esbuild');
  const server = path.join(PROJECT_ROOT, 'lambda', 'console', 'index.tsx');
  const client = path.join(PROJECT_ROOT, 'lambda', 'console', 'client', 'main.tsx');
  return {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (_inputDir: string, outputDir: string) => [
      [
        `'${esbuild}'`,
        `'${server}'`,
        '--bundle --minify --sourcemap --sources-content=false --platform=node --format=cjs --target=node24 --log-level=error',
        "--jsx=automatic --jsx-import-source=hono/jsx '--external:@aws-sdk/*'",
        `'--outfile=${path.join(outputDir, 'console.js')}'`,
      ].join(' '),
      [
        `'${esbuild}'`,
        `'${client}'`,
        '--bundle --minify --format=iife --target=es2020 --jsx=automatic --jsx-import-source=hono/jsx/dom --legal-comments=none --log-level=error',
        `'--outfile=${path.join(outputDir, 'console-client.js')}'`,
      ].join(' '),
    ],
  };
}

function combineHooks(first: nodejs.ICommandHooks, second: nodejs.ICommandHooks | undefined): nodejs.ICommandHooks {
  if (!second) return first;
  return {
    beforeBundling: (i, o) => [...first.beforeBundling(i, o), ...second.beforeBundling(i, o)],
    beforeInstall: (i, o) => [...first.beforeInstall(i, o), ...second.beforeInstall(i, o)],
    afterBundling: (i, o) => [...first.afterBundling(i, o), ...second.afterBundling(i, o)],
  };
}

/**
 * esbuild hooks that copy the catalog into the bundle directory as `catalog.json`. The JSON is
 * written once to a content-addressed temp file so the shell command stays short whatever its size.
 */
export function catalogFileHooks(catalog: ItapiCatalog): nodejs.ICommandHooks {
  const json = JSON.stringify(catalog, null, 2);
  const dir = path.join(os.tmpdir(), 'itapi-catalog');
  mkdirSync(dir, { recursive: true });
  const source = path.join(dir, `${createHash('sha256').update(json).digest('hex')}.json`);
  writeFileSync(source, json);
  const copy = `require('fs').copyFileSync(process.argv[1], process.argv[2])`;
  return {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (_inputDir: string, outputDir: string) => [
      `node -e "${copy}" ${JSON.stringify(source)} ${JSON.stringify(path.join(outputDir, CATALOG_FILE_NAME))}`,
    ],
  };
}
