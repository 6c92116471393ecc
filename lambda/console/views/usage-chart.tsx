import { axisDollars, compact, count, dollars, exactDollars } from './format';
import type { UsageSummaryJson } from './types';

/**
 * A stacked bar chart of one metric per day and series (a model, or "Other"), drawn by hand: a few
 * dozen rectangles need no charting library, and the same markup renders on the server and in
 * the browser. The bars are an SVG stretched to the plot's box; every word (axes, legend, the
 * value read out) is HTML, so text is the stylesheet's size at any width, never scaled down with
 * the drawing. Each day is one focusable mark whose label is read out beside the chart (keyboard,
 * touch); a table gives the same values. Colours come from the stylesheet (`series-N`), never
 * inline styles (the CSP forbids them).
 */

export type ChartMetric = 'cost' | 'tokens';

/** The drawing's own units: 10 per day across, 100 up. */
const SLOT = 10;
export const PLOT_HEIGHT = 100;
const BAR_WIDTH = 7.2;
/** Distinct colours in the stylesheet: up to this many models each get their own; beyond, the rest share "Other". */
export const SERIES_COLOURS = 12;
export const OTHER = 'Other';
const MAX_X_LABELS = 8;

export const seriesClass = (index: number, name?: string) => (name === OTHER ? 'series-other' : `series-${index}`);

/** One line of the legend and the stack: a model, or the models beyond the first eleven. */
export interface ChartSeries {
  name: string;
  models: string[];
}

/** The models, costliest first, as at most `SERIES_COLOURS` series: all of them, or eleven and "Other". */
export function chartSeries(models: string[]): ChartSeries[] {
  if (models.length <= SERIES_COLOURS) return models.map((m) => ({ name: m, models: [m] }));
  const named = models.slice(0, SERIES_COLOURS - 1).map((m) => ({ name: m, models: [m] }));
  return [...named, { name: OTHER, models: models.slice(SERIES_COLOURS - 1) }];
}

const valueOf = (metric: ChartMetric, m: { cost_micro_usd: number; total_tokens: number } | undefined) =>
  !m ? 0 : metric === 'cost' ? m.cost_micro_usd : m.total_tokens;

/** The y axis never shrinks below a cent or 10 tokens, so an empty chart still reads sensibly. */
const MIN_Y_MAX: Record<ChartMetric, number> = { cost: 10_000, tokens: 10 };

/** The smallest 1, 2 or 5 × 10^n at or above `value` (1 for nothing): the top of the y axis. */
export function niceCeiling(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

/** One rectangle of the chart: a series' share of a day, in the drawing's units. */
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
export function chartLayout(
  summary: UsageSummaryJson,
  metric: ChartMetric,
): { yMax: number; segments: ChartSegment[]; slot: number; series: ChartSeries[]; width: number } {
  const series = chartSeries(summary.models);
  const dayTotals = summary.days.map((d) => Object.values(d.models).reduce((sum, m) => sum + valueOf(metric, m), 0));
  const yMax = niceCeiling(Math.max(MIN_Y_MAX[metric], ...dayTotals));
  const segments: ChartSegment[] = [];
  summary.days.forEach((d, i) => {
    let top = PLOT_HEIGHT;
    series.forEach((s, index) => {
      const value = s.models.reduce((sum, model) => sum + valueOf(metric, d.models[model]), 0);
      if (value <= 0) return;
      const height = (value / yMax) * PLOT_HEIGHT;
      top -= height;
      segments.push({ date: d.date, model: s.name, series: index, value, x: i * SLOT + (SLOT - BAR_WIDTH) / 2, y: top, width: BAR_WIDTH, height });
    });
  });
  return { yMax, segments, slot: SLOT, series, width: Math.max(1, summary.days.length) * SLOT };
}

const round = (n: number) => Math.round(n * 1000) / 1000;

export function UsageChart(props: { summary: UsageSummaryJson; metric: ChartMetric; title: string }) {
  const { summary, metric } = props;
  const { yMax, segments, series, width } = chartLayout(summary, metric);
  const axis = metric === 'cost' ? axisDollars : compact;
  const value = (v: number) => (metric === 'cost' ? exactDollars(v) : `${count(v)} tokens`);
  const every = Math.max(1, Math.ceil(summary.days.length / MAX_X_LABELS));
  const total = segments.reduce((sum, s) => sum + s.value, 0);
  const describe = metric === 'cost' ? `${props.title}: ${dollars(total)} in total` : `${props.title}: ${count(total)} tokens in total`;
  const dayLabel = (date: string) => {
    const parts = segments.filter((s) => s.date === date);
    const sum = parts.reduce((n, s) => n + s.value, 0);
    if (!parts.length) return `${date}: nothing`;
    return `${date}: ${value(sum)}${parts.length > 1 ? ` (${parts.map((s) => `${s.model} ${value(s.value)}`).join(', ')})` : ` (${parts[0].model})`}`;
  };
  const captionId = `chart-${metric}-readout`;
  return (
    <figure class="chart" data-metric={metric}>
      <figcaption>{props.title}</figcaption>
      <div class="chart-body">
        <div class="y-axis" aria-hidden="true">
          <span>{axis(yMax)}</span>
          <span>{axis(yMax / 2)}</span>
          <span>{axis(0)}</span>
        </div>
        <div class="plot">
          <svg class="chart-svg" viewBox={`0 0 ${width} ${PLOT_HEIGHT}`} preserveAspectRatio="none" role="group" aria-label={describe}>
            {[0, PLOT_HEIGHT / 2, PLOT_HEIGHT].map((y) => (
              <line class="grid" x1={0} x2={width} y1={y} y2={y} vector-effect="non-scaling-stroke" />
            ))}
            {segments.map((s) => (
              <rect
                class={`bar ${seriesClass(s.series, s.model)}`}
                x={round(s.x)}
                y={round(s.y)}
                width={round(s.width)}
                height={round(Math.max(s.height, 0.4))}
                data-date={s.date}
                data-model={s.model}
              >
                <title>{`${s.date} · ${s.model}: ${value(s.value)}`}</title>
              </rect>
            ))}
            {summary.days.map((d, i) => (
              <rect
                class="day-mark"
                x={i * SLOT}
                y={0}
                width={SLOT}
                height={PLOT_HEIGHT}
                tabindex={0}
                role="img"
                aria-label={dayLabel(d.date)}
                data-date={d.date}
              >
                <title>{dayLabel(d.date)}</title>
              </rect>
            ))}
          </svg>
          <div class="x-axis" aria-hidden="true">
            {summary.days.map((d, i) => (
              <span>{i % every === 0 ? d.date.slice(5) : ''}</span>
            ))}
          </div>
        </div>
      </div>
      <p class="readout" id={captionId} aria-live="polite">
        Tap or focus a day to read its values.
      </p>
      <details class="chart-table">
        <summary>{props.title} as a table</summary>
        <div class="table-scroll" tabindex={0} role="region" aria-label={`${props.title} as a table`}>
          <table>
            <thead>
              <tr>
                <th scope="col">Day</th>
                {series.map((s) => (
                  <th scope="col" class="num">
                    {s.name}
                  </th>
                ))}
                <th scope="col" class="num">
                  Total
                </th>
              </tr>
            </thead>
            <tbody>
              {summary.days
                .filter((d) => segments.some((s) => s.date === d.date))
                .map((d) => {
                  const parts = segments.filter((s) => s.date === d.date);
                  return (
                    <tr>
                      <th scope="row">{d.date}</th>
                      {series.map((s) => (
                        <td class="num">{value(parts.find((p) => p.model === s.name)?.value ?? 0)}</td>
                      ))}
                      <td class="num">{value(parts.reduce((n, p) => n + p.value, 0))}</td>
                    </tr>
                  );
                })}
            </tbody>
          </table>
        </div>
      </details>
    </figure>
  );
}

export function ChartLegend(props: { models: string[] }) {
  if (!props.models.length) return null;
  return (
    <ul class="legend">
      {chartSeries(props.models).map((s, i) => (
        <li title={s.name === OTHER ? s.models.join(', ') : undefined}>
          <span class={`swatch ${seriesClass(i, s.name)}`} aria-hidden="true" />
          {s.name === OTHER ? `Other (${s.models.length} models)` : s.name}
        </li>
      ))}
    </ul>
  );
}
