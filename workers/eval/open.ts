// Opens a model for inference: reads it in any format (workers/model/formats.ts), picks its
// tokenizer (the one given, or the one a GGUF file carries) and loads the weights into the
// native inference engine.
import { readFileSync } from "node:fs";
import os from "node:os";
import { inference as binding, type Inference } from "../../native/inference.ts";
import { readModel, type LoadedModel, type ModelFormat } from "../model/formats.ts";
import { parseGguf } from "../model/gguf.ts";
import { readHfTokenizer } from "../model/hf-tokenizer.ts";
import {
  bytesTokenizer,
  ggufTokenizer,
  sentencePieceTokenizer,
  type TextTokenizer,
} from "../model/tokenizers.ts";
import type { EvalModel } from "./tasks.ts";

export type TokenizerChoice =
  | { type: "sentencepiece"; uri: string }
  /** The tokenizer inside a GGUF model file (a fine-tuned herd checkpoint's base model's). */
  | { type: "gguf"; uri: string }
  /** A Hugging Face folder's tokenizer.json (or the file). */
  | { type: "huggingface"; uri: string }
  | { type: "bytes" };

export interface OpenedModel extends EvalModel {
  loaded: LoadedModel;
  /** The file the tokenizer came from (a GGUF or SentencePiece file; none for bytes). */
  tokenizerFile?: string;
}

export class OpenError extends Error {
  override name = "OpenError";
}

/** The schema's format names (crds/evaljob.ts) to the readers'. */
export function formatOf(name: string | undefined): ModelFormat | "auto" {
  if (name === undefined || name === "auto") return "auto";
  if (name === "safetensors" || name === "hf") return "hf";
  if (name === "herd" || name === "gguf" || name === "llama2c") return name;
  throw new OpenError(
    `unknown checkpoint format ${JSON.stringify(name)} (herd, safetensors, gguf, llama2c)`,
  );
}

export function openModel(options: {
  path: string;
  format?: string;
  tokenizer?: TokenizerChoice;
  threads?: number;
  /** Cap on the context (and KV cache) length; the model's own when larger or omitted. */
  maxSeqLen?: number;
  warn?: (m: string) => void;
}): OpenedModel {
  const loaded = readModel(options.path, formatOf(options.format), options.warn);
  let tokenizer: TextTokenizer | undefined;
  if (options.tokenizer?.type === "bytes") tokenizer = bytesTokenizer;
  else if (options.tokenizer?.type === "sentencepiece")
    tokenizer = sentencePieceTokenizer(options.tokenizer.uri);
  else if (options.tokenizer?.type === "gguf")
    tokenizer = ggufTokenizer(
      parseGguf(readFileSync(options.tokenizer.uri), options.tokenizer.uri),
    );
  else if (options.tokenizer?.type === "huggingface")
    tokenizer = readHfTokenizer(options.tokenizer.uri).tokenizer;
  else tokenizer = loaded.tokenizer;
  if (!tokenizer)
    throw new OpenError(
      `${options.path}: a ${loaded.format} checkpoint carries no tokenizer; give one`,
    );
  if (tokenizer.vocabSize > loaded.config.vocabSize)
    throw new OpenError(
      `the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${loaded.config.vocabSize}`,
    );
  const maxSeqLen = Math.min(loaded.config.maxSeqLen, options.maxSeqLen ?? Infinity);
  const inf: Inference = binding.createInference({
    model: { ...loaded.config, maxSeqLen },
    threads: options.threads ?? os.availableParallelism(),
  });
  inf.setTensors(loaded.tensors);
  const tokenizerFile =
    options.tokenizer && options.tokenizer.type !== "bytes"
      ? options.tokenizer.uri
      : !options.tokenizer &&
          (loaded.format === "gguf" || (loaded.format === "hf" && loaded.tokenizer))
        ? options.path
        : undefined;
  return { loaded, inference: inf, tokenizer, maxSeqLen, ...(tokenizerFile && { tokenizerFile }) };
}
