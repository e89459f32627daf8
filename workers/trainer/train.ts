// The trainer: a TrainingJob's spec → the native engine's training loop, with durable
// checkpoints, exact resume and a graceful stop on SIGTERM. `herd train --local` runs it on
// this machine; the trainer pod's entry point runs the same loop. With HERD_WORLD_SIZE > 1
// the process is one rank of a data-parallel group (distributedFromEnv): each rank trains on
// its share of every global batch, gradients are averaged, rank 0 alone writes checkpoints.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { ManifestError, readTrainingJob } from "../../crds/manifest.ts";
import { parameterCount, resolveModel, type ModelConfig } from "../../crds/model.ts";
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
import {
  engine,
  type Group,
  type LoraOptions,
  type SourceOptions,
  type Trainer,
  type TrainerOptions,
} from "../../native/engine.ts";
import { readDecompressed } from "../compressed.ts";
import { hfTokenizerFile } from "../model/hf-tokenizer.ts";
import { localPathFrom } from "../s3.ts";
import { resolveMixture, s3ObjectClient } from "../shard-store.ts";
import {
  CheckpointError,
  loadCheckpoint,
  stepName,
  type FileContent,
  type VerifiedFiles,
} from "./checkpoint.ts";
import {
  checkpointTensorFiles,
  engineCheckpointReader,
  engineSafetensors,
  snapshotSource,
  type TensorSource,
} from "./engine-checkpoint.ts";
import {
  folderStore,
  s3ConfigFromEnv,
  s3Store,
  StaleAttemptError,
  stagingDirFor,
  type CheckpointStore,
  type Owner,
} from "./checkpoint-store.ts";
import { MetricsLog } from "./metrics-log.ts";
import { jsonLogger, progressLogger, type Logger } from "./train-log.ts";
import { parseEndpoint, resolveHost } from "./rendezvous.ts";
import { openPretrained, type Pretrained } from "./pretrained.ts";

/** Exit codes of the trainer; the training workflow classifies attempts by them. */
export const exitCodes = {
  ok: 0,
  /** Anything unexpected: retried with back-off. */
  failure: 1,
  /** Bad configuration or data (EX_USAGE): fails the job at once. */
  userError: 64,
  /** Stopped by SIGTERM/SIGINT after writing a checkpoint (EX_TEMPFAIL): resume later. */
  preempted: 75,
} as const;

/** A problem with the job's configuration or data, reported as exit code 64. */
export class UserError extends Error {
  override name = "UserError";
}

export interface TrainOptions {
  /** The TrainingJob manifest; relative paths in it resolve against its folder. */
  manifest: string;
  /** Checkpoint folder or s3:// URI; defaults to spec.checkpoint.uri. */
  out?: string;
  /** Stop once this many steps are done in all (the schedule still follows the job's length). */
  steps?: number;
  /** Engine threads; defaults to the machine's cores. Resume with the same count for identical bits. */
  threads?: number;
  /** progress: a bar on stderr; json: one JSON object per line on stdout. Default: progress on a TTY. */
  log?: "progress" | "json";
  /** This process is one rank of a data-parallel group (see distributedFromEnv). */
  distributed?: Distributed;
  /** cpu (default) or cuda (a GPU through libherd_cuda.so). */
  backend?: "cpu" | "cuda";
  /** cuda: the device ordinal this process trains on (a trainer pod runs one process per GPU). */
  device?: number;
  /** The attempt this trainer pod runs as (ownerFromEnv): rank 0 fences the checkpoint folder. */
  owner?: Owner;
}

/** One rank's place in a data-parallel group. */
export interface Distributed {
  rank: number;
  world: number;
  /** Rank 0's rendezvous store, host:port (rank 0 serves it on bindHost at that port). */
  rendezvous: string;
  /** The address this rank listens on for its peers: the pod's IP. */
  bindHost: string;
  /** Bounds the rendezvous and every all-reduce. */
  timeoutSeconds: number;
}

/** Port of rank 0's rendezvous store when HERD_RENDEZVOUS names none. */
export const defaultRendezvousPort = 29500;

/**
 * The data-parallel settings a trainer pod gets in its environment: HERD_WORLD_SIZE,
 * HERD_RANK, HERD_RENDEZVOUS (rank 0's host:port), HERD_POD_IP (default 127.0.0.1) and
 * HERD_DIST_TIMEOUT_SECONDS (default 300). Undefined for a world of one.
 */
export function distributedFromEnv(env: NodeJS.ProcessEnv): Distributed | undefined {
  const int = (name: string, fallback: number) => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const x = Number(raw);
    if (!Number.isSafeInteger(x) || x < 0)
      throw new UserError(`${name}: '${raw}' is not a non-negative integer`);
    return x;
  };
  const world = int("HERD_WORLD_SIZE", 1);
  if (world <= 1) return undefined;
  const rank = int("HERD_RANK", -1);
  if (rank < 0 || rank >= world)
    throw new UserError(`HERD_RANK: '${env.HERD_RANK ?? ""}' must be in [0, ${world})`);
  const rendezvous = env.HERD_RENDEZVOUS ?? "";
  try {
    parseEndpoint(rendezvous, defaultRendezvousPort, "HERD_RENDEZVOUS");
  } catch (err) {
    throw new UserError((err as Error).message);
  }
  const timeoutSeconds = int("HERD_DIST_TIMEOUT_SECONDS", 300);
  if (timeoutSeconds < 1) throw new UserError("HERD_DIST_TIMEOUT_SECONDS: must be at least 1");
  return { rank, world, rendezvous, bindHost: env.HERD_POD_IP || "127.0.0.1", timeoutSeconds };
}

/** Everything the loop needs, resolved from the job. */
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
function checkpointStore(uri: string): CheckpointStore {
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

// ---- checkpoints ---------------------------------------------------------------------------

/** trainer.json: where training stands, everything resume needs besides the tensors. */
export interface TrainerStateFile {
  format: "herd-trainer-state";
  version: 1;
  step: number;
  tokens: number;
  adamStep: number;
  dataSource: unknown;
  rng: { algorithm: string; seed: number };
  schedule: TrainerOptions["optimizer"] & { nextLr: number };
  model: ModelConfig;
  /** LoRA's settings when only adapters trained (lora.safetensors holds them). */
  lora?: LoraOptions;
  /** accumSteps per rank; world: ranks (absent before data parallelism: 1). */
  batch: {
    seqLen: number;
    microBatch: number;
    accumSteps: number;
    threads: number;
    world?: number;
  };
}

// The token source's state in trainer.json: the text source's is JSON and stays an object;
// the mixture's is its own text format (native/src/data/mixture.cc) and stays a string.
function sourceStateForFile(state: string): unknown {
  try {
    return JSON.parse(state);
  } catch {
    return state;
  }
}
const sourceStateFromFile = (x: unknown) => (typeof x === "string" ? x : JSON.stringify(x));

/**
 * A checkpoint's files: trainer.json from `s`, the tensor files streamed from `source` (the
 * trainer, or its snapshot) when the store writes them.
 */
export function checkpointContents(
  trainer: Trainer,
  p: Plan,
  source: TensorSource = trainer,
  s = trainer.state(),
): Record<string, FileContent> {
  const state: TrainerStateFile = {
    format: "herd-trainer-state",
    version: 1,
    step: s.step,
    tokens: s.tokens,
    adamStep: s.adamStep,
    dataSource: sourceStateForFile(s.sourceState),
    // No random numbers are drawn after initialisation: data positions derive from
    // (seed, step), so the seed and the step are the whole RNG state.
    rng: {
      algorithm: "splitmix64, counter-based per (seed, step, rank, row)",
      seed: p.trainer.seed,
    },
    schedule: { ...p.trainer.optimizer, nextLr: s.lr },
    model: p.model,
    ...(p.trainer.lora && { lora: p.trainer.lora }),
    batch: {
      seqLen: p.trainer.seqLen,
      microBatch: p.trainer.microBatch,
      accumSteps: p.trainer.accumSteps,
      threads: p.trainer.threads,
      world: p.world,
    },
  };
  return {
    ...Object.fromEntries(
      checkpointTensorFiles(trainer).map(({ name, kind, sets }) => [
        name,
        engineSafetensors(source, sets, { format: "herd", kind }),
      ]),
    ),
    "trainer.json": JSON.stringify(state, null, 2) + "\n",
  };
}

interface Restored {
  state: TrainerStateFile;
  /** Streams the checkpoint's tensors into the trainer (after every check has passed). */
  load(): void;
}

// Checks a verified checkpoint against the model being trained, reading trainer.json and the
// safetensors headers only; throws UserError (a different job), CheckpointError or
// SafetensorsError (a broken file). The tensors are streamed in by the result's load().
function openCheckpoint(files: VerifiedFiles, trainer: Trainer, p: Plan): Restored {
  let state: TrainerStateFile;
  try {
    state = JSON.parse(files.get("trainer.json").toString("utf8")) as TrainerStateFile;
  } catch (err) {
    throw new CheckpointError(`trainer.json is not valid JSON: ${(err as Error).message}`);
  }
  if (
    state?.format !== "herd-trainer-state" ||
    state.version !== 1 ||
    !Number.isSafeInteger(state.step)
  )
    throw new CheckpointError("trainer.json is not a herd-trainer-state version 1 file");
  if (JSON.stringify(state.model) !== JSON.stringify(p.model))
    throw new UserError(
      `the checkpoint's model ${JSON.stringify(state.model)} differs from the job's ${JSON.stringify(p.model)}`,
    );
  const lora = (x?: LoraOptions) => (x ? JSON.stringify(x) : "none");
  if (lora(state.lora) !== lora(p.trainer.lora))
    throw new UserError(
      `spec.training.lora: the checkpoint trained with LoRA ${lora(state.lora)}, the job asks for ${lora(p.trainer.lora)}`,
    );
  // The global batch must be the same; how many ranks shared it may differ (the data of a
  // step is the same rows either way).
  const b = state.batch;
  const globalRows = (x: { microBatch: number; accumSteps: number; world?: number }) =>
    x.microBatch * x.accumSteps * (x.world ?? 1);
  if (
    b?.seqLen !== p.trainer.seqLen ||
    b.microBatch !== p.trainer.microBatch ||
    globalRows(b) !== globalRows({ ...p.trainer, world: p.world })
  )
    throw new UserError(
      "the checkpoint was trained with another seqLen, microBatch or global batch",
    );
  return { state, load: engineCheckpointReader(files, trainer) };
}

// ---- the loop ------------------------------------------------------------------------------

/** Trains the job; returns the exit code (see exitCodes). */
export async function train(options: TrainOptions): Promise<number> {
  let log: Logger = jsonLogger();
  try {
    let job: TrainingJob;
    const unknown: string[] = [];
    try {
      job = readTrainingJob(options.manifest, (m) => unknown.push(m));
    } catch (err) {
      if (err instanceof ManifestError) throw new UserError(err.message);
      throw new UserError(`cannot read ${options.manifest}: ${(err as Error).message}`);
    }
    let p: Plan;
    try {
      const dir = path.dirname(path.resolve(options.manifest));
      const pretrained = await resolvePretrained(job, dir, options);
      const data = await resolveData(job, dir, pretrained?.resumesFrom !== undefined);
      p = plan(job, dir, options, data, pretrained);
      p.warnings.unshift(...unknown);
    } catch (err) {
      if (err instanceof ManifestError) throw new UserError(err.message);
      throw err;
    }
    const useBar =
      options.log === "progress" || (options.log === undefined && process.stderr.isTTY);
    if (useBar) log = progressLogger(p.stopAt);
    return await run(p, log, options.distributed, options.owner);
  } catch (err) {
    log.end();
    if (err instanceof StaleAttemptError) {
      log.warn(err.message);
      console.error(`herd train: ${err.message}`);
      return exitCodes.preempted;
    }
    if (err instanceof UserError) {
      log.warn(`error: ${err.message}`);
      console.error(`herd train: ${err.message}`);
      return exitCodes.userError;
    }
    throw err;
  }
}

async function run(
  p: Plan,
  log: Logger,
  dist: Distributed | undefined,
  owner: Owner | undefined,
): Promise<number> {
  // From here on SIGTERM/SIGINT ask for a stop: the step in flight (if any) runs to its end,
  // a checkpoint is written, and the process exits 75. In a group the ranks agree on the step
  // to stop after (the stop request rides on the next step's all-reduce), so rank 0's
  // checkpoint is of a step every rank finished, and every rank exits 75.
  let stopSignal: NodeJS.Signals | undefined;
  let inFlight: number | undefined;
  let onStop = () => {};
  const stopRequested = new Promise<void>((resolve) => (onStop = resolve));
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopSignal) return;
    stopSignal = sig;
    onStop();
    log.info(
      inFlight === undefined
        ? `${sig}: stopping; writing a checkpoint`
        : `${sig} during step ${inFlight}: finishing it, then writing a checkpoint` +
            (dist ? " (all ranks stop after the next step)" : ""),
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    for (const w of p.warnings) log.warn(w);
    let group: Group | undefined;
    if (dist) {
      // Nothing is trained yet: a stop while waiting for the other ranks needs no checkpoint.
      const joined = await Promise.race([joinGroup(dist, log), stopRequested.then(() => "stop")]);
      if (joined === "stop") return exitCodes.preempted;
      group = joined as Group;
    }
    const store = checkpointStore(p.checkpointUri);
    // The writer claims the folder before it reads it, so an older attempt still running
    // somewhere stops at its next checkpoint rather than publish over this one's.
    if (owner && (dist?.rank ?? 0) === 0) await store.claim(owner);
    const trainer = await createAndResume(p, store, log, group);
    const tokensPerStep = p.trainer.seqLen * p.trainer.microBatch * p.trainer.accumSteps * p.world;
    let step = trainer.state().step;
    if (group) await agreeOnStartStep(group, step);
    // Every rank holds the same weights and logs the same loss; rank 0 alone writes them.
    const writesCheckpoints = (dist?.rank ?? 0) === 0;
    let lastSaved = step;
    const metrics = writesCheckpoints
      ? MetricsLog.open(store.localDir, step, (msg) => log.warn(msg))
      : undefined;
    // A periodic checkpoint (`background`) is written from a snapshot of the state while the
    // next steps run: the stall is the snapshot's copy. One is written at a time, in order; a
    // failure (a newer attempt owns the folder, a full disk) surfaces at the next step.
    let writing: Promise<void> | undefined;
    let writeFailed: unknown;
    const save = async (background: boolean): Promise<void> => {
      lastSaved = step;
      if (!writesCheckpoints) {
        // Sharded, the device's state is gathered from every rank: the others take part too
        // (the writer's tensors() below does its part); unsharded they copy nothing.
        if (shardsState(p)) trainer.syncHost();
        return;
      }
      await writing;
      if (writeFailed) throw writeFailed;
      metrics?.sync(); // the log covers every step of the checkpoint before it is published
      const at = step;
      const t0 = performance.now();
      const snapshot = background && p.asynchronous ? takeSnapshot(trainer, log) : false;
      const stallSeconds = (performance.now() - t0) / 1000;
      const contents = checkpointContents(trainer, p, snapshot ? snapshotSource(trainer) : trainer);
      const write = async () => {
        if (snapshot) await new Promise(setImmediate); // the next step starts first
        try {
          const where = await store.save(at, contents, p.keep);
          const seconds = (performance.now() - t0) / 1000;
          log.info(`checkpoint ${stepName(at)} written`, {
            event: "checkpoint",
            step: at,
            path: where,
            seconds,
            ...(snapshot && { stallSeconds }),
          });
        } finally {
          if (snapshot) trainer.releaseSnapshot();
        }
      };
      if (!snapshot) return write();
      writing = write().catch((err: unknown) => {
        writeFailed = err;
      });
    };
    const started = performance.now();
    const startStep = step;
    if (step === 0) lastSaved = -1; // a fresh run always ends with a checkpoint
    let agreedToStop = false;
    while (step < p.stopAt && !agreedToStop) {
      if (writeFailed) throw writeFailed;
      if (stopSignal && !group) break;
      inFlight = step + 1;
      const r = await trainer.step(stopSignal !== undefined);
      inFlight = undefined;
      step++;
      agreedToStop = r.stop;
      const perStep = (performance.now() - started) / 1000 / (step - startStep);
      const done = { step, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm };
      const tokensPerSecond = tokensPerStep / perStep;
      log.step({ ...done, tokensPerSecond, etaSeconds: perStep * (p.stopAt - step) });
      const { tokens } = trainer.state();
      metrics?.append({ ...done, tokens, tokensPerSecond, time: new Date().toISOString() });
      if (step % p.intervalSteps === 0) await save(step < p.stopAt && !agreedToStop && !stopSignal);
    }
    if (lastSaved !== step) await save(false);
    await writing;
    if (writeFailed) throw writeFailed;
    await store.flush(); // the last checkpoint is published before the exit code says done
    metrics?.close();
    log.end();
    if (stopSignal || agreedToStop) {
      const why = stopSignal ?? "another rank's stop";
      log.info(`stopped by ${why} at step ${step}; exit ${exitCodes.preempted} (preempted)`);
      return exitCodes.preempted;
    }
    log.info(`done: step ${step} of ${p.totalSteps}; checkpoints in ${p.checkpointUri}`, {
      step,
      checkpoints: p.checkpointUri,
    });
    return exitCodes.ok;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}

// A snapshot of the trainer's state for a background checkpoint; false (write in the
// foreground) when the host has no memory for the copy.
function takeSnapshot(trainer: Trainer, log: Logger): boolean {
  try {
    trainer.snapshot();
    return true;
  } catch (err) {
    log.warn(`checkpoint written with training paused: ${(err as Error).message}`);
    return false;
  }
}

// Joins the data-parallel group: rank 0 serves the rendezvous store, the others find it.
async function joinGroup(dist: Distributed, log: Logger): Promise<Group> {
  const store = parseEndpoint(dist.rendezvous, defaultRendezvousPort, "HERD_RENDEZVOUS");
  const timeoutMs = dist.timeoutSeconds * 1000;
  const host = dist.rank === 0 ? store.host : await resolveHost(store.host, timeoutMs);
  log.info(`rank ${dist.rank} of ${dist.world}: joining the group at ${dist.rendezvous}`);
  const group = await engine.joinGroup({
    rank: dist.rank,
    world: dist.world,
    host,
    port: store.port,
    bindHost: dist.bindHost,
    timeoutMs,
  });
  log.info(`rank ${dist.rank} of ${dist.world}: joined`);
  return group;
}

/**
 * Every rank must resume from the same checkpoint (they read one folder, which rank 0
 * writes); a rank that sees another step would silently train other weights. Each rank puts
 * its step at its own slot (as two floats below 2^20, exact) and the sum shows all of them.
 */
async function agreeOnStartStep(group: Group, step: number): Promise<void> {
  const slots = new Float32Array(2 * group.world);
  slots[2 * group.rank] = Math.floor(step / 2 ** 20);
  slots[2 * group.rank + 1] = step % 2 ** 20;
  const all = await group.allReduceSum(slots);
  const steps = Array.from(
    { length: group.world },
    (_, r) => all[2 * r]! * 2 ** 20 + all[2 * r + 1]!,
  );
  if (steps.some((s) => s !== steps[0]))
    throw new Error(
      `the ranks resumed from different checkpoints (${steps.map((s, r) => `rank ${r} at step ${s}`).join(", ")}): ` +
        "every rank must see the checkpoints rank 0 writes",
    );
}

// The bytes of the job's one text file as the token source (a .gz or .zst file decompressed).
function textSource(p: Plan): SourceOptions {
  const file = (p.data as { file: string }).file;
  let text: Buffer;
  try {
    text = readDecompressed(file);
  } catch (err) {
    throw new UserError(`spec.data.sources[0].uri: cannot read ${file}: ${(err as Error).message}`);
  }
  if (text.length < p.trainer.seqLen + 1)
    throw new UserError(`spec.data.sources[0].uri: ${file} has fewer than seqLen + 1 bytes`);
  return { kind: "text-bytes", text, seed: p.trainer.seed };
}

/** Whether the device's AdamW state is spread over the ranks (CUDA, several ranks). */
const shardsState = (p: Plan) => p.trainer.shardOptimizer === true && p.world > 1;

// Creates the engine's trainer for the plan and restores the newest usable checkpoint.
async function createAndResume(
  p: Plan,
  store: CheckpointStore,
  log: Logger,
  group: Group | undefined,
): Promise<Trainer> {
  const source: SourceOptions =
    p.data.kind === "text"
      ? textSource(p)
      : p.data.kind === "examples"
        ? { kind: "examples", shards: p.data.shards, seed: p.trainer.seed }
        : { kind: "mixture", ...p.data.mixture };
  let trainer: Trainer;
  try {
    trainer = engine.createTrainer({
      ...p.trainer,
      ...(group && { group }),
      source,
    });
  } catch (err) {
    throw new UserError((err as Error).message);
  }
  if (p.trainer.backend === "cuda") {
    const t = p.trainer;
    const modes = [
      t.precision,
      ...(t.recompute ? ["recomputation"] : []),
      ...(t.deterministic ? ["deterministic"] : []),
      ...(shardsState(p) ? ["optimizer state sharded"] : []),
    ];
    log.info(`training on CUDA device ${t.device ?? 0} (${modes.join(", ")})`, {
      device: t.device ?? 0,
    });
  }
  await store.prepareResume((msg) => log.warn(msg));
  const loaded = loadCheckpoint(
    store.localDir,
    [...checkpointTensorFiles(trainer).map((f) => f.name), "trainer.json"],
    (files) => openCheckpoint(files, trainer, p),
    (msg) => log.warn(msg),
  );
  if (!loaded && p.pretrained) {
    const m = await p.pretrained.load();
    trainer.setTensors("params", m.tensors);
    log.info(
      `fine-tuning ${p.pretrained.uri} (${m.format}): ${parameterCount(p.model)} parameters`,
      { parameters: parameterCount(p.model), from: p.pretrained.uri },
    );
    return trainer;
  }
  if (!loaded) {
    log.info(`training from scratch: ${parameterCount(p.model)} parameters`, {
      parameters: parameterCount(p.model),
    });
    return trainer;
  }
  const r = loaded.value;
  r.load();
  try {
    trainer.setState({
      step: r.state.step,
      tokens: r.state.tokens,
      adamStep: r.state.adamStep,
      sourceState: sourceStateFromFile(r.state.dataSource),
    });
  } catch (err) {
    throw new UserError((err as Error).message);
  }
  if (r.state.batch.threads !== p.trainer.threads)
    log.warn(
      `the checkpoint was trained with ${r.state.batch.threads} threads, this run uses ${p.trainer.threads}: results will not be bit-identical to an uninterrupted run`,
    );
  log.info(`resumed from ${loaded.path}`, { step: loaded.step });
  return trainer;
}
