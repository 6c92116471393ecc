import { Arn, ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { ItapiMetricName, SERVICE_DIMENSION_NAME, SERVICE_NAME, type ItapiMetrics } from './itapi-metrics';
import type { ItapiRestApi } from './itapi-rest-api';
import type { ItapiSweeper } from './itapi-sweeper';
import type { ItapiUsageRollups } from './itapi-usage-rollups';
import type { ItapiTables } from './itapi-tables';

export interface ItapiMonitoringProps {
  readonly metrics: ItapiMetrics;
  readonly chatFunction: lambda.IFunction;
  /** The chat function's timeout; the p99 duration alarm fires at `durationAlarmPercent` of it. */
  readonly chatTimeout: Duration;
  readonly adminFunction: lambda.IFunction;
  readonly restApi: ItapiRestApi;
  readonly tables: ItapiTables;
  /** Upstream providers (the catalog's `provider` values) that get an error-rate alarm each. */
  readonly upstreamProviders: readonly string[];
  /**
   * Topic the alarms notify (on alarm and back to OK). Its access policy must let
   * `cloudwatch.amazonaws.com` publish for alarms named `alarmNamePrefix`-* (see docs/DEPLOY.md);
   * this construct does not change the policy of a topic it did not create.
   * @default - a new topic whose policy allows exactly that, over TLS only
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * Email address subscribed to the alarm topic.
   * @default - no subscription
   */
  readonly alarmEmail?: string;
  /** Alarm when the gateway answers more than this share of requests with 5xx. @default 5 */
  readonly http5xxRatePercent?: number;
  /** Alarm when more than this share of one provider's calls fail. @default 20 */
  readonly upstreamErrorRatePercent?: number;
  /** Alarm when the accounts table sees more transaction conflicts than this in 5 minutes, in 2 of 3 periods. @default 300 */
  readonly accountConflictsPerFiveMinutes?: number;
  /** Alarm when p99 chat duration exceeds this share of the timeout. @default 80 */
  readonly durationAlarmPercent?: number;
  /** @default - the alarm name prefix, `<stack name>-<path of this construct>` */
  readonly dashboardName?: string;
  /** The money path's background function and queues: their alarms. @default - none */
  readonly sweeper?: ItapiSweeper;
  /** The usage roll-ups consumer: its alarms. @default - none */
  readonly rollups?: ItapiUsageRollups;
}

const FIVE_MINUTES = Duration.minutes(5);

/**
 * Alarms and a dashboard over the Lambda, API Gateway and DynamoDB service metrics and the
 * gateway's own EMF metrics. Every alarm notifies the SNS topic on alarm and on recovery.
 */
export class ItapiMonitoring extends Construct {
  public readonly topic: sns.ITopic;
  public readonly dashboard: cloudwatch.Dashboard;
  public readonly alarms: cloudwatch.Alarm[] = [];
  /** Every alarm is named `<alarmNamePrefix>-<what it watches>`, e.g. `Itapi-Gateway-Monitoring-Gateway5xxRate`. */
  public readonly alarmNamePrefix: string;

  constructor(scope: Construct, id: string, props: ItapiMonitoringProps) {
    super(scope, id);
    const { metrics } = props;
    if (props.alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(props.alarmEmail)) {
      throw new Error(`alarmEmail: "${props.alarmEmail}" is not an email address`);
    }
    const stack = Stack.of(this);
    // The stack's name and this construct's path in it: unique in the account and Region, and readable in the alarm e-mail.
    this.alarmNamePrefix = [stack.stackName, ...this.node.path.split('/').slice(stack.node.path.split('/').length)].join('-');
    if (props.alarmTopic) {
      this.topic = props.alarmTopic;
    } else {
      const topic = new sns.Topic(this, 'AlarmTopic', { displayName: 'itapi alarms', enforceSSL: true });
      // The topic policy enforceSSL writes replaces SNS's default one, which let CloudWatch publish: say so again, for these alarms only.
      topic.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'AllowItapiAlarmsToPublish',
          principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
          actions: ['sns:Publish'],
          resources: [topic.topicArn],
          conditions: {
            StringEquals: { 'aws:SourceAccount': stack.account },
            ArnLike: {
              'aws:SourceArn': Arn.format({ service: 'cloudwatch', resource: 'alarm', resourceName: `${this.alarmNamePrefix}-*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME }, stack),
            },
          },
        }),
      );
      this.topic = topic;
    }
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));

    const chat = props.chatFunction;
    const percentOfTimeout = props.durationAlarmPercent ?? 80;
    const durationThresholdMs = Math.round((props.chatTimeout.toMilliseconds() * percentOfTimeout) / 100);

    this.alarm('ChatFunctionErrors', chat.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' }), {
      threshold: 1,
      description: 'Chat function invocations failed (the app answers errors itself, so any is a bug or a crash).',
    });
    this.alarm('ChatFunctionThrottles', chat.metricThrottles({ period: FIVE_MINUTES, statistic: 'Sum' }), {
      threshold: 1,
      description: 'Chat function throttled: reserved or account concurrency exhausted.',
    });
    this.alarm('ChatFunctionDurationP99', chat.metricDuration({ period: FIVE_MINUTES, statistic: 'p99' }), {
      threshold: durationThresholdMs,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      description: `p99 chat duration above ${percentOfTimeout}% of the ${props.chatTimeout.toMinutes()}-minute timeout.`,
    });
    this.alarm('AdminFunctionErrors', props.adminFunction.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' }), {
      threshold: 1,
      description: 'Admin function invocations failed.',
    });
    this.alarm('AdminFunctionThrottles', props.adminFunction.metricThrottles({ period: FIVE_MINUTES, statistic: 'Sum' }), {
      threshold: 1,
      description: 'Admin function throttled.',
    });
    this.alarm('Gateway5xxRate', metrics.http5xxRatePercent(FIVE_MINUTES), {
      threshold: props.http5xxRatePercent ?? 5,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      description: 'Share of gateway answers with a 5xx status (runtime Http5xx / Requests, at least 10 requests).',
    });
    for (const provider of props.upstreamProviders) {
      this.alarm(`UpstreamErrorRate-${provider}`, metrics.upstreamErrorRatePercent(provider, FIVE_MINUTES), {
        threshold: props.upstreamErrorRatePercent ?? 20,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        description: `Share of calls to upstream provider "${provider}" that failed (at least 10 calls).`,
      });
    }
    for (const [role, table] of Object.entries(props.tables.all)) {
      this.alarm(`DynamoDbThrottles-${role}`, props.tables.metricThrottles(table, { period: FIVE_MINUTES }), {
        threshold: 1,
        description: `DynamoDB throttled requests on the ${role} table (the gateway answers 503 while this lasts).`,
      });
    }
    this.alarm('HotAccount', props.tables.metricTransactionConflicts(props.tables.accounts, { period: FIVE_MINUTES }), {
      threshold: props.accountConflictsPerFiveMinutes ?? 300,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      description:
        'Admissions and settlements of one account keep meeting each other on its item (DynamoDB TransactionConflict on the accounts table): an account is near the ceiling of docs/SCALE.md. Contributor Insights on the table names it.',
    });
    this.alarm('StripeEventsIgnored', metrics.stripeEventsIgnored({ period: FIVE_MINUTES }), {
      threshold: 1,
      description:
        'A paid Stripe event credited nothing (other currency, account ids that disagree, fractional amount, livemode against the key, unknown account): a customer may have been charged with nothing credited. The log line stripe_event_ignored names the event and the reason.',
    });
    if (props.sweeper) {
      const sweeper = props.sweeper;
      this.alarm('AbandonedHolds', metrics.abandonedHolds({ period: FIVE_MINUTES }), {
        threshold: 1,
        description: 'Holds settled by the sweeper because their request never settled them (a function killed mid-request: timeout, out of memory, crash). Each was charged its prompt estimate.',
      });
      this.alarm('UnchargedUsage', metrics.unchargedMicroUsd({ period: FIVE_MINUTES }), {
        threshold: 1,
        description: 'Usage beyond a hold that the balance could not pay: a provider went past the output limit it was sent.',
      });
      this.alarm('SettlementDeadLetters', sweeper.metricDeadLetters(), {
        threshold: 1,
        description: 'Settlements that failed every retry are in the dead-letter queue: money not yet booked. Replay them once the cause is fixed (docs/RELIABILITY.md).',
      });
      this.alarm('UndeliveredAlerts', sweeper.metricUndeliveredAlerts(), {
        threshold: 1,
        description: 'Low-balance alerts that could not be delivered to their webhook after every retry are in the alert dead-letter queue.',
      });
      this.alarm('LateSettlements', metrics.lateSettlements({ period: FIVE_MINUTES }), {
        threshold: 1,
        description:
          "A request's settlement arrived after the sweeper had settled its hold as abandoned (queued through an outage, or delayed past the sweep): the difference was applied as a late_settlement ledger item. Look at why it was late.",
      });
      this.alarm('HoldsMismatch', metrics.holdsMismatchedAccounts({ period: Duration.days(1) }), {
        threshold: 1,
        description:
          "The daily reconciliation found accounts whose held amount is not the sum of their hold items (a hold removed by TTL whose stream record was lost): the held_mismatch log lines name them (docs/RELIABILITY.md).",
      });
      this.alarm('HoldStreamFailures', sweeper.metricStreamFailures(), {
        threshold: 1,
        description: 'A batch of the holds table stream failed every retry: TTL-removed holds in it are not settled until replayed (docs/RELIABILITY.md).',
      });
      this.alarm('SettlementQueueAge', sweeper.metricOldestSettlementAge(), {
        threshold: 900,
        description: 'A queued settlement has waited more than 15 minutes.',
      });
      this.alarm('CatalogRoutesNearShutdown', metrics.routesNearShutdown(), {
        threshold: 1,
        description:
          'A catalog route reaches its shutdown_date within 30 days (the sweeper function checks daily; `itapi catalog check` names them). Give it a successor, or check the one it has, before that day.',
      });
      this.alarm('SweeperErrors', sweeper.function.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' }), {
        threshold: 1,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        description: 'The hold sweeper failed in two of three 5-minute periods: overdue holds are not being settled.',
      });
    }
    if (props.rollups) {
      const rollups = props.rollups;
      this.alarm('RollupDeadLetters', rollups.metricDeadLetters(), {
        threshold: 1,
        description: 'Usage ledger items the roll-ups consumer failed to add after every retry: usage views and key spend are short of them. Replay from the ledger (docs/CONSOLE.md).',
      });
      this.alarm('RollupIteratorAge', rollups.metricIteratorAge(), {
        threshold: 300_000,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        description: 'The roll-ups consumer is more than 5 minutes behind the usage table stream: usage views and key spend lag.',
      });
      this.alarm('RollupErrors', rollups.function.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' }), {
        threshold: 1,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        description: 'The roll-ups consumer failed in two of three 5-minute periods.',
      });
    }
    this.alarm('ApiGateway5xxRate', props.restApi.metricServerErrorRatePercent(FIVE_MINUTES), {
      threshold: 5,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      description: 'Share of REST API requests answered 5XX by API Gateway.',
    });

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName ?? this.alarmNamePrefix,
      defaultInterval: Duration.hours(3),
    });
    const tableNames = Object.keys(props.tables.all);
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown: `# itapi gateway (${Stack.of(this).stackName})\nRuntime metrics in namespace \`${metrics.namespace}\`, dimension \`${SERVICE_DIMENSION_NAME}=${SERVICE_NAME}\`.`,
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 4 }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Requests and 5xx',
        left: [metrics.requests(), metrics.http5xx()],
        right: [metrics.http5xxRatePercent()],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Errors by type',
        left: [metrics.searchBy(ItapiMetricName.ERRORS, ['ErrorType'])],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Latency and time to first token (ms)',
        left: [
          metrics.latency({ statistic: 'p50', label: 'Latency p50' }),
          metrics.latency({ statistic: 'p99', label: 'Latency p99' }),
          metrics.timeToFirstToken({ statistic: 'p50', label: 'TTFT p50' }),
          metrics.timeToFirstToken({ statistic: 'p99', label: 'TTFT p99' }),
        ],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Upstream error rate by provider (%)',
        left: props.upstreamProviders.map((p) => metrics.upstreamErrorRatePercent(p)),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Tokens by model and provider',
        left: [metrics.searchBy(ItapiMetricName.PROMPT_TOKENS, ['Model', 'Provider'])],
        right: [metrics.searchBy(ItapiMetricName.COMPLETION_TOKENS, ['Model', 'Provider'])],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Cost by model and provider (micro-USD)',
        left: [metrics.searchBy(ItapiMetricName.COST_MICRO_USD, ['Model', 'Provider'])],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Chat function',
        left: [chat.metricInvocations(), chat.metricErrors(), chat.metricThrottles()],
        right: [chat.metricDuration({ statistic: 'p99', label: 'Duration p99' })],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'REST API',
        left: [props.restApi.api.metricCount(), props.restApi.api.metricClientError(), props.restApi.api.metricServerError()],
        right: [props.restApi.api.metricLatency({ statistic: 'p99' })],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'DynamoDB throttles',
        left: tableNames.map((role) =>
          props.tables.metricThrottles(props.tables.all[role as keyof ItapiTables['all']], { label: role }),
        ),
        width: 8,
      }),
    );
  }

  private alarm(
    id: string,
    metric: cloudwatch.IMetric,
    options: Partial<cloudwatch.CreateAlarmOptions> & { threshold: number; description: string },
  ): cloudwatch.Alarm {
    const { description, ...rest } = options;
    const created = new cloudwatch.Alarm(this, id, {
      alarmName: `${this.alarmNamePrefix}-${id}`,
      metric,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      ...rest,
      alarmDescription: description,
    });
    const action = new cwActions.SnsAction(this.topic);
    created.addAlarmAction(action);
    created.addOkAction(action);
    this.alarms.push(created);
    return created;
  }
}
