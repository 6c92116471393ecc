import { axisDollars, compact, count, dollars, exactDollars } from './format';
import type { UsageSummaryJson } from './types';

/**
 * A stacked bar chart of one metric per day and model, drawn as SVG by hand: a few dozen
 * rectangles need no charting library, and the same markup renders on the server and in the
 * browser. Colours come from the stylesheet (`series-N`), never inline styles (the CSP forbids them).
 */

export type ChartMetric = 'cost' | 'tokens';

export const CHART_WIDTH = 720;
export const CHART_HEIGHT = 220;
const MARGIN = { top: 10, right: 8, bottom: 24, left: 60 };
export const PLOT_HEIGHT = CHART_HEIGHT - MARGIN.top - MARGIN.bottom;
const PLOT_WIDTH = CHART_WIDTH - MARGIN.left - MARGIN.right;
/** Distinct colours in the stylesheet; models beyond them reuse colours in order. */
export const SERIES_COLOURS = 8;
const MAX_X_LABELS = 8;

export const seriesClass = (index: number) => `series-${index % SERIES_COLOURS}`;

const valueOf = (metric: ChartMetric, m: { cost_micro_usd: number; total_tokens: number }) =>
  metric === 'cost' ? m.cost_micro_usd : m.total_tokens;

/** The y axis never shrinks below a cent or 10 tokens, so an empty chart still reads sensibly. */
const MIN_Y_MAX: Record<ChartMetric, number> = { cost: 10_000, tokens: 10 };

/** The smallest 1, 2 or 5 × 10^n at or above `value` (1 for nothing): the top of the y axis. */
export function niceCeiling(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

/** One rectangle of the chart: a model's share of a day. */
export interface ChartSegment {
  date: string;
  model: string;
  series: number;
  value: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The chart's geometry, apart from its markup so tests can check it. */
export function chartLayout(summary: UsageSummaryJson, metric: ChartMetric): { yMax: number; segments: ChartSegment[]; slot: number } {
  const dayTotals = summary.days.map((d) => Object.values(d.models).reduce((sum, m) => sum + valueOf(metric, m), 0));
  const yMax = niceCeiling(Math.max(MIN_Y_MAX[metric], ...dayTotals));
  const slot = PLOT_WIDTH / Math.max(1, summary.days.length);
  const width = Math.max(1, slot * 0.72);
  const segments: ChartSegment[] = [];
  summary.days.forEach((d, i) => {
    let top = MARGIN.top + PLOT_HEIGHT;
    summary.models.forEach((model, series) => {
      const m = d.models[model];
      const value = m ? valueOf(metric, m) : 0;
      if (value <= 0) return;
      const height = (value / yMax) * PLOT_HEIGHT;
      top -= height;
      segments.push({ date: d.date, model, series, value, x: MARGIN.left + i * slot + (slot - width) / 2, y: top, width, height });
    });
  });
  return { yMax, segments, slot };
}

const round = (n: number) => Math.round(n * 100) / 100;

export function UsageChart(props: { summary: UsageSummaryJson; metric: ChartMetric; title: string }) {
  const { summary, metric } = props;
  const { yMax, segments, slot } = chartLayout(summary, metric);
  const label = metric === 'cost' ? axisDollars : compact;
  const ticks = [0, yMax / 2, yMax];
  const every = Math.max(1, Math.ceil(summary.days.length / MAX_X_LABELS));
  const total = segments.reduce((sum, s) => sum + s.value, 0);
  const describe = metric === 'cost' ? `${props.title}: ${dollars(total)} in total` : `${props.title}: ${count(total)} tokens in total`;
  return (
    <figure class="chart" data-metric={metric}>
      <figcaption>{props.title}</figcaption>
      <svg class="chart-svg" viewBox={`0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`} role="img" aria-label={describe}>
        {ticks.map((t) => {
          const y = round(MARGIN.top + PLOT_HEIGHT - (t / yMax) * PLOT_HEIGHT);
          return (
            <g class="tick">
              <line x1={MARGIN.left} x2={CHART_WIDTH - MARGIN.right} y1={y} y2={y} />
              <text x={MARGIN.left - 6} y={y + 4} text-anchor="end">
                {label(t)}
              </text>
            </g>
          );
        })}
        {segments.map((s) => (
          <rect class={`bar ${seriesClass(s.series)}`} x={round(s.x)} y={round(s.y)} width={round(s.width)} height={round(Math.max(s.height, 0.5))} data-date={s.date} data-model={s.model}>
            <title>{`${s.date} · ${s.model}: ${metric === 'cost' ? exactDollars(s.value) : `${count(s.value)} tokens`}`}</title>
          </rect>
        ))}
        {summary.days.map((d, i) =>
          i % every === 0 || (i === summary.days.length - 1 && i % every >= every / 2) ? (
            <text class="day" x={round(MARGIN.left + i * slot + slot / 2)} y={CHART_HEIGHT - 6} text-anchor="middle">
              {d.date.slice(5)}
            </text>
          ) : null,
        )}
      </svg>
    </figure>
  );
}

export function ChartLegend(props: { models: string[] }) {
  if (!props.models.length) return null;
  return (
    <ul class="legend">
      {props.models.map((model, i) => (
        <li>
          <span class={`swatch ${seriesClass(i)}`} aria-hidden="true" />
          {model}
        </li>
      ))}
    </ul>
  );
}
