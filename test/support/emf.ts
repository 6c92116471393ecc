/** One data point as CloudWatch extracts it from an EMF log line. */
export interface EmfDataPoint {
  namespace: string;
  metric: string;
  /** Dimension name → value, for exactly the dimension set the line declared. */
  dimensions: Record<string, string>;
  value: number;
  unit?: string;
}

interface EmfLine {
  _aws?: {
    Timestamp?: number;
    CloudWatchMetrics?: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string; Unit?: string }> }>;
  };
  [field: string]: unknown;
}

/**
 * The data points of EMF lines, following the specification
 * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
 * each directive's metrics, once per dimension set, with the values of the line's top-level fields.
 * Lines that are not EMF (other logs) are skipped; a malformed EMF line throws.
 */
export function emfDataPoints(lines: readonly string[]): EmfDataPoint[] {
  const points: EmfDataPoint[] = [];
  for (const line of lines) {
    if (!line.includes('"_aws"')) continue;
    const doc = JSON.parse(line) as EmfLine;
    const aws = doc._aws;
    if (!aws || typeof aws.Timestamp !== 'number' || !Array.isArray(aws.CloudWatchMetrics)) throw new Error(`not EMF: ${line}`);
    for (const directive of aws.CloudWatchMetrics) {
      for (const set of directive.Dimensions) {
        if (set.length > 30) throw new Error(`more than 30 dimensions: ${line}`);
        const dimensions: Record<string, string> = {};
        for (const name of set) {
          if (typeof doc[name] !== 'string') throw new Error(`dimension ${name} has no string value: ${line}`);
          dimensions[name] = doc[name] as string;
        }
        for (const metric of directive.Metrics) {
          const raw = doc[metric.Name];
          for (const value of Array.isArray(raw) ? raw : [raw]) {
            if (typeof value !== 'number') throw new Error(`metric ${metric.Name} has no numeric value: ${line}`);
            points.push({ namespace: directive.Namespace, metric: metric.Name, dimensions, value, unit: metric.Unit });
          }
        }
      }
    }
  }
  return points;
}

/** Data points of one metric with exactly these dimensions (no more, no fewer). */
export function pointsOf(points: readonly EmfDataPoint[], namespace: string, metric: string, dimensions: Record<string, string>): EmfDataPoint[] {
  const wanted = Object.entries(dimensions).sort();
  return points.filter(
    (p) => p.namespace === namespace && p.metric === metric && JSON.stringify(Object.entries(p.dimensions).sort()) === JSON.stringify(wanted),
  );
}
