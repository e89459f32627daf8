// Typed view of the native engine's training binding (native/src/binding/engine.cc).
import { native } from "./index.ts";
import type { ModelConfig } from "../crds/model.ts";
import type { ExampleOptions, MixtureOptions } from "./data.ts";

export type { ModelConfig } from "../crds/model.ts";

export interface OptimizerOptions {
  peakLr: number;
  minLrRatio: number;
  warmupSteps: number;
  /** Where the cosine schedule reaches peakLr · minLrRatio. */
  totalSteps: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay on matrices (not on RMSNorm gains). */
  weightDecay: number;
  /** Global gradient-norm clipping threshold; 0 disables. */
  gradClip: number;
}

/**
 * Where batches come from. `text-bytes`: a text's bytes are the tokens (vocabulary 256).
 * `mixture`: token shards of several sources sampled by weight (native/data.ts's
 * MixtureOptions, the loader's own sampling rule and state).
 */
export type SourceOptions =
  | { kind: "text-bytes"; text: Uint8Array; seed: number }
  | ({ kind: "mixture" } & MixtureOptions)
  /** Instruction examples: the shard-*.bin files of `herd data prepare --instruct`. */
  | ({ kind: "examples" } & ExampleOptions);

export interface TrainerOptions {
  model: ModelConfig;
  optimizer: OptimizerOptions;
  seqLen: number;
  /** Sequences per forward/backward pass. */
  microBatch: number;
  /** Micro-batches whose gradients add up to one optimizer step. */
  accumSteps: number;
  /** Seed of the initial weights. */
  seed: number;
  /** OpenMP and OpenBLAS threads; same seed, data and threads give bit-identical weights. */
  threads: number;
  /** Data-parallel peers (joinGroup): this rank reads its share of each global batch and every rank applies the same averaged update. */
  group?: Group;
  /**
   * cpu (default), or cuda: forward, backward and AdamW on a GPU (libherd_cuda.so, loaded at
   * run time); tensors() and setTensors() then copy from and to the device.
   */
  backend?: "cpu" | "cuda";
  /** cuda: the device ordinal (default 0). */
  device?: number;
  /** cuda: bf16 activations and matrix operands with fp32 master weights (default), or fp32. */
  precision?: "bf16" | "fp32";
  /** cuda: recompute norms and SwiGLU in the backward instead of keeping them. */
  recompute?: boolean;
  /** cuda: no atomics; the same inputs give the same bits. */
  deterministic?: boolean;
  /**
   * cuda with a group: shard AdamW's state over the ranks (reduce-scatter, all-gather). Reading
   * the device's state (syncHost, tensors) then gathers the shards, a collective: every rank
   * calls syncHost() at the same step, as herd train does at each checkpoint.
   */
  shardOptimizer?: boolean;
  /** Train LoRA adapters of these block matrices instead of every weight (engine/lora.h). */
  lora?: LoraOptions;
  source: SourceOptions;
}

/** LoRA (Hu et al. 2021): W = W0 + (alpha / rank) · B·A for each target of every block. */
export interface LoraOptions {
  rank: number;
  alpha: number;
  /** Meta names of the block matrices: wq wk wv wo (attention), w1 w2 w3 (SwiGLU). */
  targets: LoraTarget[];
}
export const loraTargets = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"] as const;
export type LoraTarget = (typeof loraTargets)[number];

/** How a process joins its data-parallel group (native/src/dist/, Gloo over TCP). */
export interface GroupOptions {
  rank: number;
  world: number;
  /** Rank 0's rendezvous store: its host (name or IP) and port. Rank 0 serves it on bindHost:port. */
  host: string;
  port: number;
  /** The address this rank listens on for its peers (the pod's IP); default 127.0.0.1. */
  bindHost?: string;
  /** Bounds joining (every rank must arrive) and each collective; default 300 000. */
  timeoutMs?: number;
}

/** A joined group: the collective the trainer averages gradients with. */
export interface Group {
  readonly rank: number;
  readonly world: number;
  /** Element-wise sum over all ranks, as a new array; every rank must call it with the same length. Rejects when a peer is gone or late past the timeout. */
  allReduceSum(data: Float32Array): Promise<Float32Array>;
  /** Drops this handle's reference; the connections close once no trainer uses them. */
  close(): void;
}

export interface StepResult {
  /** Mean cross-entropy over the step's tokens. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Learning rate the step used. */
  lr: number;
  /** With a group: some rank asked to stop, so every rank stops after this step. */
  stop: boolean;
}

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/**
 * params: weights; grads: last gradients; m, v: AdamW's moments. With LoRA: lora (the
 * adapters A and B), lora_grads, base (the targets' frozen weights); m and v are then the
 * adapters'.
 */
export type TensorSet = "params" | "grads" | "m" | "v" | "lora" | "lora_grads" | "base";
/** The sets a trainer's state is made of (what a checkpoint holds). */
export type StateSet = Exclude<TensorSet, "grads" | "lora_grads">;

export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  tokens: number;
  adamStep: number;
  /** The token source's opaque state (JSON text). */
  sourceState: string;
  numParameters: number;
  /** Parameters AdamW trains: numParameters, or with LoRA the adapters'. */
  trainableParameters: number;
  /** Learning rate of the next step. */
  lr: number;
}

export interface Trainer {
  /**
   * One optimizer step on the source's batch for the current step, off the JS thread.
   * stopRequested: this rank wants to stop; the result's `stop` says whether any rank did.
   */
  step(stopRequested?: boolean): Promise<StepResult>;
  /**
   * Logits [batch·seqLen, vocab]; with targets also the mean loss over the learned targets
   * (a target of −1 is not learned) and each token's cross-entropy −log p(target)
   * (tokenLosses, [batch·seqLen]). `positions` packs examples into rows: each token's position
   * in its example, 0 where one starts; attention stays inside each. No gradients.
   */
  forward(
    tokens: Int32Array,
    batch: number,
    seqLen: number,
    targets?: Int32Array,
    positions?: Int32Array,
  ): Promise<{ logits: Float32Array; loss: number; tokenLosses?: Float32Array }>;
  /** Forward and backward of the mean loss; gradients replace tensors("grads"). CPU backend only. */
  lossAndGrads(
    tokens: Int32Array,
    batch: number,
    seqLen: number,
    targets: Int32Array,
    positions?: Int32Array,
  ): Promise<{ logits: Float32Array; loss: number }>;
  /** Clip the current gradients and take one AdamW step at the scheduled rate. */
  update(): Promise<StepResult>;
  /** Copies of a tensor set, in checkpoint order with checkpoint names. */
  tensors(set: TensorSet): NamedTensor[];
  /** cuda: copies the device's state to the host mirror if a step ran since (tensors() does it too). */
  syncHost(): void;
  /** Replaces a whole tensor set; every tensor must be given with its exact size. */
  setTensors(set: StateSet, tensors: Record<string, Float32Array>): void;
  /**
   * Where each tensor lies, in elements, in a set's buffer (default params): one after the
   * other, in checkpoint order, so a set's buffer is its safetensors file's data section.
   */
  layout(set?: TensorSet): TensorLayout[];
  /** Copies `into.length` elements of a set's buffer, from element `offset`, into `into`. */
  readSet(set: TensorSet, offset: number, into: Float32Array): void;
  /** Copies `from` into a set's buffer at element `offset` (the device takes it before its next step). */
  writeSet(set: StateSet, offset: number, from: Float32Array): void;
  state(): TrainerState;
  /**
   * Copies the state sets (params, m, v; with LoRA lora and base) so a checkpoint can be
   * written from them while training goes on; returns the bytes copied. One at a time.
   */
  snapshot(): number;
  /** readSet on the snapshot; allowed while a step runs. */
  readSnapshot(set: StateSet, offset: number, into: Float32Array): void;
  releaseSnapshot(): void;
  /** The LoRA options it trains with, or undefined when every weight trains. */
  lora(): LoraOptions | undefined;
  setState(state: Pick<TrainerState, "step" | "tokens" | "adamStep" | "sourceState">): void;
}

export interface TensorLayout {
  name: string;
  shape: number[];
  /** Elements before it in a set's buffer. */
  offset: number;
  size: number;
}

export interface EngineBinding {
  /** A trainer with freshly initialised weights (from options.seed); load a checkpoint with setTensors/setState. */
  createTrainer(options: TrainerOptions): Trainer;
  /** Joins this process to its data-parallel group; resolves once every rank has joined. */
  joinGroup(options: GroupOptions): Promise<Group>;
}

const { Trainer: TrainerClass, joinGroup } = native as unknown as {
  Trainer: new (options: TrainerOptions) => Trainer;
  joinGroup(options: GroupOptions): Promise<Group>;
};

export const engine: EngineBinding = {
  createTrainer: (options) => new TrainerClass(options),
  joinGroup: (options) => joinGroup(options),
};
