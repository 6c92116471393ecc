import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { RequestRecord } from '../chat/completions';

/** Per-request figures for CloudWatch, written as EMF log lines (no API call on the request path). */
export interface MetricsSink {
  record(record: RequestRecord): void;
  /** What a settled request cost, per model and provider. */
  cost(model: string, route: string | undefined, costMicroUsd: number): void;
  /** Usage beyond the hold that the balance could not pay (a provider past its output limit). */
  uncharged?(model: string, microUsd: number): void;
  /** A hold settled by the sweeper because its request never settled it. */
  abandoned?(model: string): void;
}

export function emfMetrics(namespace = process.env.ITAPI_METRICS_NAMESPACE ?? 'Itapi'): MetricsSink {
  const metrics = new Metrics({ namespace, serviceName: 'itapi' });
  return {
    cost(model, route, costMicroUsd) {
      const perModel = metrics.singleMetric();
      perModel.addDimensions({ Model: model, Provider: route?.split(':')[0] ?? 'none' });
      perModel.addMetric('CostMicroUsd', MetricUnit.Count, costMicroUsd);
    },
    // Service dimension only, so that one alarm covers every model.
    uncharged(_model, microUsd) {
      metrics.singleMetric().addMetric('UnchargedMicroUsd', MetricUnit.Count, microUsd);
    },
    abandoned() {
      metrics.singleMetric().addMetric('AbandonedHolds', MetricUnit.Count, 1);
    },
    record(r) {
      const provider = r.route?.split(':')[0] ?? 'none';
      metrics.addMetric('Requests', MetricUnit.Count, 1);
      metrics.addMetric('Latency', MetricUnit.Milliseconds, r.latencyMs);
      if (r.httpStatus >= 500 || r.status === 'failed') metrics.addMetric('Http5xx', MetricUnit.Count, r.httpStatus >= 500 ? 1 : 0);
      if (r.timeToFirstTokenMs !== undefined) metrics.addMetric('TimeToFirstToken', MetricUnit.Milliseconds, r.timeToFirstTokenMs);
      metrics.publishStoredMetrics();
      if (r.errorCode) {
        const errors = metrics.singleMetric();
        errors.addDimension('ErrorType', r.errorCode);
        errors.addMetric('Errors', MetricUnit.Count, 1);
      }
      // A single metric publishes as soon as it is added: one EMF line per dimension set.
      const upstream = metrics.singleMetric();
      upstream.addDimension('Provider', provider);
      upstream.addMetric('UpstreamRequests', MetricUnit.Count, 1);
      const upstreamErrors = metrics.singleMetric();
      upstreamErrors.addDimension('Provider', provider);
      upstreamErrors.addMetric('UpstreamErrors', MetricUnit.Count, r.status === 'failed' && r.httpStatus >= 500 ? 1 : 0);
      if (r.usage) {
        for (const [name, value] of [
          ['PromptTokens', r.usage.prompt_tokens],
          ['CompletionTokens', r.usage.completion_tokens],
        ] as const) {
          const perModel = metrics.singleMetric();
          perModel.addDimensions({ Model: r.model, Provider: provider });
          perModel.addMetric(name, MetricUnit.Count, value);
        }
      }
    },
  };
}
