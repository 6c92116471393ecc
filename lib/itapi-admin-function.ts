import { Duration } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { ItapiCatalog } from './itapi-catalog';
import { CATALOG_RUNTIME_PATH, catalogFileHooks } from './itapi-chat-function';
import { DEFAULT_METRICS_NAMESPACE } from './itapi-metrics';
import { ENTRY, ItapiNodeFunction } from './itapi-node-function';
import type { ItapiTables } from './itapi-tables';

export interface ItapiAdminFunctionProps {
  readonly tables: ItapiTables;
  /**
   * The model catalog, shipped as `catalog.json` in the bundle as for the chat function (the
   * admin API checks the models a key may use against it).
   * @default - the runtime's built-in catalog
   */
  readonly catalog?: ItapiCatalog;
  /** @default 256 */
  readonly memorySize?: number;
  /** @default Duration.seconds(29) (the REST API's default integration timeout) */
  readonly timeout?: Duration;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** @default 'Itapi' */
  readonly metricsNamespace?: string;
  /**
   * The console's public address, for the sign-in links of `POST /admin/accounts/{id}/console-links`.
   * @default - links point at the admin API's own origin, which serves no console in AWS: set it
   */
  readonly consoleUrl?: string;
}

/**
 * The admin function: accounts, keys, credits, tiers and usage (ARCHITECTURE §8), reached only
 * through the REST API's IAM-authorized `/admin/*`. It has no URL of its own.
 */
export class ItapiAdminFunction extends Construct {
  public readonly function: lambda.Function;
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ItapiAdminFunctionProps) {
    super(scope, id);
    const built = new ItapiNodeFunction(this, 'Handler', {
      entry: ENTRY.admin,
      description: 'itapi: admin API (accounts, keys, credits, tiers, usage)',
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout ?? Duration.seconds(29),
      environment: {
        ...props.tables.environment(),
        ITAPI_METRICS_NAMESPACE: props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE,
        ...(props.catalog ? { ITAPI_MODELS: CATALOG_RUNTIME_PATH } : {}),
        ...(props.consoleUrl ? { ITAPI_CONSOLE_URL: props.consoleUrl } : {}),
      },
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      commandHooks: props.catalog ? catalogFileHooks(props.catalog) : undefined,
    });
    this.function = built.function;
    this.logGroup = built.logGroup;
    props.tables.grantAdminAccess(this.function);
  }
}
