// A trainer's checkpoint contents (trainer.json and the streamed tensor files) and the way
// back: the engine's trainer created for a plan and restored from the newest usable
// checkpoint, or from the pretrained model, or from scratch.
import { parameterCount, type ModelConfig } from "../../crds/model.ts";
import {
  engine,
  type Group,
  type LoraOptions,
  type SourceOptions,
  type Trainer,
  type TrainerOptions,
} from "../../native/engine.ts";
import { readDecompressed } from "../compressed.ts";
import {
  CheckpointError,
  loadCheckpoint,
  type FileContent,
  type VerifiedFiles,
} from "./checkpoint.ts";
import {
  checkpointTensorFiles,
  engineCheckpointReader,
  engineSafetensors,
  type TensorSource,
} from "./engine-checkpoint.ts";
import type { CheckpointStore } from "./checkpoint-store.ts";
import type { Logger } from "./train-log.ts";
import { UserError } from "./options.ts";
import type { Plan } from "./plan.ts";

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
export const shardsState = (p: Plan) => p.trainer.shardOptimizer === true && p.world > 1;

// Creates the engine's trainer for the plan and restores the newest usable checkpoint.
export async function createAndResume(
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
