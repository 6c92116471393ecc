/** The console's stylesheet, served as `assets/console.css` (the CSP allows no inline styles). */
export const CONSOLE_CSS = `
:root {
  color-scheme: light dark;
  --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #f6f8fa; --panel: #fff;
  --accent: #0969da; --danger: #cf222e; --ok: #1a7f37; --on-accent: #fff;
  --notice-bg: #ddf4ff; --notice-line: #54aeff; --backdrop: rgba(31, 35, 40, 0.45); --mark: rgba(101, 109, 118, 0.16);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--fg); background: var(--bg);
}
/* Dark mode follows the system's setting; every colour below reads these variables. */
@media (prefers-color-scheme: dark) {
  :root {
    --fg: #e6edf3; --muted: #9da7b3; --line: #3d444d; --bg: #0d1117; --panel: #161b22;
    --accent: #4493f8; --danger: #f85149; --ok: #3fb950; --on-accent: #0d1117;
    --notice-bg: #0c2d6b; --notice-line: #1f6feb; --backdrop: rgba(1, 4, 9, 0.7); --mark: rgba(157, 167, 179, 0.2);
  }
}
* { box-sizing: border-box; }
body { margin: 0; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, "DejaVu Sans Mono", monospace; }
h1 { font-size: 1.25rem; margin: 0; }
h2 { font-size: 1.05rem; margin: 0 0 0.6rem; }
h3 { font-size: 0.95rem; margin: 1.2rem 0 0.5rem; }
.muted, .hint { color: var(--muted); }
.hint { font-size: 0.85rem; }
a { color: var(--accent); }
header.top { display: flex; align-items: center; flex-wrap: wrap; gap: 0.4rem 1rem; padding: 0.7rem 1.5rem; background: var(--panel); border-bottom: 1px solid var(--line); }
header.top .who { margin: 0 0 0 auto; overflow-wrap: anywhere; }
nav.pages { display: flex; gap: 0.9rem; }
nav.pages a { text-decoration: none; padding: 0.15rem 0; border-bottom: 2px solid transparent; }
nav.pages a[aria-current="page"] { color: var(--fg); border-bottom-color: var(--accent); font-weight: 600; }
header.top form { margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 1.2rem 1.5rem 3rem; }
main.narrow { max-width: 36rem; padding-top: 4rem; }
.row { display: flex; gap: 1rem; flex-wrap: wrap; }
.grow { flex: 1 1 20rem; display: flex; }
.grow > .panel { flex: 1; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.2rem; margin-bottom: 1rem; }
.panel-head { display: flex; align-items: center; gap: 1rem; flex-wrap: wrap; margin-bottom: 0.6rem; }
.panel-head h2 { margin: 0; }
.panel-head > :last-child { margin-left: auto; }
.balance { font-size: 2rem; font-weight: 600; margin: 0 0 0.5rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; margin: 0 0 0.5rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { text-align: left; padding: 0.4rem 0.5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.nowrap { white-space: nowrap; }
.status { display: inline-block; padding: 0 0.45rem; border-radius: 1rem; font-size: 0.8rem; border: 1px solid var(--line); }
.status-active { color: var(--ok); border-color: var(--ok); }
.status-revoked, .status-expired { color: var(--muted); }
tr.key-revoked td { color: var(--muted); }
button, a.button { font: inherit; font-size: 0.9rem; padding: 0.35rem 0.8rem; border-radius: 6px; border: 1px solid var(--line); background: var(--panel); color: var(--fg); cursor: pointer; text-decoration: none; display: inline-block; }
button:disabled { opacity: 0.5; cursor: default; }
button.primary { background: var(--accent); border-color: var(--accent); color: var(--on-accent); }
button.danger { color: var(--danger); border-color: var(--danger); }
dialog button.danger { background: var(--danger); color: var(--on-accent); }
button.link { border: none; background: none; color: var(--accent); padding: 0; }
input { font: inherit; padding: 0.3rem 0.45rem; border: 1px solid var(--line); border-radius: 6px; background: var(--panel); color: var(--fg); max-width: 100%; }
label { display: inline-flex; flex-direction: column; gap: 0.2rem; font-size: 0.85rem; color: var(--muted); }
label.check { flex-direction: row; align-items: center; gap: 0.35rem; color: var(--fg); overflow-wrap: anywhere; }
form.range, form.top-up-form { display: flex; align-items: flex-end; gap: 0.6rem; flex-wrap: wrap; }
form.top-up-form .hint, form.top-up-form .error { flex-basis: 100%; margin: 0.3rem 0 0; }
fieldset { border: 1px solid var(--line); border-radius: 6px; margin: 0.8rem 0; }
legend { font-size: 0.85rem; color: var(--muted); }
.model-choices { display: grid; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); gap: 0.3rem; }
dialog { border: 1px solid var(--line); border-radius: 10px; padding: 1.2rem 1.4rem; max-width: 40rem; width: calc(100% - 2rem); background: var(--panel); color: var(--fg); }
dialog::backdrop { background: var(--backdrop); }
dialog form > label { display: flex; margin-bottom: 0.5rem; }
dialog .row label { flex: 1 1 10rem; }
.dialog-buttons { display: flex; gap: 0.6rem; align-items: center; margin: 1rem 0 0; }
.secret code { display: block; padding: 0.6rem; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; word-break: break-all; user-select: all; }
.copied { color: var(--ok); }
.error { color: var(--danger); }
.notice { background: var(--notice-bg); border: 1px solid var(--notice-line); border-radius: 6px; padding: 0.5rem 0.8rem; }
.empty { color: var(--muted); }
.totals { margin: 0.4rem 0 0.6rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(22rem, 100%), 1fr)); gap: 1rem; }
figure.chart { margin: 0; min-width: 0; }
figure.chart figcaption { font-size: 0.85rem; color: var(--muted); margin-bottom: 0.5rem; }
/* The drawing stretches to its box; every word is HTML at the stylesheet's size, never scaled with it. */
.chart-body { display: flex; gap: 0.4rem; }
.y-axis { display: flex; flex-direction: column; justify-content: space-between; height: 10rem; font-size: 0.75rem; color: var(--muted); text-align: right; flex: none; }
.y-axis span { line-height: 0; }
.plot { flex: 1; min-width: 0; }
svg.chart-svg { display: block; width: 100%; height: 10rem; overflow: visible; }
svg.chart-svg line.grid { stroke: var(--line); stroke-width: 1; }
.day-mark { fill: transparent; cursor: pointer; }
.day-mark:hover { fill: var(--mark); }
.day-mark:focus { fill: var(--mark); outline: none; stroke: var(--fg); stroke-width: 2; vector-effect: non-scaling-stroke; }
.x-axis { display: flex; font-size: 0.75rem; color: var(--muted); margin-top: 0.2rem; }
.x-axis span { flex: 1 1 0; min-width: 0; display: flex; justify-content: center; white-space: nowrap; }
.readout { font-size: 0.85rem; margin: 0.4rem 0 0; min-height: 1.3em; }
details.chart-table { margin-top: 0.3rem; font-size: 0.85rem; }
details.chart-table summary { cursor: pointer; color: var(--accent); }
ul.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 0.3rem 1rem; padding: 0; margin: 0 0 0.6rem; font-size: 0.85rem; }
.swatch { display: inline-block; width: 0.75rem; height: 0.75rem; border-radius: 2px; margin-right: 0.35rem; vertical-align: -0.05rem; }
/* Twelve distinct colours (one per model, costliest first); beyond twelve models the rest share "Other". */
.series-0 { fill: #4e79a7; background: #4e79a7; } .series-1 { fill: #f28e2b; background: #f28e2b; }
.series-2 { fill: #59a14f; background: #59a14f; } .series-3 { fill: #e15759; background: #e15759; }
.series-4 { fill: #76b7b2; background: #76b7b2; } .series-5 { fill: #edc948; background: #edc948; }
.series-6 { fill: #b07aa1; background: #b07aa1; } .series-7 { fill: #9c755f; background: #9c755f; }
.series-8 { fill: #ff9da7; background: #ff9da7; } .series-9 { fill: #bcbd22; background: #bcbd22; }
.series-10 { fill: #a0cbe8; background: #a0cbe8; } .series-11 { fill: #7b4173; background: #7b4173; }
.series-other { fill: #8c8c8c; background: #8c8c8c; }
.pager { display: flex; gap: 0.5rem; justify-content: flex-end; margin-top: 0.6rem; }
ul.recent-top-ups { padding-left: 1.1rem; margin: 0; font-size: 0.9rem; }
form.alerts-form { display: grid; grid-template-columns: minmax(0, 14rem) minmax(0, 1fr); gap: 0.4rem 0.8rem; align-items: center; max-width: 44rem; }
form.alerts-form label { font-size: 0.9rem; }
form.alerts-form > p, form.alerts-form > div { grid-column: 1 / -1; margin: 0.2rem 0; }
form.alerts-form input { min-width: 0; }
@media (max-width: 600px) { form.alerts-form { grid-template-columns: minmax(0, 1fr); } }
.alert-secret code { display: block; padding: 0.6rem; border: 1px solid var(--line); border-radius: 6px; word-break: break-all; user-select: all; }
p.owed { margin: 0.2rem 0 0.6rem; color: #a4262c; }
.table-scroll { overflow-x: auto; max-width: 100%; position: relative; }
.model-name code { font-weight: 600; }
.model-name .status { margin-left: 0.4rem; }
/* Phones: wide tables scroll inside their own box, the Models table becomes one card per model. */
@media (max-width: 48rem) {
  header.top { padding: 0.6rem 0.75rem; }
  main { padding: 0.75rem 0.75rem 2rem; }
  main.narrow { padding-top: 2rem; }
  .panel { padding: 0.8rem 0.8rem; }
  .grow { flex-basis: 100%; }
  table.keys, .ledger > table { display: block; overflow-x: auto; max-width: 100%; position: relative; }
  table.cards { position: relative; }
  table.cards, table.cards tbody, table.cards tr, table.cards th, table.cards td { display: block; }
  table.cards thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  table.cards tr { border: 1px solid var(--line); border-radius: 6px; padding: 0.5rem 0.7rem; margin-bottom: 0.6rem; }
  table.cards th[scope="row"] { border: none; padding: 0 0 0.3rem; color: var(--fg); overflow-wrap: anywhere; }
  table.cards td { display: flex; justify-content: space-between; gap: 1rem; border: none; padding: 0.12rem 0; text-align: right; }
  table.cards td::before { content: attr(data-label); color: var(--muted); text-align: left; }
  dialog { padding: 1rem; }
}
.visually-hidden { position: absolute; left: 0; top: 0; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
[hidden] { display: none !important; }
`;
