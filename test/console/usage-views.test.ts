import { GatewayError } from '../../lambda/contract/errors';
import { csvRow, CSV_COLUMNS, dayRange, decodeCursor, encodeCursor, MAX_RANGE_DAYS, summarizeUsage, usageCsv } from '../../lambda/console/usage';
import { axisDollars, dollars } from '../../lambda/console/views/format';
import { CONSOLE_CSS } from '../../lambda/console/styles';
import { perMtok } from '../../lambda/console/views/format';
import { chartLayout, chartSeries, niceCeiling, PLOT_HEIGHT, seriesClass, UsageChart } from '../../lambda/console/views/usage-chart';
import type { LedgerEntry } from '../../lambda/store/usage';

/** The console's usage arithmetic and drawing, without a server. */

const DAY = 24 * 3600 * 1000;
const at = (iso: string) => Date.parse(iso);

function request(id: string, iso: string, model: string, costMicroUsd: number, prompt = 10, completion = 5): LedgerEntry {
  return { accountId: 'a', kind: 'request', atMs: at(iso), id, amountMicroUsd: -costMicroUsd, model, route: `mock:${model}`, status: 'completed', httpStatus: 200, promptTokens: prompt, completionTokens: completion };
}

describe('dayRange', () => {
  it('takes UTC days, both ends included', () => {
    const r = dayRange('2025-01-30', '2025-02-02', at('2025-06-01T00:00:00Z'));
    expect(r).toEqual({ from: '2025-01-30', to: '2025-02-02', fromMs: at('2025-01-30T00:00:00Z'), toMs: at('2025-02-03T00:00:00Z') - 1 });
  });

  it('defaults to the 30 days ending today', () => {
    const r = dayRange(undefined, undefined, at('2025-03-10T23:59:00Z'));
    expect(r.to).toBe('2025-03-10');
    expect(r.from).toBe('2025-02-09');
  });

  it.each([
    ['2025-02-29', undefined, 'from'],
    ['2025-1-01', undefined, 'from'],
    [undefined, '2025-13-01', 'to'],
    ['2025-03-02', '2025-03-01', 'from'],
  ])('refuses from=%s to=%s, naming %s', (from, to, param) => {
    expect(() => dayRange(from, to, at('2025-06-01T00:00:00Z'))).toThrow(expect.objectContaining({ status: 400, param }));
  });

  it(`covers at most ${MAX_RANGE_DAYS} days`, () => {
    expect(() => dayRange('2024-01-01', '2024-12-31', 0)).not.toThrow();
    expect(() => dayRange('2024-01-01', '2025-01-01', 0)).toThrow(GatewayError);
  });
});

describe('summarizeUsage', () => {
  const range = dayRange('2025-01-01', '2025-01-03', 0);
  const entries = [
    request('r1', '2025-01-01T00:00:00Z', 'gpt-4o', 500),
    request('r2', '2025-01-01T23:59:59.999Z', 'gpt-4o-mini', 20, 100, 50),
    request('r3', '2025-01-03T10:00:00Z', 'gpt-4o-mini', 30, 7, 3),
    request('r4', '2025-01-03T11:00:00Z', 'gpt-4o', 700, 1, 1),
  ];

  it('puts every request on its UTC day and model, with every day present, costliest model first', () => {
    const s = summarizeUsage(entries, range);
    expect(s.days.map((d) => d.date)).toEqual(['2025-01-01', '2025-01-02', '2025-01-03']);
    expect(s.models).toEqual(['gpt-4o', 'gpt-4o-mini']);
    expect(s.days[0].models).toEqual({
      'gpt-4o': { requests: 1, prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, cost_micro_usd: 500 },
      'gpt-4o-mini': { requests: 1, prompt_tokens: 100, completion_tokens: 50, total_tokens: 150, cost_micro_usd: 20 },
    });
    expect(s.days[1].models).toEqual({});
    expect(s.totals).toMatchObject({ requests: 4, prompt_tokens: 118, completion_tokens: 59, total_tokens: 177, cost_micro_usd: 1250 });
  });

  it('ignores top-ups and anything outside the range', () => {
    const topUp: LedgerEntry = { accountId: 'a', kind: 'topup', atMs: at('2025-01-02T00:00:00Z'), id: 'ref', amountMicroUsd: 5_000_000 };
    const s = summarizeUsage([...entries, topUp, request('old', '2024-12-31T23:59:59Z', 'gpt-4o', 999)], range);
    expect(s.totals.cost_micro_usd).toBe(1250);
    expect(s.totals.requests).toBe(4);
  });
});

describe('the usage chart', () => {
  const summary = summarizeUsage(
    [
      request('a', '2025-01-01T01:00:00Z', 'm1', 300),
      request('b', '2025-01-01T02:00:00Z', 'm2', 100),
      request('c', '2025-01-02T01:00:00Z', 'm2', 650),
    ],
    dayRange('2025-01-01', '2025-01-03', 0),
  );

  it('has a 1-2-5 axis top at or above the highest day', () => {
    expect([0, 1, 7, 10, 11, 20, 21, 499, 501, 10_000].map(niceCeiling)).toEqual([1, 1, 10, 10, 20, 20, 50, 500, 1000, 10_000]);
  });

  it('stacks each day’s models to the day’s total, in proportion to the axis', () => {
    const { yMax, segments } = chartLayout(summary, 'cost');
    expect(yMax).toBe(10_000); // a cent at least
    const day1 = segments.filter((s) => s.date === '2025-01-01');
    expect(day1.map((s) => [s.model, s.value])).toEqual([
      ['m2', 100],
      ['m1', 300],
    ]);
    expect(day1.reduce((sum, s) => sum + s.height, 0)).toBeCloseTo((400 / yMax) * PLOT_HEIGHT, 6);
    // Stacked: each segment sits on the one below it.
    expect(day1[1].y + day1[1].height).toBeCloseTo(day1[0].y, 6);
    expect(segments.filter((s) => s.date === '2025-01-03')).toEqual([]);
    const tokens = chartLayout(summary, 'tokens');
    expect(tokens.yMax).toBe(50); // day one: 30 tokens
    expect(tokens.segments.find((s) => s.date === '2025-01-02')!.height).toBeCloseTo((15 / 50) * PLOT_HEIGHT, 6);
  });

  it('renders as SVG with no inline style and a tooltip per bar', () => {
    const svg = String(UsageChart({ summary, metric: 'cost', title: 'Spend per day' }));
    expect(svg).toContain('<svg');
    expect(svg).not.toMatch(/\sstyle=/);
    expect(svg.match(/<rect class="bar /g)).toHaveLength(3);
    expect(svg).toContain('<title>2025-01-02 · m2: $0.000650</title>');
    expect(svg).toContain('aria-label="Spend per day: $0.00105 in total"');
  });

  it('puts no text inside the drawing (so none is scaled down with it): axes and values are HTML', () => {
    const html = String(UsageChart({ summary, metric: 'cost', title: 'Spend per day' }));
    expect(html).not.toContain('<text');
    expect(html).toMatch(/<div class="y-axis"[^>]*><span>\$0\.01<\/span><span>\$0\.005<\/span><span>\$0\.00<\/span>/);
    expect(html).toMatch(/<div class="x-axis"[^>]*><span>01-01<\/span><span>01-02<\/span><span>01-03<\/span>/);
  });

  it('makes each day one focusable mark whose label states its values, and gives the same values as a table', () => {
    const html = String(UsageChart({ summary, metric: 'cost', title: 'Spend per day' }));
    const marks = [...html.matchAll(/<rect class="day-mark"[^>]*>/g)].map((m) => m[0]);
    expect(marks).toHaveLength(3);
    for (const mark of marks) expect(mark).toContain('tabindex="0"');
    expect(marks[0]).toContain('aria-label="2025-01-01: $0.000400 (m2 $0.000100, m1 $0.000300)"');
    expect(marks[1]).toContain('aria-label="2025-01-02: $0.000650 (m2)"');
    expect(marks[2]).toContain('aria-label="2025-01-03: nothing"');
    const table = html.slice(html.indexOf('<table'));
    expect(table).toContain('<th scope="col" class="num">m2</th><th scope="col" class="num">m1</th>');
    expect(table).toContain('<th scope="row">2025-01-01</th><td class="num">$0.000100</td><td class="num">$0.000300</td><td class="num">$0.000400</td>');
    expect(table).not.toContain('2025-01-03');
  });

  it('gives up to 12 models a colour each, and groups the rest as Other', () => {
    const names = (n: number) => Array.from({ length: n }, (_, i) => `model-${String(i).padStart(2, '0')}`);
    const twelve = chartSeries(names(12));
    expect(twelve.map((s) => s.name)).toEqual(names(12));
    expect(new Set(twelve.map((s, i) => seriesClass(i, s.name))).size).toBe(12);
    const fifteen = chartSeries(names(15));
    expect(fifteen).toHaveLength(12);
    expect(fifteen.at(-1)).toEqual({ name: 'Other', models: names(15).slice(11) });
    expect(new Set(fifteen.map((s, i) => seriesClass(i, s.name))).size).toBe(12);
    // Every class has its own colour in the stylesheet.
    const colours = [...Array.from({ length: 12 }, (_, i) => `series-${i}`), 'series-other'].map((cls) => new RegExp(`\\.${cls} \\{ fill: (#[0-9a-f]{6});`).exec(CONSOLE_CSS)?.[1]);
    expect(colours.every(Boolean)).toBe(true);
    expect(new Set(colours).size).toBe(13);
    // The Other stack is the sum of the models in it.
    const many = summarizeUsage(
      names(15).map((m, i) => request(`r${i}`, '2025-01-01T01:00:00Z', m, 1000 - i)),
      dayRange('2025-01-01', '2025-01-01', 0),
    );
    const other = chartLayout(many, 'cost').segments.filter((s) => s.model === 'Other');
    expect(other).toHaveLength(1);
    expect(other[0].value).toBe((1000 - 11) + (1000 - 12) + (1000 - 13) + (1000 - 14));
  });

  it('labels axes readably at any scale', () => {
    expect([0, 2_500, 10_000, 5_000_000, 12_345_678_900].map(axisDollars)).toEqual(['$0.00', '$0.0025', '$0.01', '$5.00', '$12,345.6789']);
    expect([0, 4_200, 10_000, 12_345_678, 5_000].map(dollars)).toEqual(['$0.00', '$0.0042', '$0.01', '$12.35', '$0.005']);
  });
});

it('writes prices per 1M tokens as plain numbers, every decimal they have, and — for none', () => {
  expect([2.5, 0.075, 15, 0, 1234.5, 0.000123, null].map(perMtok)).toEqual(['2.50', '0.075', '15.00', '0.00', '1,234.50', '0.000123', '—']);
});

describe('CSV', () => {
  it('quotes fields with commas, quotes or line breaks (RFC 4180)', () => {
    const row = csvRow({ ...request('req_1', '2025-01-01T00:00:00Z', 'm,1', 1_234_567), errorCode: 'say "hi"\nbye' });
    expect(row).toBe('2025-01-01T00:00:00.000Z,req_1,,"m,1","mock:m,1",completed,200,"say ""hi""\nbye",10,5,0,1.234567,1234567,,false,0,0,0,0,\r\n');
  });

  it('streams a header, then every page of rows', async () => {
    const pages = [
      { items: [request('r1', '2025-01-01T00:00:00Z', 'm', 1)], lastSk: 'sk1' },
      { items: [request('r2', '2025-01-01T00:00:01Z', 'm', 2)], lastSk: undefined },
    ];
    const asked: Array<string | undefined> = [];
    const stream = usageCsv(async (options) => {
      asked.push(options.after);
      expect(options.oldestFirst).toBe(true);
      return pages.shift()!;
    });
    const text = await new Response(stream).text();
    const lines = text.trimEnd().split('\r\n');
    expect(lines[0]).toBe(CSV_COLUMNS.join(','));
    expect(lines.slice(1).map((l) => l.split(',')[1])).toEqual(['r1', 'r2']);
    expect(asked).toEqual([undefined, 'sk1']);
  });
});

describe('ledger cursors', () => {
  it('round-trip a ledger sort key and refuse anything else', () => {
    const entry = request('req_abc', '2025-01-01T00:00:00Z', 'm', 1);
    const range = { fromMs: entry.atMs - 1000, toMs: entry.atMs + 1000 };
    expect(decodeCursor(encodeCursor(entry), range)).toBe(`${String(entry.atMs).padStart(13, '0')}#req_abc`);
    for (const bad of ['', '!!!', Buffer.from('topup#initial').toString('base64url'), Buffer.from('123#x').toString('base64url')]) {
      expect(() => decodeCursor(bad, range)).toThrow(expect.objectContaining({ status: 400, param: 'cursor' }));
    }
    // A cursor of another range.
    expect(() => decodeCursor(encodeCursor(entry), { fromMs: entry.atMs + 1, toMs: entry.atMs + 1000 })).toThrow(expect.objectContaining({ status: 400, param: 'cursor' }));
  });
});

it('a day is 24 hours in UTC whatever the machine’s time zone', () => {
  expect(dayRange('2025-03-30', '2025-03-30', 0).toMs - dayRange('2025-03-30', '2025-03-30', 0).fromMs + 1).toBe(DAY);
});
