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
  /** A speculative upstream call cut before its answer was relayed (chat/overlap.ts): refused, limit_changed, client_closed, key_refused or key_changed. */
  speculativeCallCancelled?(reason: string): void;
}

/** The CloudWatch units these metrics use. */
type Unit = 'Count' | 'Milliseconds';

const REQUEST_METRICS = '{"Name":"Requests","Unit":"Count"},{"Name":"Latency","Unit":"Milliseconds"},{"Name":"Http5xx","Unit":"Count"}';
const REQUEST_METRICS_TTFT = `${REQUEST_METRICS},{"Name":"TimeToFirstToken","Unit":"Milliseconds"}`;

/** A finite number as JSON (EMF drops a line whose metric is not a number). */
const num = (n: number) => (Number.isFinite(n) ? String(n) : '0');

/**
 * Powertools' rule, kept now that every line is written by hand (no Powertools at init, issue 22):
 * POWERTOOLS_METRICS_DISABLED, else POWERTOOLS_DEV.
 */
function metricsDisabled(env: NodeJS.ProcessEnv): boolean {
  const truthy = (v: string | undefined) => ['1', 'y', 'yes', 't', 'true', 'on'].includes((v ?? '').trim().toLowerCase());
  return env.POWERTOOLS_METRICS_DISABLED !== undefined ? truthy(env.POWERTOOLS_METRICS_DISABLED) : truthy(env.POWERTOOLS_DEV);
}

export function emfMetrics(namespace = process.env.ITAPI_METRICS_NAMESPACE ?? 'Itapi'): MetricsSink {
  const providerOf = (route: string | undefined) => route?.split(':')[0] ?? 'none';
  const ns = JSON.stringify(namespace);
  const disabled = metricsDisabled(process.env);
  /** One EMF line: the service dimension and `dimensions` as one dimension set, the metrics' values and the metadata beside them. */
  const emit = (dimensions: Record<string, string>, metrics: Array<[name: string, unit: Unit, value: number]>, metadata: Record<string, string> = {}) => {
    if (disabled) return;
    const names = Object.keys(dimensions);
    const directive = `{"Namespace":${ns},"Dimensions":[${JSON.stringify(['service', ...names])}],"Metrics":[${metrics.map(([name, unit]) => `{"Name":"${name}","Unit":"${unit}"}`).join(',')}]}`;
    let fields = `"service":"itapi"`;
    for (const name of names) fields += `,"${name}":${JSON.stringify(dimensions[name])}`;
    for (const [name, , value] of metrics) fields += `,"${name}":${num(value)}`;
    for (const [name, value] of Object.entries(metadata)) fields += `,"${name}":${JSON.stringify(value)}`;
    process.stdout.write(`{"_aws":{"Timestamp":${Date.now()},"CloudWatchMetrics":[${directive}]},${fields}}\n`);
  };
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
      // 0 or 1 UpstreamErrors on every call, so the error rate has a data point whenever the provider is called.
      const metadata: Record<string, string> = { route: a.route, status: String(a.status) };
      if (a.errorCode) metadata.error_code = a.errorCode;
      metadata.request_id = a.requestId;
      emit({ Provider: a.provider }, [['UpstreamRequests', 'Count', 1], ['UpstreamErrors', 'Count', a.failed ? 1 : 0], ['UpstreamLatency', 'Milliseconds', a.latencyMs]], metadata);
    },
    cost(model, route, costMicroUsd) {
      // No route served it (every route failed): nothing was charged, and no provider to file it under.
      if (!route) return;
      emit({ Model: model, Provider: providerOf(route) }, [['CostMicroUsd', 'Count', costMicroUsd]]);
    },
    // Service dimension only, so that one alarm covers every model.
    uncharged(_model, microUsd) {
      emit({}, [['UnchargedMicroUsd', 'Count', microUsd]]);
    },
    abandoned() {
      emit({}, [['AbandonedHolds', 'Count', 1]]);
    },
    stripeEventIgnored(reason) {
      emit({}, [['StripeEventsIgnored', 'Count', 1]], { reason });
    },
    alertDeliveryFailed(channel) {
      emit({}, [['AlertDeliveriesFailed', 'Count', 1]], { channel });
    },
    // Both every day, zeros included, so the alarm always has a data point to judge.
    routeShutdowns(near, past) {
      const metadata: Record<string, string> = {};
      if (near.length) metadata.near = near.map((s) => `${s.model} ${s.route} ${s.shutdownDate}`).join('; ');
      emit({}, [['RoutesNearShutdown', 'Count', near.length], ['RoutesPastShutdown', 'Count', past.length]], metadata);
    },
    lateSettlement(_model, differenceMicroUsd) {
      emit({}, [['LateSettlements', 'Count', 1], ['LateSettlementMicroUsd', 'Count', differenceMicroUsd]]);
    },
    speculativeCallCancelled(reason) {
      emit({ Reason: reason }, [['SpeculativeCallsCancelled', 'Count', 1]]);
    },
    // 0 or more on every run, so a missing data point means the reconciliation did not run.
    holdsMismatch(accounts) {
      emit({}, [['HoldsMismatchedAccounts', 'Count', accounts]]);
    },
  };
}
