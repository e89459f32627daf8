// The report as one self-contained HTML page: inline CSS, the report data as JSON, and
// charts.js (inlined) drawing the charts as SVG in the browser; a table of every eval result
// is plain HTML, readable without the script. Nothing is fetched from the network.
import { readFileSync } from "node:fs";
import type { EvalSeries, LossPoint, ReportData } from "./gather.ts";
import { goodputSection } from "./goodput.ts";
import { escapeHtml } from "./html.ts";
import { checkpointTable, paperTableHtml, type PaperTable } from "./paper-table.ts";

const chartsScript = readFileSync(new URL("./charts.js", import.meta.url), "utf8");

/** Loss points drawn at most; longer runs are drawn as means of consecutive steps. */
export const maxLossPoints = 2000;

/** The loss curve as drawn: every step, or the means of groups of `meanOf` consecutive steps. */
export function lossForPage(
  loss: LossPoint[],
  max = maxLossPoints,
): { points: LossPoint[]; meanOf: number } {
  const meanOf = Math.ceil(loss.length / max);
  if (meanOf <= 1) return { points: loss, meanOf: 1 };
  const points: LossPoint[] = [];
  for (let i = 0; i < loss.length; i += meanOf) {
    const group = loss.slice(i, i + meanOf);
    const last = group[group.length - 1]!;
    const mean = (f: (p: LossPoint) => number) =>
      group.reduce((sum, p) => sum + f(p), 0) / group.length;
    points.push({ step: last.step, tokens: last.tokens, loss: mean((p) => p.loss), lr: last.lr });
  }
  return { points, meanOf };
}

// JSON inside <script>: "<" escaped so no string in the data can close the element.
const scriptJson = (x: unknown) => JSON.stringify(x).replace(/</g, "\\u003c");

const count = (n: number, thing: string) => `${n} ${thing}${n === 1 ? "" : "s"}`;

const seriesName = (s: EvalSeries) =>
  `${s.task} ${s.metric}${s.numFewShot > 0 ? `, ${s.numFewShot}-shot` : ""}`;

// Every eval result: a row per evaluated checkpoint, a column per task and metric.
function evalTable(evals: EvalSeries[]): string {
  if (evals.length === 0) return "";
  const rows = new Map<number, number>(); // step → tokens
  for (const s of evals) for (const p of s.points) rows.set(p.step, p.tokens);
  const head = evals.map((s) => `<th>${escapeHtml(seriesName(s))}</th>`).join("");
  const body = [...rows]
    .sort((a, b) => a[0] - b[0])
    .map(([step, tokens]) => {
      const cells = evals.map((s) => {
        const p = s.points.find((q) => q.step === step);
        if (!p) return "<td></td>";
        const err = p.stderr === undefined ? "" : ` ± ${p.stderr.toFixed(4)}`;
        return `<td>${p.value.toFixed(4)}${err}</td>`;
      });
      return `<tr><td>${step}</td><td>${tokens.toLocaleString("en-US")}</td>${cells.join("")}</tr>`;
    });
  return `<details><summary>All eval results</summary>
<table><thead><tr><th>step</th><th>tokens</th>${head}</tr></thead>
<tbody>${body.join("\n")}</tbody></table></details>`;
}

const css = `
body { font: 14px/1.45 system-ui, sans-serif; color: #1d2330; margin: 24px auto; max-width: 1120px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta, .summary, .notes { color: #555; } .notes li { margin: 2px 0; }
figure { margin: 0; } .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
svg { background: #fff; font-size: 11px; } svg .title { font-size: 13px; font-weight: 600; fill: #1d2330; }
svg .gridline { stroke: #e4e7ee; } svg .frame { fill: none; stroke: #9aa3b5; }
svg .tick { fill: #555; } svg .tick.x { text-anchor: middle; } svg .tick.y { text-anchor: end; }
svg .label { fill: #333; text-anchor: middle; }
svg .line { fill: none; stroke: #2f6fd6; stroke-width: 1.5; } svg .point circle { fill: #2f6fd6; }
svg .err { stroke: #2f6fd6; stroke-width: 1.2; }
#error { color: #b00020; white-space: pre-wrap; }
table { border-collapse: collapse; margin-top: 8px; font-size: 13px; }
th, td { border: 1px solid #dde1ea; padding: 3px 8px; text-align: right; } th { background: #f3f5f9; }
table.paper th small { font-weight: normal; color: #555; } table.paper tbody th { text-align: left; }
`;

const paperSection = (table: string) =>
  table
    ? `<section id="paper">
<h2>Results as the LLaMA paper tabulates them</h2>
<p class="meta">Each task's headline metric (acc_uncond, else acc_norm, else its first), in percent for rates, ± one standard error.</p>
${table}
</section>`
    : "";

/** A page of results files side by side (`herd report --results`): the paper's table alone. */
export function renderResultsPage(
  title: string,
  table: PaperTable,
  generated = new Date(),
): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>herd report: ${escapeHtml(title)}</title>
<style>${css}</style>
</head>
<body>
<h1>herd report: ${escapeHtml(title)}</h1>
<p class="meta">${table.rows.length} results file(s) · generated ${generated.toISOString()}</p>
${paperSection(paperTableHtml(table))}
</body>
</html>
`;
}

/** The report page. */
export function renderReport(data: ReportData, generated = new Date()): string {
  const { points, meanOf } = lossForPage(data.loss);
  const pageData = { loss: points, lossMeanOf: meanOf, evals: data.evals };
  const evaluated = new Set(data.evals.flatMap((s) => s.points.map((p) => p.step))).size;
  const meta = [
    `Checkpoints: ${escapeHtml(data.location)}`,
    `${count(data.loss.length, "step")} logged`,
    `${count(data.checkpoints.length, "checkpoint")} present`,
    `${evaluated} evaluated`,
    `generated ${generated.toISOString()}`,
  ];
  const notes = data.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>herd report: ${escapeHtml(data.name)}</title>
<style>${css}</style>
</head>
<body>
<h1>herd report: ${escapeHtml(data.name)}</h1>
<p class="meta">${meta.join(" · ")}</p>
<noscript><p>The charts are drawn by a script in this page; allow JavaScript to see them.</p></noscript>
<p id="error" hidden></p>
<section id="loss">
<h2>Training loss against training tokens</h2>
<figure class="plot"></figure>
<p class="summary"></p>
<p class="empty" hidden>No loss history (metrics.jsonl) in the checkpoint folder.</p>
</section>
${data.goodput ? goodputSection(data.goodput) : ""}
${paperSection(paperTableHtml(checkpointTable(data.evals)))}
<section id="evals">
<h2>Evaluations against training tokens</h2>
<p class="meta">One chart per task and metric; whiskers are ± one standard error.</p>
<div class="grid"></div>
<p class="empty" hidden>No eval results (step-NNNNNNNNN.eval-&lt;job&gt;.json) beside the checkpoints.</p>
${evalTable(data.evals)}
</section>
${notes ? `<h2>Notes</h2><ul class="notes">${notes}</ul>` : ""}
<script type="application/json" id="herd-report-data">${scriptJson(pageData)}</script>
<script>${chartsScript}</script>
</body>
</html>
`;
}
