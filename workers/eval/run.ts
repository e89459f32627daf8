// `herd eval --local`: one EvalJob on this machine. Reads the manifest (crds/evaljob.ts),
// opens the checkpoint it names, runs each task and writes a results JSON — by default
// beside the checkpoint (<checkpoint>.eval-<job name>.json), as the evaluator pod will.
import { existsSync, readFileSync, writeFileSync, renameSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { evalJob, type EvalJob } from "../../crds/evaljob.ts";
import { parseManifest } from "../../crds/manifest.ts";
import { resultsUriOf } from "./checkpoints.ts";
import { openModel, type TokenizerChoice } from "./open.ts";
import { evalMultipleChoice, evalPerplexity, readMultipleChoice, type Metric } from "./tasks.ts";

export class EvalUserError extends Error {
  override name = "EvalUserError";
}

export interface LocalEvalOptions {
  manifest: string;
  out?: string;
  threads?: number;
  /** Overrides every task's limit (quick runs). */
  limit?: number;
  log?: (line: string) => void;
}

export interface TaskResultFile {
  task: string;
  type: "multipleChoice" | "perplexity";
  uri: string;
  examples: number;
  numFewShot: number;
  metrics: Metric[];
  seconds: number;
  /** Multiple-choice tasks: per item, the choice each metric picked and the label. */
  predictions?: { acc: number; accNorm: number; accPerToken: number; label: number }[];
  /** Perplexity tasks: tokens scored and bytes of text. */
  tokens?: number;
  bytes?: number;
}

export interface ResultsFile {
  format: "herd-eval-results";
  version: 1;
  job: string;
  checkpoint: { uri: string; format: string; step?: number; tokensSeen?: number };
  model: Record<string, unknown>;
  tokenizer: string;
  tasks: TaskResultFile[];
  startTime: string;
  completionTime: string;
}

function localPath(uri: string, base: string, field: string): string {
  if (uri.startsWith("s3://"))
    throw new EvalUserError(`${field}: ${uri} is object storage; --local runs take a local path`);
  if (uri.startsWith("file://")) return uri.slice("file://".length);
  if (uri.startsWith("~/")) return path.join(os.homedir(), uri.slice(2));
  return path.resolve(base, uri);
}

export function readEvalJob(file: string): EvalJob {
  return parseManifest(evalJob, readFileSync(file, "utf8"), file);
}

export async function runEvalLocal(o: LocalEvalOptions): Promise<ResultsFile> {
  const log = o.log ?? (() => {});
  const job = readEvalJob(o.manifest);
  const base = path.dirname(path.resolve(o.manifest));
  const spec = job.spec;
  if (!spec.checkpoint.uri)
    throw new EvalUserError(
      "spec.checkpoint.trainingJob needs the cluster; for --local give spec.checkpoint.uri",
    );
  const ckpt = localPath(spec.checkpoint.uri, base, "spec.checkpoint.uri");
  let tokenizer: TokenizerChoice | undefined;
  if (spec.tokenizer?.type === "bytes") tokenizer = { type: "bytes" };
  else if (spec.tokenizer?.uri)
    tokenizer = {
      type: "sentencepiece",
      uri: localPath(spec.tokenizer.uri, base, "spec.tokenizer.uri"),
    };
  // Every task's data is there before the model loads: a missing file fails at once, named.
  const taskFiles = spec.tasks.map((task, i) => {
    const file = localPath(task.uri, base, `spec.tasks[${i}].uri`);
    if (!existsSync(file))
      throw new EvalUserError(`spec.tasks[${i}].uri (task ${task.name}): ${file} does not exist`);
    return file;
  });
  const startTime = new Date().toISOString();
  const t0 = Date.now();
  const m = openModel({
    path: ckpt,
    format: spec.checkpoint.format,
    tokenizer,
    threads: o.threads,
    warn: (w) => log(`warning: ${w}`),
  });
  log(
    `loaded ${ckpt} (${m.loaded.format}, ${m.tokenizer.kind} tokenizer) in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  const tasks: TaskResultFile[] = [];
  for (const [i, task] of spec.tasks.entries()) {
    const uri = taskFiles[i]!;
    const limit = o.limit ?? task.limit;
    const started = Date.now();
    let outcome: Awaited<ReturnType<typeof evalMultipleChoice>> & {
      tokens?: number;
      bytes?: number;
    };
    if (task.type === "multipleChoice") {
      const items = readMultipleChoice(uri, limit);
      outcome = await evalMultipleChoice(m, items, {
        numFewShot: task.numFewShot,
        seed: task.seed,
        batchSize: spec.batchSize,
        progress: (done) => log(`${task.name}: ${done}/${items.length}`),
      });
    } else {
      let text = readFileSync(uri, "utf8");
      // a perplexity task's limit counts lines of the text
      if (limit !== undefined) text = text.split("\n").slice(0, limit).join("\n");
      outcome = await evalPerplexity(m, text, {});
    }
    const result: TaskResultFile = {
      task: task.name,
      type: task.type,
      uri: task.uri,
      examples: outcome.examples,
      numFewShot: task.numFewShot,
      metrics: outcome.metrics,
      seconds: (Date.now() - started) / 1000,
      ...(outcome.predictions ? { predictions: outcome.predictions } : {}),
      ...(outcome.tokens !== undefined ? { tokens: outcome.tokens, bytes: outcome.bytes } : {}),
    };
    log(
      `${task.name}: ${result.metrics.map((x) => `${x.name} ${x.value.toFixed(4)}${x.stderr !== undefined ? ` ± ${x.stderr.toFixed(4)}` : ""}`).join(", ")} (${result.examples} examples, ${result.seconds.toFixed(1)} s)`,
    );
    tasks.push(result);
  }
  const results: ResultsFile = {
    format: "herd-eval-results",
    version: 1,
    job: job.metadata.name,
    checkpoint: {
      uri: ckpt,
      format: m.loaded.format,
      step: m.loaded.step,
      tokensSeen: m.loaded.tokensSeen,
    },
    model: { ...m.loaded.config },
    tokenizer: m.tokenizer.kind,
    tasks,
    startTime,
    completionTime: new Date().toISOString(),
  };
  const out = o.out ?? resultsUriOf(ckpt, results.job);
  const tmp = `${out}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(results, null, 2) + "\n");
  renameSync(tmp, out);
  log(`results: ${out}`);
  return results;
}
