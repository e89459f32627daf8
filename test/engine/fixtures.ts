// What the engine tests share: the trainer options of the binding tests (llama-tiny with
// grouped-query attention, 2 micro-batches of 2 × 32 bytes) and the small TrainingJob that
// `herd train --local` is run on, with the command itself.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { resolveModel } from "../../crds/model.ts";
import type { TrainerOptions } from "../../native/engine.ts";
import { shakespeare } from "../data/files.ts";
import { readDecompressed } from "../../workers/compressed.ts";

const root = path.resolve(import.meta.dirname, "../..");
export const herdBin = path.join(root, "bin/herd.mjs");
export const corpus = shakespeare;
const text = readDecompressed(corpus);

/** AdamW as the tests and benchmarks set it: a short warm-up, a 10-step schedule. */
export const optimizerOptions: TrainerOptions["optimizer"] = {
  peakLr: 3e-3,
  minLrRatio: 0.1,
  warmupSteps: 2,
  totalSteps: 10,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  gradClip: 1.0,
};

export function trainerOptions(overrides: Partial<TrainerOptions> = {}): TrainerOptions {
  return {
    model: {
      ...resolveModel(
        { preset: "llama-tiny", normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false },
        256,
      ),
      nKvHeads: 2, // grouped-query attention on the training path too
    },
    optimizer: optimizerOptions,
    seqLen: 32,
    microBatch: 2,
    accumSteps: 2,
    seed: 3,
    threads: 2,
    source: { kind: "text-bytes", text, seed: 3 },
    ...overrides,
  };
}

/**
 * A large model for checkpoint scale (16 heads, byte vocabulary, 8-token rows, one row a
 * step): its size is in its weights, which training this short does not need to be good.
 */
export function largeModelOptions(dim: number, nLayers: number): TrainerOptions {
  const o = trainerOptions({ microBatch: 1, accumSteps: 1, seqLen: 8, threads: 2 });
  return {
    ...o,
    model: {
      ...o.model,
      dim,
      nLayers,
      nHeads: 16,
      nKvHeads: 16,
      ffnHidden: dim * 2.75,
      maxSeqLen: 8,
    },
  };
}

export interface TinyJob {
  steps?: number;
  globalBatchTokens?: number;
  warmupSteps?: number;
  seed?: number;
  /** spec.checkpoint.uri (relative to the manifest's folder) and its cadence. */
  checkpoint?: { uri?: string; intervalSteps?: number; keep?: number };
  /** YAML appended to the spec (indented two spaces). */
  extra?: string;
}

/**
 * A small job in `dir`: llama-tiny, byte tokens, 64-token sequences in micro-batches of 2;
 * by default 12 steps of 4 sequences, a checkpoint every 2.
 */
export function tinyJobManifest(dir: string, name: string, o: TinyJob | string = {}): string {
  const j: TinyJob = typeof o === "string" ? { extra: o } : o;
  const file = path.join(dir, `${name}.yaml`);
  const c = { uri: "unused", intervalSteps: 2, keep: 10, ...j.checkpoint };
  writeFileSync(
    file,
    `apiVersion: herd.dev/v1alpha1
kind: TrainingJob
metadata: { name: ${name} }
spec:
  model: { preset: llama-tiny }
  tokenizer: { type: bytes }
  data:
    sources: [{ name: shakespeare, uri: ${corpus}, format: text }]
    seqLen: 64
  training:
    steps: ${j.steps ?? 12}
    globalBatchTokens: ${j.globalBatchTokens ?? 256}
    microBatch: 2
    optimizer: { warmupSteps: ${j.warmupSteps ?? 3} }
    seed: ${j.seed ?? 5}
  checkpoint: { uri: ${c.uri}, intervalSteps: ${c.intervalSteps}, keep: ${c.keep} }
${j.extra ?? ""}`,
  );
  return file;
}

/**
 * `herd train --local` on 2 threads with JSON logs, stopping after `steps` steps in all;
 * checkpoints in `out`, or the manifest's spec.checkpoint.uri when undefined.
 */
export const herdTrain = (
  file: string,
  out: string | undefined,
  steps: number,
  extra: string[] = [],
  env: NodeJS.ProcessEnv = process.env,
) =>
  spawnSync(
    process.execPath,
    [
      herdBin,
      "train",
      "--local",
      "-f",
      file,
      ...(out === undefined ? [] : ["--out", out]),
      "--steps",
      String(steps),
      "--threads",
      "2",
      "--log",
      "json",
      ...extra,
    ],
    { encoding: "utf8", env },
  );
