// `herd eval --local`: one EvalJob on this machine. Reads the manifest (crds/evaljob.ts),
// opens the checkpoint it names, runs each task and writes a results JSON — by default
// beside the checkpoint (<checkpoint>.eval-<job name>.json), as the evaluator pod will.
import { existsSync, writeFileSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import type { EvalJob } from "../../crds/evaljob.ts";
import { readEvalJob } from "../../crds/manifest.ts";
import { readTextDecompressed } from "../compressed.ts";
import { chatTokenizer, readConversations } from "../model/chat.ts";
import { downloadUri, localPathFrom, S3Error } from "../s3.ts";
import { s3ConfigFromEnv, stagingDirFor } from "../trainer/checkpoint-store.ts";
import { writeResults } from "./checkpoints.ts";
import { openModel, type TokenizerChoice } from "./open.ts";
import {
  evalMultipleChoice,
  herdFormatScoring,
  scoringOf,
  type ChoiceItem,
  type ChoicePrediction,
} from "./choices.ts";
import { evalChat } from "./chat.ts";
import { readChoiceItems, readGenerationItems, readMultipleChoice } from "./documents.ts";
import { evalGeneration, generationSettingsOf, type Generation } from "./generation.ts";
import { expandGroups, readDefinition, runnableTask, type RunnableTask } from "./registry.ts";
import {
  evalPerplexity,
  TaskError,
  type GroupResult,
  type Metric,
  type TaskOutcome,
} from "./tasks.ts";

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
  type: "multipleChoice" | "perplexity" | "chat";
  uri: string;
  examples: number;
  numFewShot: number;
  metrics: Metric[];
  /** Tasks with groups (MMLU's subjects, CrowS-Pairs' bias types): each group's metrics. */
  groups?: GroupResult[];
  seconds: number;
  /** Multiple-choice tasks: per item, the choice each metric picked and the label. */
  predictions?: ChoicePrediction[];
  /** Generative tasks: per item, the first output and every sample's answer. */
  generations?: Generation[];
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

/**
 * An input of the job on this machine: a local path as it is (relative to the manifest's
 * folder), an s3:// object or folder downloaded into `staging` with this process's S3
 * endpoint and credentials. Errors name the field.
 */
async function fetchInput(uri: string, base: string, field: string, staging: string) {
  if (!uri.startsWith("s3://")) return localPathFrom(uri, base);
  const config = s3ConfigFromEnv();
  if (!config)
    throw new EvalUserError(
      `${field}: ${uri} is in object storage, and no S3 endpoint and credentials are set ` +
        "(HERD_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
    );
  const dest = path.join(staging, field.replace(/[^\w.-]+/g, "_"), path.posix.basename(uri));
  try {
    await downloadUri(uri, config, dest);
  } catch (err) {
    if (err instanceof S3Error && err.status === 404)
      throw new EvalUserError(`${field}: ${err.message}`);
    throw err;
  }
  return dest;
}

export async function runEvalLocal(o: LocalEvalOptions): Promise<ResultsFile> {
  const job = readEvalJob(o.manifest, (m) => o.log?.(`warning: ${m}`));
  const base = path.dirname(path.resolve(o.manifest));
  const spec = job.spec;
  if (!spec.checkpoint.uri)
    throw new EvalUserError(
      "spec.checkpoint.trainingJob needs the cluster; for --local give spec.checkpoint.uri",
    );
  // Object-storage inputs are copied here for the run and removed after it.
  const staging = stagingDirFor(`eval:${job.metadata.name}:${process.pid}`);
  try {
    return await evaluate(o, job, base, staging);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

async function evaluate(
  o: LocalEvalOptions,
  job: EvalJob,
  base: string,
  staging: string,
): Promise<ResultsFile> {
  const log = o.log ?? (() => {});
  const spec = job.spec;
  const uri = spec.checkpoint.uri!;
  // The checkpoint as the results name it: the URI for object storage, else the local path.
  const checkpointUri = uri.startsWith("s3://") ? uri : localPathFrom(uri, base);
  // Every task's data is there before the model loads: a missing file fails at once, named.
  const tasks: { task: RunnableTask; file: string; fewShotFile?: string }[] = [];
  for (const t of expandGroups(spec.tasks)) {
    const field = (f: string) => `task ${t.name}: ${f}`;
    const fileDefinition = t.definitionUri
      ? readDefinition(await fetchInput(t.definitionUri, base, field("definitionUri"), staging))
      : undefined;
    const task = runnableTask(t, fileDefinition);
    const fetchData = async (uri: string, f: string) => {
      const file = await fetchInput(uri, base, field(f), staging);
      if (!existsSync(file)) throw new EvalUserError(`${field(f)}: ${file} does not exist`);
      return file;
    };
    tasks.push({
      task,
      file: await fetchData(task.uri, "uri"),
      ...(task.fewShotUri && { fewShotFile: await fetchData(task.fewShotUri, "fewShot.data") }),
    });
  }
  let tokenizer: TokenizerChoice | undefined;
  if (spec.tokenizer?.type === "bytes") tokenizer = { type: "bytes" };
  else if (spec.tokenizer?.uri)
    tokenizer = {
      type: spec.tokenizer.type,
      uri: await fetchInput(spec.tokenizer.uri, base, "spec.tokenizer.uri", staging),
    };
  const ckpt = await fetchInput(uri, base, "spec.checkpoint.uri", staging);
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
  const results: TaskResultFile[] = [];
  for (const { task, file, fewShotFile } of tasks) {
    const started = Date.now();
    const limit = o.limit ?? task.limit;
    const outcome = await runTask(m, task, file, fewShotFile, limit, spec.batchSize, log);
    const result: TaskResultFile = {
      task: task.name,
      type: task.type,
      uri: task.uri,
      numFewShot: task.numFewShot,
      ...outcome,
      seconds: (Date.now() - started) / 1000,
    };
    log(
      `${task.name}: ${result.metrics.map((x) => `${x.name} ${x.value.toFixed(4)}${x.stderr !== undefined ? ` ± ${x.stderr.toFixed(4)}` : ""}`).join(", ")} (${result.examples} examples, ${result.seconds.toFixed(1)} s)`,
    );
    results.push(result);
  }
  const file: ResultsFile = {
    format: "herd-eval-results",
    version: 1,
    job: job.metadata.name,
    checkpoint: {
      uri: checkpointUri,
      format: m.loaded.format,
      step: m.loaded.step,
      tokensSeen: m.loaded.tokensSeen,
    },
    model: { ...m.loaded.config },
    tokenizer: m.tokenizer.kind,
    tasks: results,
    startTime,
    completionTime: new Date().toISOString(),
  };
  const text = JSON.stringify(file, null, 2) + "\n";
  let out: string;
  if (o.out) {
    out = o.out;
    const tmp = `${out}.tmp-${process.pid}`;
    writeFileSync(tmp, text);
    renameSync(tmp, out);
  } else {
    out = await writeResults(checkpointUri, file.job, text, { s3: s3ConfigFromEnv() });
  }
  log(`results: ${out}`);
  return file;
}

/**
 * One task on the loaded model: multiple choice (herd's JSONL or a definition's), perplexity,
 * or chat (replies' perplexity).
 */
async function runTask(
  m: ReturnType<typeof openModel>,
  task: RunnableTask,
  file: string,
  fewShotFile: string | undefined,
  limit: number | undefined,
  batchSize: number,
  log: (line: string) => void,
): Promise<
  TaskOutcome & {
    groups?: GroupResult[];
    predictions?: ChoicePrediction[];
    generations?: Generation[];
    tokens?: number;
    bytes?: number;
  }
> {
  if (task.type === "chat") {
    if (!m.tokenizerFile)
      throw new TaskError(
        `task ${task.name}: a chat task needs the model's chat template: evaluate a GGUF model, or give spec.tokenizer (a GGUF or SentencePiece file)`,
      );
    const conversations = (await readConversations([file])).slice(0, limit);
    const { examples, metrics, tokens } = await evalChat(
      m,
      conversations,
      chatTokenizer(m.tokenizerFile),
      (done) => log(`${task.name}: ${done}/${conversations.length}`),
    );
    return { examples, metrics, tokens };
  }
  if (task.type === "perplexity") {
    let text = readTextDecompressed(file);
    // a perplexity task's limit counts lines of the text
    if (limit !== undefined) text = text.split("\n").slice(0, limit).join("\n");
    const { examples, metrics, tokens, bytes } = await evalPerplexity(m, text, {});
    return { examples, metrics, tokens, bytes };
  }
  const d = task.definition;
  const progress = (done: number, of: number) => log(`${task.name}: ${done}/${of}`);
  if (d?.scoring === "generate") {
    const items = readGenerationItems(d, file, limit);
    const pool = fewShotFile ? readGenerationItems(d, fewShotFile) : undefined;
    return evalGeneration(m, items, {
      numFewShot: task.numFewShot,
      seed: task.seed,
      settings: generationSettingsOf(d, pool),
      progress: (done) => progress(done, items.length),
    });
  }
  const items: ChoiceItem[] = d ? readChoiceItems(d, file, limit) : readMultipleChoice(file, limit);
  const pool = d && fewShotFile ? readChoiceItems(d, fewShotFile) : undefined;
  return evalMultipleChoice(m, items, {
    numFewShot: task.numFewShot,
    seed: task.seed,
    batchSize,
    scoring: d ? scoringOf(d, pool) : herdFormatScoring,
    progress: (done) => progress(done, items.length),
  });
}
