// Typed view of the native engine's training binding (native/src/binding/engine.cc).
import { native } from "./index.ts";
import type { ModelConfig } from "../crds/model.ts";

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

/** Where batches come from. `text-bytes`: a text's bytes are the tokens (vocabulary 256). */
export type SourceOptions = { kind: "text-bytes"; text: Uint8Array; seed: number };

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
  rank?: number;
  world?: number;
  source: SourceOptions;
}

export interface StepResult {
  /** Mean cross-entropy over the step's tokens. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Learning rate the step used. */
  lr: number;
}

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** params: weights; grads: last gradients; m, v: AdamW's moments. */
export type TensorSet = "params" | "grads" | "m" | "v";

export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  tokens: number;
  adamStep: number;
  /** The token source's opaque state (JSON text). */
  sourceState: string;
  numParameters: number;
  /** Learning rate of the next step. */
  lr: number;
}

export interface Trainer {
  /** One optimizer step on the source's batch for the current step, off the JS thread. */
  step(): Promise<StepResult>;
  /** Logits [batch·seqLen, vocab] and, with targets, the mean loss. No gradients. */
  forward(
    tokens: Int32Array,
    batch: number,
    seqLen: number,
    targets?: Int32Array,
  ): Promise<{ logits: Float32Array; loss: number }>;
  /** Forward and backward of the mean loss; gradients replace tensors("grads"). */
  lossAndGrads(
    tokens: Int32Array,
    batch: number,
    seqLen: number,
    targets: Int32Array,
  ): Promise<{ logits: Float32Array; loss: number }>;
  /** Clip the current gradients and take one AdamW step at the scheduled rate. */
  update(): Promise<StepResult>;
  /** Copies of a tensor set, in checkpoint order with checkpoint names. */
  tensors(set: TensorSet): NamedTensor[];
  /** Replaces a whole tensor set; every tensor must be given with its exact size. */
  setTensors(set: Exclude<TensorSet, "grads">, tensors: Record<string, Float32Array>): void;
  state(): TrainerState;
  setState(state: Pick<TrainerState, "step" | "tokens" | "adamStep" | "sourceState">): void;
}

export interface EngineBinding {
  createTrainer(options: TrainerOptions): Trainer;
}

export const engine = native as unknown as EngineBinding;
