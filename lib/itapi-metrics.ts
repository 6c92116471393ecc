import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';

/** Default CloudWatch namespace of the runtime's EMF metrics (env `ITAPI_METRICS_NAMESPACE`). */
export const DEFAULT_METRICS_NAMESPACE = 'Itapi';

/**
 * The base dimension every runtime metric carries: lambda/observability/metrics.ts writes it as
 * `service` (lower case) in every EMF line, as Powertools Metrics' `serviceName` did.
 */
export const SERVICE_DIMENSION_NAME = 'service';
export const SERVICE_NAME = 'itapi';
export const SERVICE_DIMENSION: Readonly<Record<string, string>> = { [SERVICE_DIMENSION_NAME]: SERVICE_NAME };

/** Metric names the runtime emits as EMF (keep in step with the Lambda code). */
export const ItapiMetricName = {
  REQUESTS: 'Requests',
  ERRORS: 'Errors',
  LATENCY: 'Latency',
  TIME_TO_FIRST_TOKEN: 'TimeToFirstToken',
  UPSTREAM_REQUESTS: 'UpstreamRequests',
  UPSTREAM_ERRORS: 'UpstreamErrors',
  UPSTREAM_LATENCY: 'UpstreamLatency',
  PROMPT_TOKENS: 'PromptTokens',
  COMPLETION_TOKENS: 'CompletionTokens',
  COST_MICRO_USD: 'CostMicroUsd',
  HTTP_5XX: 'Http5xx',
  ABANDONED_HOLDS: 'AbandonedHolds',
  UNCHARGED_MICRO_USD: 'UnchargedMicroUsd',
  STRIPE_EVENTS_IGNORED: 'StripeEventsIgnored',
  ALERT_DELIVERIES_FAILED: 'AlertDeliveriesFailed',
  ROUTES_NEAR_SHUTDOWN: 'RoutesNearShutdown',
  ROUTES_PAST_SHUTDOWN: 'RoutesPastShutdown',
  LATE_SETTLEMENTS: 'LateSettlements',
  HOLDS_MISMATCHED_ACCOUNTS: 'HoldsMismatchedAccounts',
} as const;

/**
 * Typed handles on the runtime's EMF metrics (lambda/observability/metrics.ts). Dimension sets:
 * `{service}` for AbandonedHolds (the sweeper), UnchargedMicroUsd and LateSettlements (settlement),
 * HoldsMismatchedAccounts (the daily reconciliation), RoutesNearShutdown and RoutesPastShutdown
 * (the sweeper function's daily catalog check);
 * `{service}` for Requests, Latency, TimeToFirstToken, Http5xx — one record per request, whatever
 * its status, from the app's outermost layer (Http5xx is 0 or 1: a 5xx answer, or a stream ended
 * by an error event); `{service, ErrorType}` for Errors (ErrorType = the OpenAI error `type` the
 * client got: `rate_limit_exceeded`, `insufficient_quota`, `authentication_error`, …);
 * `{service, Provider}` for UpstreamRequests, UpstreamErrors (0 or 1: the call failed with a 5xx-class
 * error) and UpstreamLatency — one record per call of the route loop (Provider = the catalog route's
 * `provider`); `{service, Model, Provider}` for PromptTokens, CompletionTokens and CostMicroUsd.
 * test/lambda/metrics.test.ts checks every alarm's metric against what the runtime emits.
 */
export class ItapiMetrics {
  constructor(public readonly namespace: string = DEFAULT_METRICS_NAMESPACE) {}

  /** Any runtime metric by name, with `service=itapi` plus the given dimensions. */
  public metric(
    metricName: string,
    dimensions: Record<string, string> = {},
    props: cloudwatch.MetricOptions = {},
  ): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.namespace,
      metricName,
      statistic: 'Sum',
      period: Duration.minutes(5),
      ...props,
      dimensionsMap: { ...SERVICE_DIMENSION, ...dimensions, ...props.dimensionsMap },
    });
  }

  /** Requests answered, any status. */
  public requests(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.REQUESTS, {}, props);
  }

  /** Error answers of one type (`rate_limit_exceeded`, `insufficient_quota`, …). */
  public errors(errorType: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.ERRORS, { ErrorType: errorType }, props);
  }

  /** Answers with a 5xx status. */
  public http5xx(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.HTTP_5XX, {}, props);
  }

  /** End-to-end latency in ms; p99 by default. */
  public latency(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.LATENCY, {}, { statistic: 'p99', ...props });
  }

  /** Time to the first streamed token in ms; p99 by default. */
  public timeToFirstToken(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.TIME_TO_FIRST_TOKEN, {}, { statistic: 'p99', ...props });
  }

  public upstreamRequests(provider: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.UPSTREAM_REQUESTS, { Provider: provider }, props);
  }

  public upstreamErrors(provider: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.UPSTREAM_ERRORS, { Provider: provider }, props);
  }

  /** Time one upstream call took to answer (its first chunk, for a stream) or fail, in ms; p99 by default. */
  public upstreamLatency(provider: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.UPSTREAM_LATENCY, { Provider: provider }, { statistic: 'p99', ...props });
  }

  /** Cost in micro-USD charged for one model on one provider. */
  public costMicroUsd(model: string, provider: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.COST_MICRO_USD, { Model: model, Provider: provider }, props);
  }

  /** Holds the sweeper settled because their request never did (an instance killed mid-request). */
  public abandonedHolds(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.ABANDONED_HOLDS, {}, props);
  }

  /** Usage beyond a hold the balance could not pay: a provider that went past the output limit it was sent. */
  public unchargedMicroUsd(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.UNCHARGED_MICRO_USD, {}, props);
  }

  /** Paid Stripe events that credited nothing (other currency, ids that disagree, livemode, …): a customer charged, nothing credited. */
  public stripeEventsIgnored(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.STRIPE_EVENTS_IGNORED, {}, props);
  }

  /** Low-balance alerts whose every delivery attempt failed. */
  public alertDeliveriesFailed(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.ALERT_DELIVERIES_FAILED, {}, props);
  }

  /**
   * Catalog routes within 30 days of their `shutdown_date`, as the sweeper function's daily check
   * counts them (`{service}`, one data point a day); `itapi catalog check` prints the same.
   */
  public routesNearShutdown(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.ROUTES_NEAR_SHUTDOWN, {}, { statistic: 'Maximum', period: Duration.days(1), ...props });
  }

  /** Settlements that found their hold swept as abandoned and applied the difference late. */
  public lateSettlements(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.LATE_SETTLEMENTS, {}, props);
  }

  /** Accounts whose `held` disagreed with their hold items at the last reconciliation (Maximum by default). */
  public holdsMismatchedAccounts(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.metric(ItapiMetricName.HOLDS_MISMATCHED_ACCOUNTS, {}, { statistic: 'Maximum', ...props });
  }

  /** Share of requests answered with a 5xx, in percent; 0 while fewer than `minRequests` arrive. */
  public http5xxRatePercent(period = Duration.minutes(5), minRequests = 10): cloudwatch.MathExpression {
    return new cloudwatch.MathExpression({
      expression: `IF(FILL(req, 0) >= ${minRequests}, 100 * FILL(err, 0) / req, 0)`,
      usingMetrics: { req: this.requests({ period }), err: this.http5xx({ period }) },
      label: 'Gateway 5xx rate (%)',
      period,
    });
  }

  /** Share of upstream calls to `provider` that failed, in percent; 0 below `minRequests`. */
  public upstreamErrorRatePercent(
    provider: string,
    period = Duration.minutes(5),
    minRequests = 10,
  ): cloudwatch.MathExpression {
    // Ids unique per provider, so several providers can share one graph.
    const key = provider.toLowerCase().replace(/[^a-z0-9]/g, '_');
    const [req, err] = [`req_${key}`, `err_${key}`];
    return new cloudwatch.MathExpression({
      expression: `IF(FILL(${req}, 0) >= ${minRequests}, 100 * FILL(${err}, 0) / ${req}, 0)`,
      usingMetrics: {
        [req]: this.upstreamRequests(provider, { period }),
        [err]: this.upstreamErrors(provider, { period }),
      },
      label: `Upstream error rate ${provider} (%)`,
      period,
    });
  }

  /**
   * A dashboard SEARCH over one metric split by a dimension (e.g. tokens by model), which
   * shows every value the runtime has emitted without listing them here.
   */
  public searchBy(metricName: string, dimensions: string[], stat = 'Sum', period = Duration.minutes(5)): cloudwatch.MathExpression {
    const schema = [SERVICE_DIMENSION_NAME, ...dimensions].join(',');
    return new cloudwatch.MathExpression({
      expression: `SEARCH('{${this.namespace},${schema}} MetricName="${metricName}" ${SERVICE_DIMENSION_NAME}="${SERVICE_NAME}"', '${stat}', ${period.toSeconds()})`,
      usingMetrics: {},
      label: metricName,
      period,
    });
  }
}
