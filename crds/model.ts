// From a TrainingJob's spec.model (a preset and/or explicit fields) and the tokenizer's
// vocabulary to the complete shape the engine builds, with errors that name the field.
import { ManifestError } from "./manifest.ts";
import { ffnHidden, presets } from "./presets.ts";
import type { TrainingJobSpec } from "./trainingjob.ts";

/** Every dimension of a LLaMA model, nothing left to defaults. */
export interface ModelConfig {
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  ffnHidden: number;
  vocabSize: number;
  maxSeqLen: number;
  normEps: number;
  ropeTheta: number;
  tiedEmbeddings: boolean;
}

type ModelSpec = TrainingJobSpec["model"];

/**
 * Resolves spec.model: the preset's fields, overridden by explicit ones; vocabSize defaults to
 * the tokenizer's and may be larger (padding), never smaller. With a pretrained model
 * (spec.model.from) its architecture is the model, and explicit fields must agree with it.
 */
export function resolveModel(
  spec: ModelSpec,
  tokenizerVocab: number,
  pretrained?: ModelConfig,
): ModelConfig {
  if (pretrained) return pretrainedModel(spec, tokenizerVocab, pretrained);
  const base = spec.preset ? presets[spec.preset] : undefined;
  const field = <K extends "dim" | "nLayers" | "nHeads" | "ffnMultipleOf" | "maxSeqLen">(
    k: K,
    fallback?: number,
  ): number => {
    const v = spec[k] ?? base?.[k] ?? fallback;
    if (v === undefined)
      throw new ManifestError(`spec.model.${k}: required when spec.model.preset is not given`);
    return v;
  };
  const dim = field("dim");
  const nLayers = field("nLayers");
  const nHeads = field("nHeads");
  const ffnMultipleOf = field("ffnMultipleOf", 256);
  const maxSeqLen = field("maxSeqLen", 2048);
  // An explicit nHeads without nKvHeads means plain multi-head attention.
  const nKvHeads = spec.nKvHeads ?? (spec.nHeads !== undefined ? nHeads : base?.nKvHeads) ?? nHeads;
  const vocabSize = spec.vocabSize ?? tokenizerVocab;
  if (dim % nHeads !== 0)
    throw new ManifestError(`spec.model.nHeads: dim ${dim} is not divisible by nHeads ${nHeads}`);
  if ((dim / nHeads) % 2 !== 0)
    throw new ManifestError(
      `spec.model.nHeads: head dim ${dim / nHeads} must be even for rotary embeddings`,
    );
  if (nHeads % nKvHeads !== 0)
    throw new ManifestError(
      `spec.model.nKvHeads: nHeads ${nHeads} is not divisible by nKvHeads ${nKvHeads}`,
    );
  checkVocab(vocabSize, tokenizerVocab);
  return {
    dim,
    nLayers,
    nHeads,
    nKvHeads,
    ffnHidden: ffnHidden(dim, ffnMultipleOf),
    vocabSize,
    maxSeqLen,
    normEps: spec.normEps ?? 1e-5,
    ropeTheta: spec.ropeTheta ?? 10000,
    tiedEmbeddings: spec.tiedEmbeddings ?? false,
  };
}

function checkVocab(vocabSize: number, tokenizerVocab: number) {
  if (vocabSize < tokenizerVocab)
    throw new ManifestError(
      `spec.model.vocabSize: ${vocabSize} is smaller than the tokenizer's vocabulary (${tokenizerVocab})`,
    );
}

/**
 * The pretrained model's architecture; every field the job gives must be the model's. That
 * holds for maxSeqLen too: it is the context the checkpoints declare (an evaluator caps its
 * context there), and a training row is spec.data.seqLen however long the model's context.
 */
function pretrainedModel(spec: ModelSpec, tokenizerVocab: number, m: ModelConfig): ModelConfig {
  const given: [keyof ModelConfig, number | boolean | undefined][] = [
    ["dim", spec.dim],
    ["nLayers", spec.nLayers],
    ["nHeads", spec.nHeads],
    ["nKvHeads", spec.nKvHeads],
    ["vocabSize", spec.vocabSize],
    ["normEps", spec.normEps],
    ["ropeTheta", spec.ropeTheta],
    ["tiedEmbeddings", spec.tiedEmbeddings],
    ["maxSeqLen", spec.maxSeqLen],
    [
      "ffnHidden",
      spec.ffnMultipleOf !== undefined ? ffnHidden(m.dim, spec.ffnMultipleOf) : undefined,
    ],
  ];
  for (const [k, v] of given)
    if (v !== undefined && v !== m[k])
      throw new ManifestError(
        `spec.model.${k === "ffnHidden" ? "ffnMultipleOf" : k}: the job says ${k} ${String(v)}, ` +
          `the model in spec.model.from has ${String(m[k])}; leave it out or make it match`,
      );
  if (m.vocabSize < tokenizerVocab)
    throw new ManifestError(
      `spec.model.from: the model's vocabulary (${m.vocabSize}) is smaller than the data's ` +
        `tokenizer's (${tokenizerVocab}): the data was not made with this model's tokenizer`,
    );
  return m;
}

/** Trainable parameters: embedding, per block 4 attention + 3 FFN matrices and 2 gains, final gain, output. */
export function parameterCount(c: ModelConfig): number {
  const kvDim = (c.dim / c.nHeads) * c.nKvHeads;
  const block = 2 * c.dim * c.dim + 2 * c.dim * kvDim + 3 * c.dim * c.ffnHidden + 2 * c.dim;
  return (
    c.vocabSize * c.dim + c.nLayers * block + c.dim + (c.tiedEmbeddings ? 0 : c.vocabSize * c.dim)
  );
}
