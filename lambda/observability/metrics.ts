import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { RouteShutdown } from '../catalog/lifecycle';
import type { RequestObservation, UpstreamAttempt } from './records';

/**
 * Per-request and per-upstream-call figures for CloudWatch, written as EMF log lines (no API call
 * on the request path). Names and dimensions are the ones lib/itapi-metrics.ts reads:
 * `{service}`: Requests, Latency, Http5xx, TimeToFirstToken, UnchargedMicroUsd, AbandonedHolds,
 * StripeEventsIgnored, AlertDeliveriesFailed,
 * RoutesNearShutdown and RoutesPastShutdown (the daily catalog check),
 * LateSettlements, LateSettlementMicroUsd, HoldsMismatchedAccounts;
 * `{service, ErrorType}`: Errors; `{service, Reason}`: SpeculativeCallsCancelled; `{service, Provider}`: UpstreamRequests, UpstreamErrors, UpstreamLatency;
 * `{service, Model, Provider}`: PromptTokens, CompletionTokens, CostMicroUsd.
 */
export interface MetricsSink {
  /** One answered request, whatever its status: from the app's outermost layer. */
  request(observation: RequestObservation): void;
  /** One call to an upstream route: from the route loop. */
  upstreamAttempt(attempt: UpstreamAttempt): void;
  /** What a settled request cost, per model and provider. */
  cost(model: string, route: string | undefined, costMicroUsd: number): void;
  /** Usage beyond the hold that the balance could not pay (a provider past its output limit). */
  uncharged?(model: string, microUsd: number): void;
  /** A hold settled by the sweeper because its request never settled it. */
  abandoned?(model: string): void;
  /** A paid Stripe event that credited nothing (its reason is in the log line beside it). */
  stripeEventIgnored?(reason: string): void;
  /** A low-balance alert whose every delivery attempt failed. */
  alertDeliveryFailed?(channel: string): void;
  /** The daily catalog check: routes within the warning window of their shutdown, and routes past it. */
  routeShutdowns?(near: RouteShutdown[], past: RouteShutdown[]): void;
  /** A request's own settlement applied after the sweeper had settled its hold as abandoned: the difference charged. */
  lateSettlement?(model: string, differenceMicroUsd: number): void;
  /** The daily reconciliation: accounts whose `held` is not the sum of their hold items. */
  holdsMismatch?(accounts: number): void;
  /** A speculative upstream call cut before its answer was relayed (chat/overlap.ts): refused, limit_changed or client_closed. */
  speculativeCallCancelled?(reason: string): void;
}

const REQUEST_METRICS = '{"Name":"Requests","Unit":"Count"},{"Name":"Latency","Unit":"Milliseconds"},{"Name":"Http5xx","Unit":"Count"}';
const REQUEST_METRICS_TTFT = `${REQUEST_METRICS},{"Name":"TimeToFirstToken","Unit":"Milliseconds"}`;

/** A finite number as JSON (EMF drops a line whose metric is not a number). */
const num = (n: number) => (Number.isFinite(n) ? String(n) : '0');

/** Powertools' own rule, kept for the line written by hand: POWERTOOLS_METRICS_DISABLED, else POWERTOOLS_DEV. */
function metricsDisabled(env: NodeJS.ProcessEnv): boolean {
  const truthy = (v: string | undefined) => ['1', 'y', 'yes', 't', 'true', 'on'].includes((v ?? '').trim().toLowerCase());
  return env.POWERTOOLS_METRICS_DISABLED !== undefined ? truthy(env.POWERTOOLS_METRICS_DISABLED) : truthy(env.POWERTOOLS_DEV);
}

export function emfMetrics(namespace = process.env.ITAPI_METRICS_NAMESPACE ?? 'Itapi'): MetricsSink {
  // One instance: each publishStoredMetrics() writes one EMF line and clears the dimensions it had.
  const metrics = new Metrics({ namespace, serviceName: 'itapi' });
  const providerOf = (route: string | undefined) => route?.split(':')[0] ?? 'none';
  const ns = JSON.stringify(namespace);
  const disabled = metricsDisabled(process.env);
  return {
    // One EMF line per request, its three dimension sets as three directives, built as one string
    // (it used to be up to three Powertools publishes a request: three JSON documents, three writes).
    request(o) {
      if (disabled) return;
      const service = 'itapi';
      const directives = [`{"Namespace":${ns},"Dimensions":[["service"]],"Metrics":[${o.timeToFirstTokenMs !== undefined ? REQUEST_METRICS_TTFT : REQUEST_METRICS}]}`];
      let fields = `"service":"${service}","Requests":1,"Latency":${num(o.latencyMs)},"Http5xx":${o.serverError ? 1 : 0}`;
      if (o.timeToFirstTokenMs !== undefined) fields += `,"TimeToFirstToken":${num(o.timeToFirstTokenMs)}`;
      fields += `,"request_id":${JSON.stringify(o.requestId)},"status":"${o.status}"`;
      if (o.errorType) {
        directives.push(`{"Namespace":${ns},"Dimensions":[["service","ErrorType"]],"Metrics":[{"Name":"Errors","Unit":"Count"}]}`);
        fields += `,"ErrorType":${JSON.stringify(o.errorType)},"Errors":1`;
        if (o.errorCode) fields += `,"error_code":${JSON.stringify(o.errorCode)}`;
      }
      if (o.usage && o.model) {
        directives.push(`{"Namespace":${ns},"Dimensions":[["service","Model","Provider"]],"Metrics":[{"Name":"PromptTokens","Unit":"Count"},{"Name":"CompletionTokens","Unit":"Count"}]}`);
        fields += `,"Model":${JSON.stringify(o.model)},"Provider":${JSON.stringify(providerOf(o.route))},"PromptTokens":${num(o.usage.prompt_tokens)},"CompletionTokens":${num(o.usage.completion_tokens)}`;
      }
      process.stdout.write(`{"_aws":{"Timestamp":${Date.now()},"CloudWatchMetrics":[${directives.join(',')}]},${fields}}\n`);
    },
    upstreamAttempt(a) {
      metrics.addDimension('Provider', a.provider);
      metrics.addMetric('UpstreamRequests', MetricUnit.Count, 1);
      // 0 or 1 on every call, so the error rate has a data point whenever the provider is called.
      metrics.addMetric('UpstreamErrors', MetricUnit.Count, a.failed ? 1 : 0);
      metrics.addMetric('UpstreamLatency', MetricUnit.Milliseconds, a.latencyMs);
      metrics.addMetadata('route', a.route);
      metrics.addMetadata('status', String(a.status));
      if (a.errorCode) metrics.addMetadata('error_code', a.errorCode);
      metrics.addMetadata('request_id', a.requestId);
      metrics.publishStoredMetrics();
    },
    cost(model, route, costMicroUsd) {
      // No route served it (every route failed): nothing was charged, and no provider to file it under.
      if (!route) return;
      metrics.addDimensions({ Model: model, Provider: providerOf(route) });
      metrics.addMetric('CostMicroUsd', MetricUnit.Count, costMicroUsd);
      metrics.publishStoredMetrics();
    },
    // Service dimension only, so that one alarm covers every model.
    uncharged(_model, microUsd) {
      metrics.addMetric('UnchargedMicroUsd', MetricUnit.Count, microUsd);
      metrics.publishStoredMetrics();
    },
    abandoned() {
      metrics.addMetric('AbandonedHolds', MetricUnit.Count, 1);
      metrics.publishStoredMetrics();
    },
    stripeEventIgnored(reason) {
      metrics.addMetric('StripeEventsIgnored', MetricUnit.Count, 1);
      metrics.addMetadata('reason', reason);
      metrics.publishStoredMetrics();
    },
    alertDeliveryFailed(channel) {
      metrics.addMetric('AlertDeliveriesFailed', MetricUnit.Count, 1);
      metrics.addMetadata('channel', channel);
      metrics.publishStoredMetrics();
    },
    // Both every day, zeros included, so the alarm always has a data point to judge.
    routeShutdowns(near, past) {
      metrics.addMetric('RoutesNearShutdown', MetricUnit.Count, near.length);
      metrics.addMetric('RoutesPastShutdown', MetricUnit.Count, past.length);
      if (near.length) metrics.addMetadata('near', near.map((s) => `${s.model} ${s.route} ${s.shutdownDate}`).join('; '));
      metrics.publishStoredMetrics();
    },
    lateSettlement(_model, differenceMicroUsd) {
      metrics.addMetric('LateSettlements', MetricUnit.Count, 1);
      metrics.addMetric('LateSettlementMicroUsd', MetricUnit.Count, differenceMicroUsd);
      metrics.publishStoredMetrics();
    },
    speculativeCallCancelled(reason) {
      metrics.addDimension('Reason', reason);
      metrics.addMetric('SpeculativeCallsCancelled', MetricUnit.Count, 1);
      metrics.publishStoredMetrics();
    },
    // 0 or more on every run, so a missing data point means the reconciliation did not run.
    holdsMismatch(accounts) {
      metrics.addMetric('HoldsMismatchedAccounts', MetricUnit.Count, accounts);
      metrics.publishStoredMetrics();
    },
  };
}
