import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { ItapiAdminFunction } from './itapi-admin-function';
import { BUILT_IN_CATALOG_PROVIDERS, catalogProviders, validateCatalog, type ItapiCatalog } from './itapi-catalog';
import { ItapiChatFunction } from './itapi-chat-function';
import { DEFAULT_METRICS_NAMESPACE, ItapiMetrics } from './itapi-metrics';
import { ItapiMonitoring } from './itapi-monitoring';
import { acknowledgeNagRule } from './itapi-nag';
import { ItapiRestApi } from './itapi-rest-api';
import { ItapiSweeper } from './itapi-sweeper';
import { ItapiUsageRollups } from './itapi-usage-rollups';
import { ItapiTables } from './itapi-tables';
import { DEFAULT_TIERS, ItapiTierSeed, type ItapiTier } from './itapi-tier-seed';

export interface ItapiGatewayProps {
  /**
   * Rate-limit tiers seeded at deploy. A tier is written only when absent, so later changes
   * made with the admin API (`PUT /admin/tiers/{id}`) survive every deploy.
   * @default DEFAULT_TIERS — free 10 rpm / 20k tpm, starter 60 / 100k, pro 300 / 500k,
   * enterprise 0 / 0 (per-account custom limits)
   */
  readonly tiers?: readonly ItapiTier[];
  /**
   * Model catalog (ARCHITECTURE §8). Shipped in the function bundle as `catalog.json`
   * (`ITAPI_MODELS=/var/task/catalog.json`). Its `bedrock` routes decide the function's
   * `bedrock:InvokeModel*` permissions, scoped to those models.
   * @default - the runtime's built-in catalog (OpenAI, Anthropic, DeepSeek, Gemini); no Bedrock access
   */
  readonly catalog?: ItapiCatalog;
  /**
   * Secret holding the upstream keys as a JSON object, name → key (`{"openai": "sk-…"}`).
   * @default - a new secret with a placeholder JSON object; set it with `aws secretsmanager put-secret-value`
   */
  readonly providerSecret?: secretsmanager.ISecret;
  /** Chat function memory in MB (CPU scales with it). @default 512 */
  readonly memorySize?: number;
  /** Reserved concurrency of the chat function, a hard cap on parallel requests. @default - unreserved */
  readonly reservedConcurrency?: number;
  /** Email subscribed to the alarm topic (confirm the subscription mail). @default - no subscription */
  readonly alarmEmail?: string;
  /** An existing topic for alarm notifications. @default - a new topic */
  readonly alarmTopic?: sns.ITopic;
  /** Browser origins allowed to call the gateway. @default - none (no CORS) */
  readonly corsOrigins?: string[];
  /** Removal policy of the tables and the provider secret. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /** Deletion protection on the tables. @default true */
  readonly deletionProtection?: boolean;
  /** Retention of function and access logs. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** CloudWatch namespace of the runtime's EMF metrics. @default 'Itapi' */
  readonly metricsNamespace?: string;
  /**
   * Upstream providers with an error-rate alarm each (values of the metrics' `Provider` dimension).
   * @default - the catalog's providers (without `mock`), or those of the built-in catalog
   */
  readonly upstreamProviders?: string[];
  /**
   * Days a response stored by `POST /v1/responses` (`store: true`, the default, as OpenAI) is
   * kept; DynamoDB's TTL removes it after that.
   * @default 30
   */
  readonly responsesTtlDays?: number;
  /** REST API stage-wide requests per second. @default 500 */
  readonly apiThrottlingRateLimit?: number;
  /** REST API stage-wide burst. @default 1000 */
  readonly apiThrottlingBurstLimit?: number;
  /**
   * The console's public address, used in sign-in links (e.g. behind your own domain).
   * @default - the console on the Function URL: `https://<id>.lambda-url.<region>.on.aws/console/`
   */
  readonly consoleUrl?: string;
  /**
   * Smallest Stripe top-up the console offers, in US dollars (whole cents). Top-ups are on once
   * the provider-keys secret holds `stripe_secret_key` and `stripe_webhook_secret`.
   * @default 5
   */
  readonly topUpMinUsd?: number;
  /** Largest Stripe top-up the console offers, in US dollars (whole cents). @default 1000 */
  readonly topUpMaxUsd?: number;
  /**
   * Set the account's API Gateway CloudWatch Logs role in the stack's Region, which the REST API's
   * access logs need. Account-wide: it replaces a role set before (same AWS managed policy), and is
   * retained when the stack is deleted. See `ItapiRestApiProps.cloudWatchRole`.
   * @default true
   */
  readonly apiGatewayCloudWatchRole?: boolean;
  /** JSON access logs on the REST API stage (they need the account's CloudWatch Logs role). @default true */
  readonly apiAccessLogs?: boolean;
}

/**
 * The whole gateway: tables, provider-keys secret, streaming chat function with a Function URL,
 * a regional REST API (`/v1` streamed, `/admin` behind IAM), seeded tiers, alarms and a
 * dashboard. `new ItapiGateway(this, 'Gateway')` is a complete, safe deployment.
 *
 * @example
 * const gateway = new ItapiGateway(this, 'Gateway', { alarmEmail: 'ops@example.com', memorySize: 1024 });
 * gateway.grantAdminInvoke(myOpsRole);
 */
export class ItapiGateway extends Construct {
  public readonly tables: ItapiTables;
  public readonly providerSecret: secretsmanager.ISecret;
  public readonly chat: ItapiChatFunction;
  public readonly admin: ItapiAdminFunction;
  public readonly restApi: ItapiRestApi;
  public readonly tierSeed: ItapiTierSeed;
  public readonly monitoring: ItapiMonitoring;
  public readonly metrics: ItapiMetrics;
  /** Settles overdue holds and queued settlements (every hold ends). */
  public readonly sweeper: ItapiSweeper;
  /** The usage table's stream consumer that keeps the usage roll-ups. */
  public readonly rollups: ItapiUsageRollups;
  /** The console that sign-in links open. */
  public readonly consoleUrl: string;

  constructor(scope: Construct, id: string, props: ItapiGatewayProps = {}) {
    super(scope, id);
    if (props.catalog) validateCatalog(props.catalog);
    if (props.reservedConcurrency !== undefined && (!Number.isInteger(props.reservedConcurrency) || props.reservedConcurrency < 1)) {
      throw new Error(`reservedConcurrency: expected a positive integer, got ${props.reservedConcurrency}`);
    }
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const metricsNamespace = props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE;
    const chatTimeout = Duration.minutes(15);
    this.metrics = new ItapiMetrics(metricsNamespace);

    this.tables = new ItapiTables(this, 'Tables', {
      removalPolicy,
      deletionProtection: props.deletionProtection ?? true,
    });

    if (props.providerSecret) {
      this.providerSecret = props.providerSecret;
    } else {
      const secret = new secretsmanager.Secret(this, 'ProviderKeys', {
        description: 'itapi upstream provider keys: a JSON object, name -> key (e.g. {"openai": "sk-..."})',
        // Generated once at creation, so a later deploy never overwrites the keys an operator set.
        generateSecretString: {
          secretStringTemplate: JSON.stringify({}),
          generateStringKey: '_placeholder',
          excludePunctuation: true,
          passwordLength: 16,
        },
        removalPolicy,
      });
      acknowledgeNagRule(
        secret,
        'AwsSolutions-SMG4',
        'Holds third-party upstream API keys (OpenAI, Anthropic, …) that only their issuers can rotate; operators replace them with put-secret-value and the gateway re-reads the secret within 5 minutes.',
      );
      this.providerSecret = secret;
    }

    this.sweeper = new ItapiSweeper(this, 'Sweeper', { tables: this.tables, logRetention, metricsNamespace, catalog: props.catalog, removalPolicy });
    this.rollups = new ItapiUsageRollups(this, 'UsageRollups', { tables: this.tables, logRetention });

    this.chat = new ItapiChatFunction(this, 'Chat', {
      settlementQueue: this.sweeper.settlementQueue,
      alertQueue: this.sweeper.alertQueue,
      tables: this.tables,
      providerSecret: this.providerSecret,
      catalog: props.catalog,
      memorySize: props.memorySize,
      timeout: chatTimeout,
      reservedConcurrency: props.reservedConcurrency,
      corsOrigins: props.corsOrigins,
      logRetention,
      metricsNamespace,
      topUpMinUsd: props.topUpMinUsd,
      topUpMaxUsd: props.topUpMaxUsd,
      responsesTtlDays: props.responsesTtlDays,
    });
    this.consoleUrl = props.consoleUrl ?? this.chat.consoleUrl;
    this.admin = new ItapiAdminFunction(this, 'Admin', {
      tables: this.tables,
      catalog: props.catalog,
      logRetention,
      metricsNamespace,
      consoleUrl: this.consoleUrl,
    });
    this.restApi = new ItapiRestApi(this, 'Api', {
      chatFunction: this.chat.function,
      adminFunction: this.admin.function,
      chatTimeout,
      logRetention,
      throttlingRateLimit: props.apiThrottlingRateLimit,
      throttlingBurstLimit: props.apiThrottlingBurstLimit,
      cloudWatchRole: props.apiGatewayCloudWatchRole,
      accessLogs: props.apiAccessLogs,
    });
    this.tierSeed = new ItapiTierSeed(this, 'TierSeed', {
      table: this.tables.tiers,
      tiers: props.tiers ?? DEFAULT_TIERS,
      logRetention,
    });

    this.monitoring = new ItapiMonitoring(this, 'Monitoring', {
      metrics: this.metrics,
      chatFunction: this.chat.function,
      chatTimeout,
      adminFunction: this.admin.function,
      restApi: this.restApi,
      tables: this.tables,
      upstreamProviders: props.upstreamProviders ?? (props.catalog ? catalogProviders(props.catalog) : BUILT_IN_CATALOG_PROVIDERS),
      sweeper: this.sweeper,
      rollups: this.rollups,
      alarmTopic: props.alarmTopic,
      alarmEmail: props.alarmEmail,
    });
  }

  /** The chat function. */
  public get chatFunction(): lambda.Function {
    return this.chat.function;
  }

  /** The admin function. */
  public get adminFunction(): lambda.Function {
    return this.admin.function;
  }

  /** Base URL on the Function URL: `https://<id>.lambda-url.<region>.on.aws/v1`. */
  public get functionBaseUrl(): string {
    return this.chat.baseUrl;
  }

  /** Base URL on the REST API: `https://<id>.execute-api.<region>.amazonaws.com/prod/v1`. */
  public get apiBaseUrl(): string {
    return this.restApi.baseUrl;
  }

  /** Root of the IAM-signed admin API (`ITAPI_ADMIN_URL` for the CLI). */
  public get adminUrl(): string {
    return this.restApi.adminUrl;
  }

  /** Where Stripe sends its events: register it as a webhook endpoint for `checkout.session.*` events. */
  public get stripeWebhookUrl(): string {
    return `${this.chat.consoleUrl}stripe/webhook`;
  }

  /** Lets a principal (an operator role, a CI job) call the admin API. */
  public grantAdminInvoke(grantee: iam.IGrantable): iam.Grant {
    return this.restApi.grantAdminInvoke(grantee);
  }

  /** Lets a principal set the upstream provider keys. */
  public grantProviderKeysWrite(grantee: iam.IGrantable): iam.Grant {
    return this.providerSecret.grantWrite(grantee);
  }

  /** Lets a principal read the usage ledger (billing exports, analytics). */
  public grantUsageRead(grantee: iam.IGrantable): iam.Grant {
    return this.tables.usage.grantReadData(grantee);
  }

  /** Requests the gateway answered (runtime EMF metric `Requests`). */
  public metricRequests(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metrics.requests(props);
  }

  /** Error answers of one OpenAI error type (runtime metric `Errors`, dimension `ErrorType`). */
  public metricErrors(errorType: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metrics.errors(errorType, props);
  }

  /** End-to-end latency in ms (p99 by default). */
  public metricLatency(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metrics.latency(props);
  }

  /** Time to first token in ms (p99 by default). */
  public metricTimeToFirstToken(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metrics.timeToFirstToken(props);
  }

  /** Percentage of requests answered with 5xx. */
  public metricHttp5xxRate(period?: Duration): cloudwatch.MathExpression {
    return this.metrics.http5xxRatePercent(period);
  }

  /** Percentage of failed calls to one upstream provider. */
  public metricUpstreamErrorRate(provider: string, period?: Duration): cloudwatch.MathExpression {
    return this.metrics.upstreamErrorRatePercent(provider, period);
  }

  /** Cost charged, in micro-USD, for one model on one provider. */
  public metricCostMicroUsd(model: string, provider: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metrics.costMicroUsd(model, provider, props);
  }
}
