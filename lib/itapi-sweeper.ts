import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { ItapiCatalog } from './itapi-catalog';
import { CATALOG_RUNTIME_PATH, catalogFileHooks } from './itapi-chat-function';
import { DEFAULT_METRICS_NAMESPACE } from './itapi-metrics';
import { acknowledgeNagRule } from './itapi-nag';
import { ENTRY, ItapiNodeFunction } from './itapi-node-function';
import type { ItapiTables } from './itapi-tables';

export interface ItapiSweeperProps {
  readonly tables: ItapiTables;
  /** How often overdue holds are swept. @default Duration.minutes(1) */
  readonly interval?: Duration;
  /** How long past its deadline a hold is left to its own request. @default Duration.minutes(1) */
  readonly grace?: Duration;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** @default 'Itapi' */
  readonly metricsNamespace?: string;
  /**
   * The catalog the chat function serves, for the daily check of routes near their
   * `shutdown_date` (shipped as `catalog.json` in this bundle too).
   * @default - the runtime's built-in catalog
   */
  readonly catalog?: ItapiCatalog;
  /** How often the catalog is checked for routes near their shutdown. @default Duration.days(1) */
  readonly catalogCheckInterval?: Duration;
  /**
   * What happens to the settlement queue and its dead-letter queue when they leave the stack: kept
   * by default, as the tables are, since a message in either is money not yet booked.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /** How often the holds table is reconciled against the accounts' `held`. @default Duration.days(1) */
  readonly reconciliationInterval?: Duration;
}

/** Receives of a queued settlement before it goes to the dead-letter queue (and its alarm). */
const MAX_RECEIVES = 5;
/** Receives of a queued alert (three attempts each, about 30 minutes apart) before its dead-letter queue. */
const ALERT_MAX_RECEIVES = 4;

/**
 * Every hold ends (ARCHITECTURE §3): a function that, every minute, settles as `abandoned` the
 * holds left past their deadline (an instance killed mid-stream, a settlement lost); applies the
 * settlements the chat function could not write and queued (SQS, with a dead-letter queue that
 * receives only those settlements, so that each of its messages can be replayed as it is);
 * settles the holds the table's TTL removed if the sweeps were failing for a day (the holds
 * table's stream, whose failed batches are described in a queue of their own); and once a day
 * reconciles the holds table against the accounts' `held` (a hold removed with its stream record
 * lost is reported, never silently kept).
 */
export class ItapiSweeper extends Construct {
  public readonly function: lambda.Function;
  /** Settlements that kept failing in the chat function, applied here. */
  public readonly settlementQueue: sqs.Queue;
  /** Settlements that kept failing here too: any message in it is money not yet booked (alarmed); each is a settlement, replayable as it is. */
  public readonly deadLetterQueue: sqs.Queue;
  /** Low-balance alerts fired by the chat function (and by sweeps), delivered from here. */
  public readonly alertQueue: sqs.Queue;
  /** Alerts not delivered after every receive (alarmed). */
  public readonly alertDeadLetterQueue: sqs.Queue;
  /**
   * E-mail low-balance alerts: the delivering function subscribes each holder's address
   * (protocol `email`, filter policy on `account_id`) and publishes each alert with that
   * attribute. Encrypted with the AWS-managed SNS key; publishing requires TLS.
   */
  public readonly alertTopic: sns.Topic;
  /**
   * Descriptions (shard, sequence numbers) of holds-stream batches that failed every retry: not
   * settlements, so kept apart from the dead-letter queue (alarmed; docs/RELIABILITY.md).
   */
  public readonly streamFailureQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: ItapiSweeperProps) {
    super(scope, id);
    const timeout = Duration.minutes(5);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.deadLetterQueue = new sqs.Queue(this, 'SettlementDeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy,
    });
    acknowledgeNagRule(this.deadLetterQueue, 'AwsSolutions-SQS3', 'This is the dead-letter queue of the settlement queue; its messages are alarmed and replayed by an operator.');
    this.streamFailureQueue = new sqs.Queue(this, 'HoldStreamFailures', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy,
    });
    acknowledgeNagRule(this.streamFailureQueue, 'AwsSolutions-SQS3', 'This queue is the failure destination of the holds-stream event source; its messages are alarmed and handled by an operator.');
    this.settlementQueue = new sqs.Queue(this, 'Settlements', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      // AWS's advice for a Lambda source: at least six times the function's timeout.
      visibilityTimeout: Duration.seconds(timeout.toSeconds() * 6),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: MAX_RECEIVES },
      removalPolicy,
    });

    this.alertDeadLetterQueue = new sqs.Queue(this, 'AlertDeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy,
    });
    acknowledgeNagRule(this.alertDeadLetterQueue, 'AwsSolutions-SQS3', 'This is the dead-letter queue of the low-balance alert queue; its messages are alarmed.');
    this.alertQueue = new sqs.Queue(this, 'Alerts', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(4),
      // Each receive tries three times within a minute; a failed one comes back after this.
      visibilityTimeout: Duration.seconds(timeout.toSeconds() * 6),
      deadLetterQueue: { queue: this.alertDeadLetterQueue, maxReceiveCount: ALERT_MAX_RECEIVES },
      removalPolicy,
    });

    this.alertTopic = new sns.Topic(this, 'AlertEmails', {
      displayName: 'itapi low-balance alerts',
      enforceSSL: true,
      masterKey: kms.Alias.fromAliasName(this, 'SnsKey', 'alias/aws/sns'),
    });

    const built = new ItapiNodeFunction(this, 'Handler', {
      entry: ENTRY.sweeper,
      description: 'itapi: settles overdue holds and queued settlements',
      memorySize: 256,
      timeout,
      environment: {
        ...props.tables.environment(),
        ITAPI_METRICS_NAMESPACE: props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE,
        ITAPI_SWEEP_GRACE_S: String((props.grace ?? Duration.minutes(1)).toSeconds()),
        ITAPI_ALERT_QUEUE_URL: this.alertQueue.queueUrl,
        ITAPI_ALERT_QUEUE_ARN: this.alertQueue.queueArn,
        ITAPI_ALERT_TOPIC_ARN: this.alertTopic.topicArn,
        ...(props.catalog ? { ITAPI_MODELS: CATALOG_RUNTIME_PATH } : {}),
      },
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      commandHooks: props.catalog ? catalogFileHooks(props.catalog) : undefined,
    });
    this.function = built.function;
    // Scheduled invocations are asynchronous: Lambda's own two retries would run a failed sweep three
    // times a minute (and triple SweeperErrors); the next scheduled sweep is the retry.
    this.function.configureAsyncInvoke({ retryAttempts: 0 });
    props.tables.grantGatewayAccess(this.function);
    props.tables.grantSweep(this.function);

    new events.Rule(this, 'Schedule', {
      description: 'itapi: sweep holds left past their deadline',
      schedule: events.Schedule.rate(props.interval ?? Duration.minutes(1)),
      targets: [new targets.LambdaFunction(this.function, { retryAttempts: 0 })],
    });
    new events.Rule(this, 'CatalogCheck', {
      description: 'itapi: count catalog routes within 30 days of their shutdown date (metric RoutesNearShutdown)',
      schedule: events.Schedule.rate(props.catalogCheckInterval ?? Duration.days(1)),
      targets: [new targets.LambdaFunction(this.function, { event: events.RuleTargetInput.fromObject({ itapi: 'catalog-check' }), retryAttempts: 0 })],
    });
    new events.Rule(this, 'Reconciliation', {
      description: 'itapi: reconcile the holds table against the accounts held amounts',
      schedule: events.Schedule.rate(props.reconciliationInterval ?? Duration.days(1)),
      targets: [new targets.LambdaFunction(this.function, { retryAttempts: 2, event: events.RuleTargetInput.fromObject({ action: 'reconcile' }) })],
    });
    this.function.addEventSource(new sources.SqsEventSource(this.settlementQueue, { batchSize: 10, reportBatchItemFailures: true }));
    this.function.addEventSource(new sources.SqsEventSource(this.alertQueue, { batchSize: 10, reportBatchItemFailures: true }));
    this.alertQueue.grantSendMessages(this.function);
    // Not grantPublish: that adds KMS permissions on every key behind the alias, which the
    // AWS-managed SNS key does not need (its key policy admits callers through SNS in the account).
    this.function.addToRolePolicy(new iam.PolicyStatement({ actions: ['sns:Publish', 'sns:Subscribe'], resources: [this.alertTopic.topicArn] }));
    this.function.addEventSource(
      new sources.DynamoEventSource(props.tables.holds, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: 100,
        retryAttempts: 20,
        reportBatchItemFailures: true,
        // Only what the table's TTL removed: settlements delete holds too, and those are settled.
        filters: [
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual('REMOVE'),
            userIdentity: { type: lambda.FilterRule.isEqual('Service'), principalId: lambda.FilterRule.isEqual('dynamodb.amazonaws.com') },
          }),
        ],
        onFailure: new sources.SqsDlq(this.streamFailureQueue),
      }),
    );
  }

  /** Lets the chat function queue the settlements it could not write. */
  public grantEnqueue(grantee: iam.IGrantable): iam.Grant {
    return this.settlementQueue.grantSendMessages(grantee);
  }

  /** Lets the chat function queue the low-balance alerts it fires. */
  public grantAlertEnqueue(grantee: iam.IGrantable): iam.Grant {
    return this.alertQueue.grantSendMessages(grantee);
  }

  /** Messages in the alert dead-letter queue: low-balance alerts not delivered after every retry. */
  public metricUndeliveredAlerts(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.alertDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: Duration.minutes(5), ...props });
  }

  /** Messages in the dead-letter queue: settlements not booked after every retry. */
  public metricDeadLetters(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: Duration.minutes(5), ...props });
  }

  /** Holds-stream batches that failed every retry (their holds are settled by no one until replayed). */
  public metricStreamFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.streamFailureQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: Duration.minutes(5), ...props });
  }

  /** Age of the oldest queued settlement, in seconds. */
  public metricOldestSettlementAge(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.settlementQueue.metricApproximateAgeOfOldestMessage({ statistic: 'Maximum', period: Duration.minutes(5), ...props });
  }
}
