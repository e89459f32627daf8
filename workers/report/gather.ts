// The data of a training report, read from a checkpoint folder: the loss history
// (metrics.jsonl), each checkpoint's tokens (step-NNNNNNNNN/trainer.json) and every eval
// result written beside a checkpoint (step-NNNNNNNNN.eval-<job>.json), each metric placed at
// the training tokens its checkpoint had seen — the data of the LLaMA paper's Figures 1 and 2.
import type { ResultsFile } from "../eval/run.ts";
import { metricsFile, type StepMetrics } from "../trainer/metrics-log.ts";
import type { TrainerStateFile } from "../trainer/resume.ts";
import type { CheckpointFolder } from "../checkpoint-folder.ts";
import type { GoodputData } from "./goodput.ts";

/** A problem with the report's input, said in terms of the file or argument at fault. */
export class ReportError extends Error {
  override name = "ReportError";
}

/** What the report reads of a checkpoint folder (local or S3; ../checkpoint-folder.ts). */
export type CheckpointFiles = Pick<CheckpointFolder, "location" | "list" | "read">;

export interface LossPoint {
  step: number;
  tokens: number;
  loss: number;
  lr: number;
}

export interface EvalPoint {
  step: number;
  tokens: number;
  value: number;
  stderr?: number;
  examples: number;
  /** The results file it came from. */
  file: string;
}

/** One metric of one task (at one few-shot count) across checkpoints, by tokens. */
export interface EvalSeries {
  task: string;
  numFewShot: number;
  metric: string;
  points: EvalPoint[];
}

export interface ReportData {
  /** The TrainingJob (or folder) the report is about. */
  name: string;
  location: string;
  loss: LossPoint[];
  /** Checkpoints present in the folder, by step. */
  checkpoints: { step: number; tokens: number }[];
  evals: EvalSeries[];
  /** Things left out, said on the page. */
  notes: string[];
  /** The TrainingJob's attempts and goodput, from its status (a report by name only). */
  goodput?: GoodputData;
}

const stepDir = /^step-(\d{9})$/;
const resultsName = /^step-(\d{9})\.eval-(.+)\.json$/;

function parseJson(bytes: Buffer, where: string): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw new ReportError(`${where}: not valid JSON: ${(err as Error).message}`);
  }
}

const isNumber = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
const isStep = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/**
 * metrics.jsonl's lines, by step. A last line without its newline may be a step being
 * written right now: used when it parses, skipped when not. Any other line that is not a
 * step's metrics is an error naming the line.
 */
export function parseMetrics(text: string, where: string): LossPoint[] {
  const lines = text.split("\n");
  const last = lines.pop()!; // "" when the file ends with a newline
  const byStep = new Map<number, LossPoint>();
  const add = (line: string, at: string) => {
    let m: Partial<StepMetrics>;
    try {
      m = JSON.parse(line) as Partial<StepMetrics>;
    } catch (err) {
      throw new ReportError(`${at}: not valid JSON: ${(err as Error).message}`);
    }
    for (const field of ["step", "tokens"] as const)
      if (!isStep(m?.[field]))
        throw new ReportError(`${at}: ${field} must be a non-negative integer`);
    for (const field of ["loss", "lr"] as const)
      if (!isNumber(m[field])) throw new ReportError(`${at}: ${field} must be a finite number`);
    byStep.set(m.step!, { step: m.step!, tokens: m.tokens!, loss: m.loss!, lr: m.lr! });
  };
  lines.forEach((line, i) => add(line, `${where}:${i + 1}`));
  if (last !== "")
    try {
      add(last, `${where}:${lines.length + 1}`);
    } catch {
      // torn by a write in progress
    }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

// Tokens seen at each checkpoint still in the folder, from its trainer.json.
async function checkpointTokens(
  files: CheckpointFiles,
  names: string[],
): Promise<Map<number, number>> {
  const tokens = new Map<number, number>();
  for (const name of names) {
    const m = stepDir.exec(name);
    if (!m) continue;
    const file = `${name}/trainer.json`;
    const bytes = await files.read(file);
    if (!bytes) continue; // pruned while we listed, or not a checkpoint
    const state = parseJson(bytes, `${files.location}/${file}`) as Partial<TrainerStateFile>;
    if (state?.format !== "herd-trainer-state" || !isStep(state.tokens))
      throw new ReportError(
        `${files.location}/${file}: not a herd-trainer-state file with a tokens count`,
      );
    tokens.set(Number(m[1]), state.tokens);
  }
  return tokens;
}

// Checks the fields of a results file that the report uses; returns it typed.
function checkResults(x: unknown, where: string): ResultsFile {
  const r = x as Partial<ResultsFile>;
  if (r?.format !== "herd-eval-results" || r.version !== 1)
    throw new ReportError(`${where}: not a herd-eval-results version 1 file`);
  for (const field of ["step", "tokensSeen"] as const)
    if (r.checkpoint?.[field] !== undefined && !isStep(r.checkpoint[field]))
      throw new ReportError(`${where}: checkpoint.${field} must be a non-negative integer`);
  if (!Array.isArray(r.tasks)) throw new ReportError(`${where}: tasks must be a list`);
  r.tasks.forEach((t, i) => {
    if (typeof t?.task !== "string" || !Array.isArray(t.metrics))
      throw new ReportError(`${where}: tasks[${i}] needs a task name and a metrics list`);
    t.metrics.forEach((m, j) => {
      if (typeof m?.name !== "string" || !isNumber(m.value))
        throw new ReportError(`${where}: tasks[${i}].metrics[${j}] needs a name and a value`);
    });
  });
  return r as ResultsFile;
}

/** Reads everything the report shows from a checkpoint folder. */
export async function gatherReport(name: string, files: CheckpointFiles): Promise<ReportData> {
  const names = (await files.list()).sort();
  const notes: string[] = [];
  const metricsBytes = await files.read(metricsFile);
  const loss = metricsBytes
    ? parseMetrics(metricsBytes.toString("utf8"), `${files.location}/${metricsFile}`)
    : [];
  if (!metricsBytes)
    notes.push(`no ${metricsFile}: the loss curve needs a run trained by this version of herd`);
  const ckptTokens = await checkpointTokens(files, names);
  const lossTokens = new Map(loss.map((p) => [p.step, p.tokens]));
  const resultFiles = names.filter((n) => resultsName.test(n));
  if (ckptTokens.size === 0 && loss.length === 0 && resultFiles.length === 0)
    throw new ReportError(
      `${files.location}: no checkpoints (step-NNNNNNNNN/), ${metricsFile} or eval results ` +
        "(step-NNNNNNNNN.eval-<job>.json) here; is it a herd checkpoint folder?",
    );

  // (task, few-shot, metric) → step → the newest result for that checkpoint
  const series = new Map<string, EvalSeries>();
  const completed = new Map<EvalPoint, string>();
  for (const file of resultFiles) {
    const where = `${files.location}/${file}`;
    const bytes = await files.read(file);
    if (!bytes) continue; // removed since the listing
    const results = checkResults(parseJson(bytes, where), where);
    const completion = String(results.completionTime ?? "");
    const step = results.checkpoint?.step ?? Number(resultsName.exec(file)![1]);
    const tokens = results.checkpoint?.tokensSeen ?? ckptTokens.get(step) ?? lossTokens.get(step);
    if (tokens === undefined) {
      notes.push(`${file}: step ${step}'s token count is unknown (checkpoint pruned); left out`);
      continue;
    }
    for (const t of results.tasks)
      for (const m of t.metrics) {
        const key = JSON.stringify([t.task, t.numFewShot ?? 0, m.name]);
        let s = series.get(key);
        if (!s) {
          s = { task: t.task, numFewShot: t.numFewShot ?? 0, metric: m.name, points: [] };
          series.set(key, s);
        }
        const point: EvalPoint = { step, tokens, value: m.value, examples: t.examples, file };
        if (m.stderr !== undefined) point.stderr = m.stderr;
        const same = s.points.findIndex((p) => p.step === step);
        // Two evaluations of one checkpoint on one task: the one completed last counts.
        if (same < 0) s.points.push(point);
        else if (completion >= completed.get(s.points[same]!)!) s.points[same] = point;
        else continue;
        completed.set(point, completion);
      }
  }
  for (const s of series.values()) s.points.sort((a, b) => a.tokens - b.tokens);
  return {
    name,
    location: files.location,
    loss,
    checkpoints: [...ckptTokens].map(([step, tokens]) => ({ step, tokens })),
    evals: [...series.values()].sort((a, b) =>
      a.task === b.task ? a.numFewShot - b.numFewShot : a.task < b.task ? -1 : 1,
    ),
    notes,
  };
}
