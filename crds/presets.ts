// Model presets. The paper's four (LLaMA-1, Table 2) and small ones for CPUs, tests and GPU
// benchmarks, all following the same rules: head dim = dim / heads, SwiGLU hidden size
// 2/3·4·dim rounded up to a multiple of ffnMultipleOf, RMSNorm, rotary embeddings.

export interface ModelShape {
  dim: number;
  nLayers: number;
  nHeads: number;
  /** Key/value heads for grouped-query attention; equal to nHeads in LLaMA-1. */
  nKvHeads: number;
  ffnMultipleOf: number;
  maxSeqLen: number;
}

export interface Preset extends ModelShape {
  /** Peak learning rate and batch size in tokens, from the paper for its four models. */
  peakLr: number;
  batchTokens: number;
}

export const presets = {
  "llama-7b": {
    dim: 4096,
    nLayers: 32,
    nHeads: 32,
    nKvHeads: 32,
    ffnMultipleOf: 256,
    maxSeqLen: 2048,
    peakLr: 3.0e-4,
    batchTokens: 4_194_304,
  },
  "llama-13b": {
    dim: 5120,
    nLayers: 40,
    nHeads: 40,
    nKvHeads: 40,
    ffnMultipleOf: 256,
    maxSeqLen: 2048,
    peakLr: 3.0e-4,
    batchTokens: 4_194_304,
  },
  "llama-33b": {
    dim: 6656,
    nLayers: 60,
    nHeads: 52,
    nKvHeads: 52,
    ffnMultipleOf: 256,
    maxSeqLen: 2048,
    peakLr: 1.5e-4,
    batchTokens: 4_194_304,
  },
  "llama-65b": {
    dim: 8192,
    nLayers: 80,
    nHeads: 64,
    nKvHeads: 64,
    ffnMultipleOf: 256,
    maxSeqLen: 2048,
    peakLr: 1.5e-4,
    batchTokens: 4_194_304,
  },
  // GPU benchmark sizes (~125M, ~350M, ~1B parameters with a 32,000-token vocabulary).
  "llama-1b": {
    dim: 2048,
    nLayers: 22,
    nHeads: 16,
    nKvHeads: 16,
    ffnMultipleOf: 256,
    maxSeqLen: 2048,
    peakLr: 4.0e-4,
    batchTokens: 1_048_576,
  },
  "llama-350m": {
    dim: 1024,
    nLayers: 24,
    nHeads: 16,
    nKvHeads: 16,
    ffnMultipleOf: 256,
    maxSeqLen: 2048,
    peakLr: 6.0e-4,
    batchTokens: 524_288,
  },
  "llama-125m": {
    dim: 768,
    nLayers: 12,
    nHeads: 12,
    nKvHeads: 12,
    ffnMultipleOf: 256,
    maxSeqLen: 2048,
    peakLr: 6.0e-4,
    batchTokens: 524_288,
  },
  // CPU sizes: demos, tests and the CPU benchmark.
  "llama-15m": {
    dim: 288,
    nLayers: 6,
    nHeads: 6,
    nKvHeads: 6,
    ffnMultipleOf: 32,
    maxSeqLen: 256,
    peakLr: 1.0e-3,
    batchTokens: 32_768,
  },
  "llama-tiny": {
    dim: 64,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 4,
    ffnMultipleOf: 32,
    maxSeqLen: 128,
    peakLr: 3.0e-3,
    batchTokens: 4_096,
  },
} as const satisfies Record<string, Preset>;

export type PresetName = keyof typeof presets;
export const presetNames = Object.keys(presets) as [PresetName, ...PresetName[]];

/** SwiGLU hidden size: 2/3 · 4 · dim, rounded up to a multiple of `multipleOf`. */
export function ffnHidden(dim: number, multipleOf: number): number {
  const hidden = Math.floor((2 * 4 * dim) / 3);
  return multipleOf * Math.ceil(hidden / multipleOf);
}
