// A TrainingJob's spec resolved into everything the training loop needs (Plan): the model
// (and a pretrained one), the data checked against the tokenizer, the trainer's options and
// where checkpoints go.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { resolveModel, type ModelConfig } from "../../crds/model.ts";
import { presets } from "../../crds/presets.ts";
import {
  dataParallelWidth,
  jobTokenizer,
  loraTargets,
  type TrainingJob,
} from "../../crds/trainingjob.ts";
import {
  createExampleLoader,
  createMixtureLoader,
  type MixtureOptions,
} from "../../native/data.ts";
import type { TrainerOptions } from "../../native/engine.ts";
import { hfTokenizerFile } from "../model/hf-tokenizer.ts";
import { localPathFrom } from "../s3.ts";
import { resolveMixture, s3ObjectClient } from "../shard-store.ts";
import {
  folderStore,
  s3ConfigFromEnv,
  s3Store,
  stagingDirFor,
  type CheckpointStore,
} from "./checkpoint-store.ts";
import { openPretrained, type Pretrained } from "./pretrained.ts";
import { UserError, type TrainOptions } from "./options.ts";

export interface Plan {
  model: ModelConfig;
  trainer: Omit<TrainerOptions, "source">;
  data: PlannedData;
  totalSteps: number;
  stopAt: number;
  /** A local folder or an s3://bucket/prefix. */
  checkpointUri: string;
  intervalSteps: number;
  keep: number;
  /** Periodic checkpoints are written from a snapshot while training goes on. */
  asynchronous: boolean;
  /** Ranks training together (1: this process alone). */
  world: number;
  /** Settings this trainer does not apply, said once at start. */
  warnings: string[];
  /** spec.model.from: the initial weights, when the job fine-tunes a pretrained model. */
  pretrained?: Pretrained;
}

// A storage URI from the manifest as a local path: relative to the manifest's folder.
function localPath(uri: string, base: string, field: string): string {
  if (uri.startsWith("s3://"))
    throw new UserError(`${field}: ${uri} is object storage; give a local path`);
  return localPathFrom(uri, base);
}

// Checkpoints go to object storage as they are; anything else is a local path.
const checkpointUri = (uri: string, base: string) =>
  uri.startsWith("s3://") ? uri : localPath(uri, base, "spec.checkpoint.uri");

/** Where the job's checkpoints go: spec.checkpoint.uri, or --out (relative to the cwd). */
const jobCheckpointUri = (job: TrainingJob, manifestDir: string, options: TrainOptions) =>
  checkpointUri(options.out ?? job.spec.checkpoint.uri, options.out ? process.cwd() : manifestDir);

/** The job's checkpoint storage; object storage needs S3 settings in the environment. */
export function checkpointStore(uri: string): CheckpointStore {
  if (!uri.startsWith("s3://")) return folderStore(uri);
  const config = s3ConfigFromEnv();
  if (!config)
    throw new UserError(
      `spec.checkpoint.uri: ${uri} is object storage, but none is configured: set HERD_S3_ENDPOINT and the keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), or run with a web identity (IRSA)`,
    );
  return s3Store(uri, stagingDirFor(uri), config);
}

/**
 * The job's training data as the engine reads it: one text file whose bytes are the tokens
 * (the bytes tokenizer), a mixture of token-shard sources (`herd data prepare` with the
 * job's tokenizer), or instruction examples (`herd data prepare --instruct`), resolved to
 * local files, with their vocabulary size.
 */
export type PlannedData =
  | { kind: "text"; file: string }
  | { kind: "shards"; mixture: MixtureOptions; vocabSize: number }
  | { kind: "examples"; shards: string[]; vocabSize: number };

/** Where s3:// shards are cached: the pod's scratch space, or HERD_DATA_CACHE. */
const shardCacheDir = () =>
  process.env.HERD_DATA_CACHE ?? path.join(process.env.HERD_POD_DIR ?? tmpdir(), "herd-shards");

/**
 * Resolves spec.data (downloading s3:// shards) and checks it against the job's tokenizer;
 * `resuming`: the job has a checkpoint, so a tokenizer that is spec.model.from's own is not
 * read again (it was checked when the job started).
 */
export async function resolveData(
  job: TrainingJob,
  manifestDir: string,
  resuming = false,
): Promise<PlannedData> {
  const { spec } = job;
  const sources = spec.data.sources;
  const tokenizer = jobTokenizer(spec);
  if (!tokenizer)
    throw new UserError(
      "spec.tokenizer: required: spec.model.from is a herd checkpoint, which carries no tokenizer",
    );
  if (tokenizer.type === "bytes") {
    if (sources.length !== 1 || sources[0]!.format !== "text")
      throw new UserError(
        "spec.data.sources: with the bytes tokenizer, give exactly one source with format: text",
      );
    return {
      kind: "text",
      file: localPath(sources[0]!.uri, manifestDir, "spec.data.sources[0].uri"),
    };
  }
  const text = sources.findIndex((s) => s.format === "text");
  if (text >= 0)
    throw new UserError(
      `spec.data.sources[${text}].format: text is read with the bytes tokenizer only; for ` +
        `spec.tokenizer.type ${tokenizer.type}, make token shards with \`herd data prepare\``,
    );
  const examples = sources.some((s) => s.format === "examples");
  if (examples && sources.length !== 1)
    throw new UserError(
      "spec.data.sources: instruction examples (format: examples) are the job's only source",
    );
  const uris = sources.map((s, i) => ({
    name: s.name,
    weight: s.weight,
    uri: s.uri.startsWith("s3://")
      ? s.uri
      : localPath(s.uri, manifestDir, `spec.data.sources[${i}].uri`),
  }));
  const s3 = s3ConfigFromEnv();
  if (uris.some((u) => u.uri.startsWith("s3://")) && !s3)
    throw new UserError(
      "spec.data.sources: s3:// shards need object storage: set HERD_S3_ENDPOINT and the keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), or run with a web identity (IRSA)",
    );
  let resolved: Awaited<ReturnType<typeof resolveMixture>>;
  let vocabSize: number;
  try {
    resolved = await resolveMixture(uris, job.spec.training.seed, {
      ...(s3 && { s3: s3ObjectClient(s3) }),
      cacheDir: shardCacheDir(),
    });
    const shards = resolved.options.sources[0]!.shards!;
    vocabSize = examples
      ? createExampleLoader({ shards, seed: 0 }).vocabSize
      : createMixtureLoader(resolved.options).vocabSize;
  } catch (err) {
    throw new UserError(`spec.data.sources: ${(err as Error).message}`);
  }
  // The shards' meta.json names the tokenizer they were made with; a local tokenizer that is
  // another one would pair the weights with the wrong text at evaluation.
  const implied = !spec.tokenizer;
  const check = !(implied && resuming);
  if (check && resolved.tokenizerSha256 && tokenizer.uri && !tokenizer.uri.startsWith("s3://")) {
    const field = implied ? "spec.model.from.uri" : "spec.tokenizer.uri";
    let file = localPath(tokenizer.uri, manifestDir, field);
    let sha: string;
    try {
      if (tokenizer.type === "huggingface") file = hfTokenizerFile(file);
      sha = createHash("sha256").update(readFileSync(file)).digest("hex");
    } catch (err) {
      const hint =
        implied && tokenizer.type === "huggingface"
          ? " (a Hugging Face model.from brings its tokenizer.json; otherwise give spec.tokenizer)"
          : "";
      throw new UserError(`${field}: cannot read ${file}: ${(err as Error).message}${hint}`);
    }
    if (sha !== resolved.tokenizerSha256)
      throw new UserError(
        `${field}: ${file} (sha256 ${sha.slice(0, 12)}…) is not the tokenizer the ` +
          `shards were made with (${resolved.tokenizerSha256.slice(0, 12)}…)`,
      );
  }
  if (examples)
    return { kind: "examples", shards: resolved.options.sources[0]!.shards!, vocabSize };
  return { kind: "shards", mixture: resolved.options, vocabSize };
}

/** spec.model.from, when given: its architecture now, its weights when training starts. */
export async function resolvePretrained(
  job: TrainingJob,
  manifestDir: string,
  options: TrainOptions,
): Promise<Pretrained | undefined> {
  const from = job.spec.model.from;
  if (!from) return undefined;
  return openPretrained(
    from,
    (uri) => localPath(uri, manifestDir, "spec.model.from.uri"),
    jobCheckpointUri(job, manifestDir, options),
    shardCacheDir(),
    (message) => new UserError(message),
  );
}

export function plan(
  job: TrainingJob,
  manifestDir: string,
  options: TrainOptions,
  data: PlannedData,
  pretrained?: Pretrained,
): Plan {
  const { spec } = job;
  const model = resolveModel(
    spec.model,
    data.kind === "text" ? 256 : data.vocabSize,
    pretrained?.config,
  );
  const warnings: string[] = [];
  const backend = options.backend ?? "cpu";
  if (backend === "cpu" && spec.training.precision !== "fp32")
    warnings.push(
      `spec.training.precision: ${spec.training.precision} is for CUDA; the CPU trains in fp32`,
    );
  if (backend === "cpu" && spec.training.activationCheckpointing)
    warnings.push(
      "spec.training.activationCheckpointing: not implemented on the CPU backend; ignored",
    );
  const world = options.distributed?.world ?? 1;
  if (dataParallelWidth(spec.parallelism) > 1 && world === 1)
    warnings.push("spec.parallelism: --local trains in one process, with the same global batch");
  if (backend === "cpu" && spec.parallelism.gpusPerWorker > 0)
    warnings.push("spec.parallelism.gpusPerWorker: this run trains on the CPU (--backend cpu)");
  if (spec.training.shardOptimizerState && (backend === "cpu" || world === 1))
    warnings.push(
      "spec.training.shardOptimizerState: shards only across several CUDA ranks; every rank keeps the whole state here",
    );
  else if (spec.training.shardOptimizerState && spec.training.lora)
    warnings.push(
      "spec.training.shardOptimizerState: with LoRA, AdamW's state is the adapters' and is not sharded",
    );
  const t = spec.training;
  const seqLen = spec.data.seqLen;
  if (seqLen > model.maxSeqLen)
    throw new UserError(
      `spec.data.seqLen: ${seqLen} exceeds the model's maxSeqLen ${model.maxSeqLen}`,
    );
  if (t.globalBatchTokens % seqLen !== 0)
    throw new UserError(
      `spec.training.globalBatchTokens: ${t.globalBatchTokens} is not a multiple of spec.data.seqLen ${seqLen}`,
    );
  const rows = t.globalBatchTokens / seqLen;
  if (rows % t.microBatch !== 0)
    throw new UserError(
      `spec.training.microBatch: ${t.microBatch} does not divide the ${rows} sequences of a global batch`,
    );
  // Each rank runs its share of the global batch: rows / world sequences in micro-batches.
  if (rows % (t.microBatch * world) !== 0)
    throw new UserError(
      `spec.training.microBatch: ${world} ranks of micro-batches of ${t.microBatch} do not divide ` +
        `the ${rows} sequences of a global batch (world size ${world})`,
    );
  const totalSteps = t.steps ?? Math.ceil(t.tokens! / t.globalBatchTokens);
  const o = t.optimizer;
  // The preset's peak learning rate unless the job gives one; 3e-4 (the paper's 7B/13B) otherwise.
  const peakLr = o.peakLr ?? (spec.model.preset ? presets[spec.model.preset].peakLr : 3e-4);
  return {
    model,
    trainer: {
      model,
      optimizer: {
        peakLr,
        minLrRatio: o.minLrRatio,
        warmupSteps: o.warmupSteps,
        totalSteps,
        beta1: o.beta1,
        beta2: o.beta2,
        eps: o.eps,
        weightDecay: o.weightDecay,
        gradClip: o.gradClip,
      },
      seqLen,
      microBatch: t.microBatch,
      accumSteps: rows / (t.microBatch * world),
      seed: t.seed,
      threads: options.threads ?? availableParallelism(),
      backend,
      ...(backend === "cuda" && {
        precision: spec.training.precision,
        recompute: spec.training.activationCheckpointing,
        deterministic: spec.training.deterministic,
        shardOptimizer: spec.training.shardOptimizerState && !t.lora,
        ...(options.device !== undefined && { device: options.device }),
      }),
      ...(t.lora && {
        lora: { rank: t.lora.rank, alpha: t.lora.alpha, targets: loraTargets(t.lora) },
      }),
    },
    data,
    ...(pretrained && { pretrained }),
    totalSteps,
    stopAt: Math.min(options.steps ?? totalSteps, totalSteps),
    checkpointUri: jobCheckpointUri(job, manifestDir, options),
    intervalSteps: spec.checkpoint.intervalSteps,
    keep: spec.checkpoint.keep,
    asynchronous: spec.checkpoint.asynchronous,
    world,
    warnings,
  };
}
