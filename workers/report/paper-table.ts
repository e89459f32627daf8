// The LLaMA paper's table layout: a row per checkpoint (or per model), a column per task,
// each cell the task's headline metric in percent ± its standard error. Tasks of the
// registry's llama-paper group come first, in its order (the paper's areas), then the rest.
import { taskMetric } from "../../crds/evaltask.ts";
import { registry } from "../eval/registry.ts";
import type { ResultsFile } from "../eval/run.ts";
import type { EvalSeries } from "./gather.ts";
import { escapeHtml } from "./html.ts";

export interface TableCell {
  value: number;
  stderr?: number;
}

export interface PaperTable {
  /** Column headings: task, and the shots when not zero-shot, and the metric. */
  columns: { task: string; numFewShot: number; metric: string }[];
  rows: { label: string; cells: (TableCell | undefined)[] }[];
}

/** The metric a task is reported by: the paper's normalisation, else acc_norm, else its first. */
export function headlineMetric(names: string[]): string | undefined {
  return names.find((n) => n === "acc_uncond") ?? names.find((n) => n === "acc_norm") ?? names[0];
}

// Rates are shown in percent; likelihood_diff is a log-likelihood.
const fractions = new Set<string>(taskMetric.options.filter((m) => m !== "likelihood_diff"));

function cellText(metric: string, c: TableCell | undefined): string {
  if (!c) return "";
  const [scale, digits] = fractions.has(metric) ? [100, 1] : [1, 3];
  const err = c.stderr === undefined ? "" : ` ± ${(c.stderr * scale).toFixed(digits)}`;
  return `${(c.value * scale).toFixed(digits)}${err}`;
}

/** The llama-paper group's task order; a report needs no registry: without it, by name. */
function paperTaskOrder(): string[] {
  try {
    return registry().groups["llama-paper"] ?? [];
  } catch {
    return [];
  }
}

/** Paper order: the llama-paper group's tasks first, then the others by name. */
function byPaperOrder<T extends { task: string; numFewShot: number }>(columns: T[]): T[] {
  const order = paperTaskOrder();
  const rank = (t: string) => (order.includes(t) ? order.indexOf(t) : order.length);
  return columns.sort(
    (a, b) =>
      rank(a.task) - rank(b.task) ||
      (a.task < b.task ? -1 : a.task > b.task ? 1 : 0) ||
      a.numFewShot - b.numFewShot,
  );
}

/** The table of a training run: a row per evaluated checkpoint step. */
export function checkpointTable(evals: EvalSeries[]): PaperTable {
  const byTask = new Map<string, EvalSeries[]>();
  for (const s of evals) {
    const key = JSON.stringify([s.task, s.numFewShot]);
    byTask.set(key, [...(byTask.get(key) ?? []), s]);
  }
  const series = byPaperOrder(
    [...byTask.values()].map((ss) =>
      ss.find((s) => s.metric === headlineMetric(ss.map((x) => x.metric)))!,
    ),
  );
  const steps = [...new Set(series.flatMap((s) => s.points.map((p) => p.step)))].sort(
    (a, b) => a - b,
  );
  return {
    columns: series.map(({ task, numFewShot, metric }) => ({ task, numFewShot, metric })),
    rows: steps.map((step) => ({
      label: `step ${step}`,
      cells: series.map((s) => s.points.find((p) => p.step === step)),
    })),
  };
}

/** The table of results files (models or checkpoints evaluated with --local): a row each. */
export function resultsTable(files: { label: string; results: ResultsFile }[]): PaperTable {
  const columns = new Map<string, { task: string; numFewShot: number; metric: string }>();
  for (const { results } of files)
    for (const t of results.tasks) {
      const key = JSON.stringify([t.task, t.numFewShot]);
      const metric = headlineMetric(t.metrics.map((m) => m.name));
      if (metric && !columns.has(key))
        columns.set(key, { task: t.task, numFewShot: t.numFewShot, metric });
    }
  const cols = byPaperOrder([...columns.values()]);
  return {
    columns: cols,
    rows: files.map(({ label, results }) => ({
      label,
      cells: cols.map((c) => {
        const t = results.tasks.find((x) => x.task === c.task && x.numFewShot === c.numFewShot);
        return t?.metrics.find((m) => m.name === c.metric);
      }),
    })),
  };
}

/** The table as HTML: percent for rates, ± one standard error. */
export function paperTableHtml(t: PaperTable): string {
  if (t.columns.length === 0) return "";
  const head = t.columns
    .map((c) => {
      const shots = c.numFewShot > 0 ? `, ${c.numFewShot}-shot` : "";
      return `<th>${escapeHtml(c.task)}<br><small>${escapeHtml(c.metric + shots)}</small></th>`;
    })
    .join("");
  const body = t.rows.map(
    (r) =>
      `<tr><th>${escapeHtml(r.label)}</th>${r.cells.map((c, i) => `<td>${cellText(t.columns[i]!.metric, c)}</td>`).join("")}</tr>`,
  );
  return `<table class="paper"><thead><tr><th></th>${head}</tr></thead>
<tbody>${body.join("\n")}</tbody></table>`;
}
