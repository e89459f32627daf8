// TrainingJob (herd.dev/v1alpha1): train a LLaMA model, durably, surviving preemption.
// This file is the single source of truth for the kind: the CRD manifest, the operator,
// the workers and `herd train --local` all validate with these schemas.
import { z } from "zod";
import { apiVersion, objectMeta, resources, storageUri, workflowStatusFields } from "./common.ts";
import { presetNames } from "./presets.ts";
import { immutable, validated } from "./rules.ts";

export const pretrainedSource = z
  .object({
    uri: storageUri.describe(
      "The pretrained model: a herd checkpoint folder, a Hugging Face safetensors folder (config.json beside model.safetensors) or a GGUF file (dequantised to fp32); a path (a mounted volume's too), file:///path or s3://bucket/key.",
    ),
    format: z
      .enum(["auto", "herd", "safetensors", "gguf"])
      .default("auto")
      .describe("auto: a GGUF file by its magic; a folder with config.json is Hugging Face's."),
  })
  .describe(
    "Initial weights and architecture (fine-tuning). Read once: after the first checkpoint, a resume reads only herd's checkpoints.",
  );

export const modelSpec = z
  .object({
    from: pretrainedSource.optional(),
    preset: z
      .enum(presetNames)
      .optional()
      .describe("A named size (crds/presets.ts). Explicit fields below override it."),
    dim: z.int().positive().optional().describe("Model width (embedding size)."),
    nLayers: z.int().positive().optional().describe("Number of transformer blocks."),
    nHeads: z.int().positive().optional().describe("Attention heads; dim must be divisible by it."),
    nKvHeads: z
      .int()
      .positive()
      .optional()
      .describe("Key/value heads for grouped-query attention; divides nHeads. Defaults to nHeads."),
    ffnMultipleOf: z
      .int()
      .positive()
      .optional()
      .describe("SwiGLU hidden size is 2/3·4·dim rounded up to a multiple of this."),
    vocabSize: z
      .int()
      .positive()
      .optional()
      .describe("Vocabulary size; defaults to the tokenizer's."),
    maxSeqLen: z.int().positive().optional().describe("Longest sequence the rotary tables cover."),
    normEps: z
      .number()
      .positive()
      .optional()
      .describe("RMSNorm epsilon; default 1e-5 (or the pretrained model's)."),
    ropeTheta: z
      .number()
      .positive()
      .optional()
      .describe("Rotary embedding base; default 10000 (or the pretrained model's)."),
    tiedEmbeddings: z
      .boolean()
      .optional()
      .describe(
        "Share the token embedding with the output projection; default false (or as the pretrained model does).",
      ),
  })
  .describe(
    "The model: a preset and/or explicit dimensions, or a pretrained model (from) whose architecture explicit fields must match. Immutable.",
  );

/** The model rules: explicit dimensions must be complete without a preset, and divide. */
export const modelSpecChecked = immutable(
  validated(modelSpec, [
    {
      rule: "has(self.from) || has(self.preset) || (has(self.dim) && has(self.nLayers) && has(self.nHeads))",
      message: "give model.from, model.preset, or model.dim, model.nLayers and model.nHeads",
      fieldPath: ".preset",
      reason: "FieldValueRequired",
      check: (m) =>
        m.from !== undefined ||
        m.preset !== undefined ||
        (m.dim !== undefined && m.nLayers !== undefined && m.nHeads !== undefined),
    },
    {
      rule: "!has(self.from) || !has(self.preset)",
      message: "model.from brings its own architecture: give no model.preset with it",
      fieldPath: ".preset",
      reason: "FieldValueForbidden",
      check: (m) => m.from === undefined || m.preset === undefined,
    },
    {
      rule: "!has(self.dim) || !has(self.nHeads) || self.dim % self.nHeads == 0",
      message: "model.dim must be divisible by model.nHeads",
      fieldPath: ".dim",
      check: (m) => m.dim === undefined || m.nHeads === undefined || m.dim % m.nHeads === 0,
    },
    {
      rule: "!has(self.nHeads) || !has(self.nKvHeads) || self.nHeads % self.nKvHeads == 0",
      message: "model.nHeads must be divisible by model.nKvHeads",
      fieldPath: ".nKvHeads",
      check: (m) =>
        m.nHeads === undefined || m.nKvHeads === undefined || m.nHeads % m.nKvHeads === 0,
    },
  ]),
  "spec.model",
);

export const tokenizerSpec = z
  .object({
    type: z
      .enum(["sentencepiece", "bytes", "gguf", "huggingface"])
      .default("sentencepiece")
      .describe(
        "sentencepiece: a SentencePiece model file; bytes: raw UTF-8 bytes, vocabulary 256 (demos and tests); gguf: the tokenizer inside a GGUF model file (SentencePiece-style or GPT-2 byte-level BPE); huggingface: a model folder's tokenizer.json (byte-level BPE).",
      ),
    uri: storageUri
      .optional()
      .describe(
        "The SentencePiece model file, the GGUF file, or the Hugging Face folder (or its tokenizer.json); required unless type is bytes.",
      ),
  })
  .describe("How text becomes token ids.");

export const tokenizerSpecChecked = validated(tokenizerSpec, [
  {
    rule: "self.type == 'bytes' || has(self.uri)",
    message: "tokenizer.uri is required unless tokenizer.type is bytes",
    fieldPath: ".uri",
    reason: "FieldValueRequired",
    check: (t) => t.type === "bytes" || t.uri !== undefined,
  },
]);

export const dataSource = z
  .object({
    name: z.string().min(1).max(253).describe("Source name, e.g. CommonCrawl, C4, GitHub."),
    uri: storageUri.describe(
      "A folder of token shards made by `herd data prepare`, or a text file when format is text.",
    ),
    format: z
      .enum(["shards", "text", "examples"])
      .default("shards")
      .describe(
        "shards: herd token shards; text: a plain text file tokenized when training starts; examples: instruction examples with learn masks (`herd data prepare --instruct`), the only source.",
      ),
    weight: z
      .number()
      .positive()
      .default(1)
      .describe("Sampling weight of this source in the mixture (normalised over all sources)."),
  })
  .describe("One data source of the mixture.");

export const dataSpec = z
  .object({
    sources: z
      .array(dataSource)
      .min(1)
      .max(64)
      .describe("The mixture's sources (the paper's Table 1 mixes seven)."),
    seqLen: z
      .int()
      .positive()
      .max(1_048_576)
      .default(2048)
      .describe("Tokens per training sequence."),
  })
  .describe("Training data: a weighted mixture of token-shard sources. Immutable.");

export const optimizerSpec = z
  .object({
    peakLr: z
      .number()
      .positive()
      .optional()
      .describe("Peak learning rate; defaults to the preset's."),
    minLrRatio: z
      .number()
      .min(0)
      .max(1)
      .default(0.1)
      .describe("The cosine schedule ends at peakLr · minLrRatio."),
    warmupSteps: z
      .int()
      .min(0)
      .default(2000)
      .describe("Linear warm-up steps before the cosine decay."),
    beta1: z.number().min(0).lt(1).default(0.9).describe("AdamW β1."),
    beta2: z.number().min(0).lt(1).default(0.95).describe("AdamW β2."),
    eps: z.number().positive().default(1e-8).describe("AdamW ε."),
    weightDecay: z
      .number()
      .min(0)
      .default(0.1)
      .describe("Decoupled weight decay, applied to matrices only."),
    gradClip: z
      .number()
      .positive()
      .default(1.0)
      .describe("Global gradient-norm clipping threshold."),
  })
  .describe("AdamW with the LLaMA paper's defaults and a cosine schedule.");

/** LoRA's targets by Meta's names, with the Hugging Face (PEFT) names of the same matrices. */
export const loraTargetNames = {
  wq: "wq",
  wk: "wk",
  wv: "wv",
  wo: "wo",
  w1: "w1",
  w2: "w2",
  w3: "w3",
  q_proj: "wq",
  k_proj: "wk",
  v_proj: "wv",
  o_proj: "wo",
  gate_proj: "w1",
  down_proj: "w2",
  up_proj: "w3",
} as const;

export const loraSpec = z
  .object({
    rank: z.int().positive().max(4096).default(8).describe("r, the adapters' inner size."),
    alpha: z
      .number()
      .positive()
      .default(16)
      .describe("The update is scaled by alpha / rank (torchtune's default 16 with rank 8)."),
    targets: z
      .array(z.enum(Object.keys(loraTargetNames) as [keyof typeof loraTargetNames]))
      .min(1)
      .max(14)
      .default(["wq", "wv"])
      .describe(
        "Every block's matrices that get adapters: wq wk wv wo w1 w2 w3 (or q_proj k_proj v_proj o_proj gate_proj down_proj up_proj).",
      ),
  })
  .describe(
    "Train LoRA adapters (Hu et al. 2021) instead of every weight: W = W0 + (alpha/rank)·B·A. Checkpoints hold the merged weights.",
  );

/** The Meta names of a LoRA spec's targets, each once, in block order. */
export function loraTargets(spec: z.infer<typeof loraSpec>) {
  const meta = new Set(spec.targets.map((t) => loraTargetNames[t]));
  return (["wq", "wk", "wv", "wo", "w1", "w2", "w3"] as const).filter((t) => meta.has(t));
}

export const trainingSpec = z
  .object({
    steps: z.int().positive().optional().describe("Optimizer steps to train; or give tokens."),
    tokens: z
      .int()
      .positive()
      .optional()
      .describe("Training tokens; steps = tokens / globalBatchTokens, rounded up."),
    globalBatchTokens: z
      .int()
      .positive()
      .describe("Tokens per optimizer step across all workers (the paper uses 4M)."),
    microBatch: z
      .int()
      .positive()
      .default(1)
      .describe(
        "Sequences per forward/backward pass on one device; gradients accumulate up to the global batch.",
      ),
    optimizer: optimizerSpec
      .prefault({})
      .describe("AdamW with the LLaMA paper's defaults and a cosine schedule."),
    precision: z
      .enum(["fp32", "bf16"])
      .default("fp32")
      .describe("fp32 on CPU; bf16 compute with fp32 master weights on CUDA."),
    activationCheckpointing: z
      .boolean()
      .default(false)
      .describe("Recompute activations in the backward pass to save memory."),
    deterministic: z
      .boolean()
      .default(false)
      .describe(
        "CUDA: no atomics and no split-K matrix products, so a rerun on the same GPU type gives the same bits (the CPU always does, at the same thread count).",
      ),
    shardOptimizerState: z
      .boolean()
      .default(false)
      .describe(
        "CUDA with several ranks: each rank keeps AdamW's moments for 1/ranks of the parameters (reduce-scatter, then all-gather; ZeRO stage 1).",
      ),
    seed: z
      .int()
      .min(0)
      .default(0)
      .describe(
        "Seed for initialisation and data order; same seed, data and threads give identical weights.",
      ),
    lora: loraSpec.optional(),
  })
  .describe("How long and how to train. Immutable.");

export const trainingSpecChecked = validated(trainingSpec, [
  {
    rule: "has(self.steps) || has(self.tokens)",
    message: "give training.steps or training.tokens",
    fieldPath: ".steps",
    reason: "FieldValueRequired",
    check: (t) => t.steps !== undefined || t.tokens !== undefined,
  },
]);

export const parallelismSpec = z
  .object({
    workers: z
      .int()
      .positive()
      .max(4096)
      .default(1)
      .describe("Worker pods (data-parallel ranks across pods)."),
    gpusPerWorker: z
      .int()
      .min(0)
      .max(64)
      .default(0)
      .describe("GPUs per worker pod; 0 trains on CPU."),
  })
  .describe("Data-parallel layout. Immutable.");

export const checkpointSpec = z
  .object({
    uri: immutable(
      storageUri.describe(
        "Where checkpoints go: a folder (a PVC mount in the cluster) or s3://bucket/prefix. Immutable.",
      ),
      "spec.checkpoint.uri",
    ),
    intervalSteps: z
      .int()
      .positive()
      .default(100)
      .describe("Write a checkpoint every this many steps (and on SIGTERM)."),
    keep: z
      .int()
      .positive()
      .default(3)
      .describe("Durable checkpoints to keep; older ones are pruned after a newer one is durable."),
    asynchronous: z
      .boolean()
      .default(true)
      .describe(
        "Write periodic checkpoints in the background from an in-memory copy of the state while training goes on (the copy costs as much host memory as the state); false writes them with training paused. The last checkpoint, and one on SIGTERM, are always written before the trainer exits.",
      ),
  })
  .describe("Durable checkpoints: see docs/formats.md.");

export const retrySpec = z
  .object({
    preemptionBudget: z
      .int()
      .min(0)
      .default(100)
      .describe("Preemptions tolerated before the job fails; counted apart from failures."),
    failureLimit: z
      .int()
      .min(0)
      .default(3)
      .describe("Retries after crashes, with exponential back-off."),
    backoffSeconds: z
      .int()
      .positive()
      .default(10)
      .describe("First back-off delay; doubles after each failure."),
  })
  .describe("What to tolerate before failing. May change while the job runs.");

/** Devices that share one global batch: every worker, and every GPU of a worker (or its CPU). */
export function dataParallelWidth(p: { workers: number; gpusPerWorker: number }): number {
  return p.workers * Math.max(p.gpusPerWorker, 1);
}

const trainingJobSpecFields = z
  .object({
    model: modelSpecChecked,
    tokenizer: immutable(tokenizerSpecChecked, "spec.tokenizer")
      .optional()
      .describe(
        "How text becomes token ids. Without it, model.from's own (a GGUF's, or a Hugging Face folder's tokenizer.json). Immutable.",
      ),
    data: immutable(dataSpec, "spec.data"),
    training: immutable(trainingSpecChecked, "spec.training"),
    parallelism: immutable(
      parallelismSpec.prefault({}).describe("Data-parallel layout. Immutable."),
      "spec.parallelism",
    ),
    resources: resources.prefault({}).describe("Where and how the worker pods run."),
    checkpoint: checkpointSpec,
    retry: retrySpec
      .prefault({})
      .describe("What to tolerate before failing. May change while the job runs."),
    suspend: z
      .boolean()
      .default(false)
      .describe("Suspend the job: pods are deleted after a checkpoint; clear to resume."),
  })
  .describe("What to train, on what data, and how.");

export const trainingJobSpec = validated(trainingJobSpecFields, [
  {
    rule: "!has(self.training.lora) || has(self.model.from)",
    message: "training.lora adapts a pretrained model: give model.from",
    fieldPath: ".training.lora",
    reason: "FieldValueRequired",
    check: (s) => s.training.lora === undefined || s.model.from !== undefined,
  },
  {
    rule: "has(self.tokenizer) || has(self.model.from)",
    message:
      "give tokenizer (it may be left out only with model.from, whose own tokenizer is used)",
    fieldPath: ".tokenizer",
    reason: "FieldValueRequired",
    check: (s) => s.tokenizer !== undefined || s.model.from !== undefined,
  },
  {
    rule:
      "self.training.globalBatchTokens % (self.data.seqLen * self.training.microBatch * " +
      "self.parallelism.workers * (self.parallelism.gpusPerWorker > 0 ? self.parallelism.gpusPerWorker : 1)) == 0",
    message:
      "training.globalBatchTokens must be divisible by data.seqLen × training.microBatch × parallelism.workers × max(parallelism.gpusPerWorker, 1)",
    fieldPath: ".training.globalBatchTokens",
    check: (s) =>
      s.training.globalBatchTokens %
        (s.data.seqLen * s.training.microBatch * dataParallelWidth(s.parallelism)) ===
      0,
  },
]);

/**
 * The tokenizer a job trains (and its checkpoints are evaluated) with: spec.tokenizer, or
 * spec.model.from's own — inside a GGUF, or a Hugging Face folder's tokenizer.json (an
 * `auto` folder is taken for one; the trainer says so when it has no tokenizer.json).
 * Undefined for a herd checkpoint without spec.tokenizer (the trainer says so too).
 */
export function jobTokenizer(spec: TrainingJobSpec): TokenizerSpec | undefined {
  if (spec.tokenizer) return spec.tokenizer;
  const from = spec.model.from;
  if (!from || from.format === "herd") return undefined;
  const gguf = from.format === "gguf" || (from.format === "auto" && /\.gguf$/i.test(from.uri));
  return { type: gguf ? "gguf" : "huggingface", uri: from.uri };
}

export const trainingJobPhase = z.enum(["Pending", "Running", "Suspended", "Succeeded", "Failed"]);

const seconds = (what: string) => z.number().min(0).describe(what);
const time = (what: string) => z.string().max(64).describe(`${what} (RFC 3339).`);

/** One ended attempt (workflows/goodput.ts AttemptRecord). */
const attemptRecord = z
  .object({
    attempt: z.int().min(1).describe("The attempt's number."),
    start: time("When its pods were created"),
    end: time("When it ended"),
    outcome: z
      .string()
      .max(32)
      .describe("succeeded, preempted, failed, userError, oomKilled, stuck or suspended."),
    reason: z.string().max(128).describe("Why, as in the condition and the event."),
    fromStep: z.int().min(0).describe("The step it resumed from (0: the job's start)."),
    toStep: z.int().min(0).describe("The last step it made."),
    stepsLost: z
      .int()
      .min(0)
      .describe("Steps it made after its last durable checkpoint: trained again."),
    resumeSeconds: seconds(
      "From the end of the attempt before (the job's start, for the first) to its first step.",
    ).optional(),
    checkpointSeconds: seconds(
      "From the stop request (SIGTERM) to the checkpoint it then wrote being durable.",
    ).optional(),
    productiveSeconds: seconds("Time spent on the steps that were kept."),
  })
  .describe("An ended attempt.");

const goodput = z
  .object({
    ratio: z.number().min(0).max(1).describe("productiveSeconds / wallSeconds."),
    productiveSeconds: seconds("Time spent on training steps that were kept, all attempts."),
    wallSeconds: seconds("From startTime to now (or the job's end), less suspendedSeconds."),
    suspendedSeconds: seconds("Time the job was suspended on purpose."),
    stepsLost: z.int().min(0).describe("Steps trained again, all attempts."),
  })
  .describe("How much of the job's time went into training that was kept.");

export const trainingJobStatus = z
  .object({
    phase: trainingJobPhase
      .optional()
      .describe("Pending, Running, Suspended, Succeeded or Failed."),
    conditions: workflowStatusFields.conditions,
    step: z.int().min(0).optional().describe("Optimizer steps completed."),
    totalSteps: z.int().min(0).optional().describe("Steps the job will train in all."),
    tokensSeen: z.int().min(0).optional().describe("Training tokens consumed."),
    loss: z.number().optional().describe("Training loss at the last reported step."),
    learningRate: z.number().optional().describe("Learning rate at the last reported step."),
    tokensPerSecond: z
      .number()
      .optional()
      .describe("Recent training throughput, all workers together."),
    lastCheckpoint: z
      .object({
        step: z.int().min(0).describe("Optimizer step the checkpoint holds."),
        uri: z.string().max(2048).describe("Where the checkpoint directory is."),
        time: z.string().max(64).describe("When it became durable (RFC 3339)."),
      })
      .optional()
      .describe("The newest durable checkpoint."),
    attempts: z.int().min(0).optional().describe("Attempts started (pod sets created)."),
    preemptions: z.int().min(0).optional().describe("Attempts ended by preemption."),
    failures: z.int().min(0).optional().describe("Attempts ended by failure."),
    workflowId: workflowStatusFields.workflowId,
    observedGeneration: workflowStatusFields.observedGeneration,
    startTime: z.string().max(64).optional().describe("When training first started."),
    completionTime: z.string().max(64).optional().describe("When the job succeeded or failed."),
    message: workflowStatusFields.message,
    recoveries: workflowStatusFields.recoveries,
    attemptHistory: z
      .array(attemptRecord)
      .max(20)
      .optional()
      .describe("The newest ended attempts (at most 20), oldest first."),
    goodput: goodput.optional(),
  })
  .describe("Observed state, written by the job's workflow only.");

export const trainingJob = z
  .object({
    apiVersion: z.literal(apiVersion).describe("herd.dev/v1alpha1"),
    kind: z.literal("TrainingJob").describe("TrainingJob"),
    metadata: objectMeta,
    spec: trainingJobSpec,
    status: trainingJobStatus.optional(),
  })
  .describe("Trains a LLaMA model durably: survives preemption by resuming from checkpoints.");

export type TrainingJob = z.output<typeof trainingJob>;
export type TrainingJobSpec = z.output<typeof trainingJobSpec>;
export type TrainingJobStatus = z.output<typeof trainingJobStatus>;
export type TokenizerSpec = z.output<typeof tokenizerSpec>;
export type PretrainedSource = z.output<typeof pretrainedSource>;
