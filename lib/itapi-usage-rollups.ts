import { Duration } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { acknowledgeNagRule } from './itapi-nag';
import { ENTRY, ItapiNodeFunction } from './itapi-node-function';
import type { ItapiTables } from './itapi-tables';

export interface ItapiUsageRollupsProps {
  readonly tables: ItapiTables;
  /** Stream records per invocation. @default 100 */
  readonly batchSize?: number;
  /** Retries of a failing batch before its records go to the on-failure queue. @default 20 */
  readonly retryAttempts?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * Usage roll-ups written as requests settle (issue 21): a function on the usage table's stream adds
 * each new request item of the ledger to its account's roll-up for its day, key and model, once
 * (a mark on the ledger item in the same transaction). Partial batch failures send back only the
 * failed record and those after it; a batch that keeps failing is bisected, then its records'
 * coordinates go to an on-failure queue (alarmed: roll-ups behind the ledger).
 */
export class ItapiUsageRollups extends Construct {
  public readonly function: lambda.Function;
  /** Stream records that failed every retry: usage not yet in the roll-ups. */
  public readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: ItapiUsageRollupsProps) {
    super(scope, id);
    this.deadLetterQueue = new sqs.Queue(this, 'RollupFailures', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledgeNagRule(this.deadLetterQueue, 'AwsSolutions-SQS3', 'This is the on-failure destination of the roll-ups stream consumer; its messages are alarmed and replayed by an operator.');
    const built = new ItapiNodeFunction(this, 'Handler', {
      entry: ENTRY.rollups,
      description: 'itapi: rolls new usage ledger items up per account, day, key and model',
      memorySize: 256,
      timeout: Duration.minutes(1),
      environment: props.tables.environment(),
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    this.function = built.function;
    props.tables.grantRollupAccess(this.function);
    this.function.addEventSource(
      new sources.DynamoEventSource(props.tables.usage, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: props.batchSize ?? 100,
        maxBatchingWindow: Duration.seconds(1),
        retryAttempts: props.retryAttempts ?? 20,
        bisectBatchOnError: true,
        reportBatchItemFailures: true,
        // New request items only: top-ups, the roll-up marks (MODIFY) and TTL expiries are not usage.
        filters: [
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual('INSERT'),
            dynamodb: { NewImage: { kind: { S: lambda.FilterRule.isEqual('request') } } },
          }),
        ],
        onFailure: new sources.SqsDlq(this.deadLetterQueue),
      }),
    );
  }

  /** Records in the on-failure queue: ledger items not in the roll-ups. */
  public metricDeadLetters(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: Duration.minutes(5), ...props });
  }

  /** How far behind the stream the consumer is (ms): the roll-ups lag the ledger by this much. */
  public metricIteratorAge(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.function.metric('IteratorAge', { statistic: 'Maximum', period: Duration.minutes(5), ...props });
  }
}
