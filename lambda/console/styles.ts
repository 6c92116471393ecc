/** The console's stylesheet, served as `assets/console.css` (the CSP allows no inline styles). */
export const CONSOLE_CSS = `
:root {
  --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #f6f8fa; --panel: #fff;
  --accent: #0969da; --danger: #cf222e; --ok: #1a7f37;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--fg); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, "DejaVu Sans Mono", monospace; }
h1 { font-size: 1.25rem; margin: 0; }
h2 { font-size: 1.05rem; margin: 0 0 0.6rem; }
h3 { font-size: 0.95rem; margin: 1.2rem 0 0.5rem; }
.muted, .hint { color: var(--muted); }
.hint { font-size: 0.85rem; }
header.top { display: flex; align-items: center; gap: 1rem; padding: 0.7rem 1.5rem; background: var(--panel); border-bottom: 1px solid var(--line); }
header.top .who { margin: 0 0 0 auto; }
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
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.danger { color: var(--danger); border-color: var(--danger); }
dialog button.danger { background: var(--danger); color: #fff; }
button.link { border: none; background: none; color: var(--accent); padding: 0; }
input { font: inherit; padding: 0.3rem 0.45rem; border: 1px solid var(--line); border-radius: 6px; }
label { display: inline-flex; flex-direction: column; gap: 0.2rem; font-size: 0.85rem; color: var(--muted); }
label.check { flex-direction: row; align-items: center; gap: 0.35rem; color: var(--fg); }
form.range, form.top-up-form { display: flex; align-items: flex-end; gap: 0.6rem; flex-wrap: wrap; }
form.top-up-form .hint, form.top-up-form .error { flex-basis: 100%; margin: 0.3rem 0 0; }
fieldset { border: 1px solid var(--line); border-radius: 6px; margin: 0.8rem 0; }
legend { font-size: 0.85rem; color: var(--muted); }
.model-choices { display: grid; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); gap: 0.3rem; }
dialog { border: 1px solid var(--line); border-radius: 10px; padding: 1.2rem 1.4rem; max-width: 40rem; width: calc(100% - 2rem); }
dialog::backdrop { background: rgba(31, 35, 40, 0.45); }
dialog form > label { display: flex; margin-bottom: 0.5rem; }
dialog .row label { flex: 1 1 10rem; }
.dialog-buttons { display: flex; gap: 0.6rem; align-items: center; margin: 1rem 0 0; }
.secret code { display: block; padding: 0.6rem; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; word-break: break-all; user-select: all; }
.copied { color: var(--ok); }
.error { color: var(--danger); }
.notice { background: #ddf4ff; border: 1px solid #54aeff; border-radius: 6px; padding: 0.5rem 0.8rem; }
.empty { color: var(--muted); }
.totals { margin: 0.4rem 0 0.6rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(22rem, 1fr)); gap: 1rem; }
figure.chart { margin: 0; }
figure.chart figcaption { font-size: 0.85rem; color: var(--muted); margin-bottom: 0.2rem; }
svg.chart-svg { width: 100%; height: auto; display: block; }
svg .tick line { stroke: var(--line); stroke-width: 1; }
svg text { font-size: 11px; fill: var(--muted); }
ul.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 0.3rem 1rem; padding: 0; margin: 0 0 0.6rem; font-size: 0.85rem; }
.swatch { display: inline-block; width: 0.75rem; height: 0.75rem; border-radius: 2px; margin-right: 0.35rem; vertical-align: -0.05rem; }
.series-0 { fill: #4e79a7; background: #4e79a7; } .series-1 { fill: #f28e2b; background: #f28e2b; }
.series-2 { fill: #59a14f; background: #59a14f; } .series-3 { fill: #e15759; background: #e15759; }
.series-4 { fill: #76b7b2; background: #76b7b2; } .series-5 { fill: #edc948; background: #edc948; }
.series-6 { fill: #b07aa1; background: #b07aa1; } .series-7 { fill: #9c755f; background: #9c755f; }
.pager { display: flex; gap: 0.5rem; justify-content: flex-end; margin-top: 0.6rem; }
ul.recent-top-ups { padding-left: 1.1rem; margin: 0; font-size: 0.9rem; }
form.alerts-form { display: grid; grid-template-columns: minmax(0, 14rem) minmax(0, 1fr); gap: 0.4rem 0.8rem; align-items: center; max-width: 44rem; }
form.alerts-form label { font-size: 0.9rem; }
form.alerts-form > p, form.alerts-form > div { grid-column: 1 / -1; margin: 0.2rem 0; }
form.alerts-form input { min-width: 0; }
@media (max-width: 600px) { form.alerts-form { grid-template-columns: minmax(0, 1fr); } }
.alert-secret code { display: block; padding: 0.6rem; border: 1px solid var(--line); border-radius: 6px; word-break: break-all; user-select: all; }
p.owed { margin: 0.2rem 0 0.6rem; color: #a4262c; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
[hidden] { display: none !important; }
`;
