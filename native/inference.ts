// Typed view of the inference binding (native/src/binding/inference.cc): a KV-cache forward
// pass, sampling, log-likelihood scoring and rolling-window perplexity on the CPU engine.
import { native } from "./index.ts";
import type { ModelConfig } from "../crds/model.ts";

export interface ScoreRequest {
  /** Tokens conditioned on; never empty (prepend BOS when a task has no context). */
  context: Int32Array;
  /** Tokens whose log-likelihood is returned; never empty. */
  continuation: Int32Array;
}

export interface ScoreResult {
  /** Σ log P(continuation token | all tokens before it), natural log. */
  logprob: number;
  /** Every continuation token was the model's arg-max. */
  greedy: boolean;
  tokens: number;
  /** Context tokens dropped on the left to fit maxSeqLen. */
  truncated: number;
}

export interface GenerateOptions {
  maxNewTokens?: number;
  /** 0 (the default) is greedy decoding. */
  temperature?: number;
  /** Nucleus sampling mass, (0, 1]. */
  topP?: number;
  seed?: number;
  /** Stop after emitting one of these (it is included in the output). */
  stop?: Int32Array;
  /**
   * Stop once the output ends with one of these token sequences (included). An early exit
   * only: a stop string can tokenize otherwise in context, so cut the decoded text as well.
   */
  stopSequences?: Int32Array[];
}

export interface TensorShape {
  name: string;
  shape: number[];
}

export interface Inference {
  /** The tensors the model needs, in checkpoint order and names (as the trainer's). */
  tensorInfo(): TensorShape[];
  /** Every tensor of tensorInfo(), fp32, exact sizes. */
  setTensors(tensors: Record<string, Float32Array>): void;
  /** Log-likelihood of each continuation; consecutive requests with the same context share it. */
  score(requests: ScoreRequest[]): Promise<ScoreResult[]>;
  /** Σ −log P over tokens[1..] in windows of `window` tokens advancing by `stride`. */
  perplexity(
    tokens: Int32Array,
    window: number,
    stride: number,
  ): Promise<{ nll: number; tokens: number }>;
  /** New tokens after the prompt. */
  generate(prompt: Int32Array, options: GenerateOptions): Promise<Int32Array>;
  /**
   * `samples` outputs of one prompt, computed once (maj1@k); the random stream runs on from
   * one sample to the next, so the set depends on the seed alone.
   */
  generateSamples(
    prompt: Int32Array,
    options: GenerateOptions & { samples: number },
  ): Promise<Int32Array[]>;
  /** Logits [n, vocab] of every position, fed through the KV cache `chunk` tokens at a time. */
  logits(tokens: Int32Array, chunk: number): Promise<Float32Array>;
}

export interface InferenceBinding {
  createInference(options: { model: ModelConfig; threads: number }): Inference;
}

export const inference = native as unknown as InferenceBinding;
