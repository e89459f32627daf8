// Small random models for the format and generation tests: every tensor of a config, matrices
// random (scaled 0.1), norms near 1, and the logits the inference engine gives for them.
import type { ModelConfig } from "../../crds/model.ts";
import { inference } from "../../native/inference.ts";
import { randomMatrix } from "../../native/reference.ts";
import { tensorShapes, type LoadedModel } from "../../workers/model/formats.ts";

export const config: ModelConfig = {
  dim: 64,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  ffnHidden: 96,
  vocabSize: 64,
  maxSeqLen: 32,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedEmbeddings: false,
};

export function randomModel(c: ModelConfig, seed = 1): LoadedModel {
  const tensors: Record<string, Float32Array> = {};
  let s = seed;
  for (const t of tensorShapes(c)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    tensors[t.name] =
      t.shape.length === 1
        ? new Float32Array(n).fill(1).map((x, i) => x + 0.01 * (i % 7))
        : randomMatrix(n, s++).map((x) => x * 0.1);
  }
  return { config: c, tensors, format: "herd" };
}

export async function logitsOf(m: LoadedModel, tokens: number[]): Promise<Float32Array> {
  const inf = inference.createInference({ model: m.config, threads: 1 });
  inf.setTensors(m.tensors);
  return inf.logits(Int32Array.from(tokens), tokens.length);
}
