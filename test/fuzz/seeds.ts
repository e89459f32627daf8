// Writes each harness's seed corpus, test/fuzz/corpus/<name>/seed-*, from herd's own writers
// on small random models, so the fuzzer starts from well-formed files and mutates inward.
// Deterministic: the same files every run. Crash inputs kept as regression cases are named
// crash-* and left alone.
//
//   node --import tsx test/fuzz/seeds.ts
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { closeSync, openSync, readSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ModelConfig } from "../../crds/model.ts";
import { writeShard } from "../../native/data.ts";
import {
  encodeGgufModel,
  type LoadedModel,
  tensorShapes,
  writeHerd,
  writeHf,
  writeLlama2c,
} from "../../workers/model/formats.ts";
import { encodeGguf, type GgufWriteValue, ggmlType } from "../../workers/model/gguf.ts";
import { smollm2Path } from "../../workers/model/smollm2.ts";
import { byteToUnicode } from "../../workers/model/tokenizers.ts";
import { encodeSafetensors } from "../../workers/trainer/safetensors.ts";
import { bundle } from "./harness.ts";

const corpusRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), "corpus");

const tiny: ModelConfig = {
  dim: 32,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  ffnHidden: 32,
  vocabSize: 32,
  maxSeqLen: 8,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedEmbeddings: true,
};

function randomModel(c: ModelConfig, seed: number): LoadedModel {
  let s = seed;
  const next = () => ((s = (s * 1103515245 + 12345) % 2147483648), s / 2147483648 - 0.5);
  const tensors: Record<string, Float32Array> = {};
  for (const t of tensorShapes(c))
    tensors[t.name] = Float32Array.from({ length: t.shape.reduce((a, b) => a * b, 1) }, next);
  return { config: c, tensors, format: "herd" };
}

// GGUF tokenizer metadata: GPT-2 byte-level BPE (as SmolLM2) and SentencePiece-style llama.
const bpeTokens = byteToUnicode().slice(0, 30).concat(["Ġ", "he"]);
const gpt2: Record<string, GgufWriteValue> = {
  "tokenizer.ggml.model": { type: "string", value: "gpt2" },
  "tokenizer.ggml.pre": { type: "string", value: "smollm" },
  "tokenizer.ggml.tokens": { type: "strings", value: bpeTokens },
  "tokenizer.ggml.merges": { type: "strings", value: ["h e", "Ġ h"] },
  "tokenizer.ggml.bos_token_id": { type: "u32", value: 1 },
  "tokenizer.ggml.eos_token_id": { type: "u32", value: 2 },
  "tokenizer.ggml.add_bos_token": { type: "bool", value: false },
};
const spmPieces = ["<unk>", "<s>", "</s>", "<0x41>", "<0xE4>", "▁", "▁H", "e", "l", "lo", "▁He"];
const llama: Record<string, GgufWriteValue> = {
  "tokenizer.ggml.model": { type: "string", value: "llama" },
  "tokenizer.ggml.tokens": { type: "strings", value: spmPieces },
  "tokenizer.ggml.scores": { type: "f32s", value: spmPieces.map((_, i) => -i) },
  "tokenizer.ggml.token_type": { type: "i32s", value: spmPieces.map(() => 1) },
  "tokenizer.ggml.bos_token_id": { type: "u32", value: 1 },
  "tokenizer.ggml.add_space_prefix": { type: "bool", value: true },
};

function headOf(file: string | undefined, bytes: number): Buffer | undefined {
  if (!file || !existsSync(file)) return undefined;
  const b = Buffer.alloc(bytes);
  const fd = openSync(file, "r");
  try {
    return b.subarray(0, readSync(fd, b, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}

async function seeds(tmp: string): Promise<Record<string, Buffer[]>> {
  const m = randomModel(tiny, 1);
  const untied = randomModel({ ...tiny, tiedEmbeddings: false, nKvHeads: 2 }, 2);
  const read = (f: string) => readFileSync(path.join(tmp, f));

  const gguf = [
    encodeGgufModel(m, ggmlType.F32, gpt2),
    encodeGgufModel(untied, ggmlType.Q8_0, llama),
    encodeGgufModel(m, ggmlType.Q4_0, gpt2),
    encodeGgufModel(m, ggmlType.Q4_1, llama),
    encodeGgufModel(m, ggmlType.F16, gpt2),
    encodeGgufModel(m, ggmlType.BF16, gpt2),
  ];
  // the start of a real file: its header and metadata keys (the tensor data is 90 MB)
  const smol = headOf(smollm2Path(), 4096);
  if (smol) gguf.push(smol);

  writeLlama2c(path.join(tmp, "tied.bin"), m);
  writeLlama2c(path.join(tmp, "untied.bin"), untied);

  const params = tensorShapes(tiny).map((t) => ({ ...t, data: m.tensors[t.name]! }));
  const safetensors = [
    encodeSafetensors(params, { format: "herd", kind: "model" }),
    encodeSafetensors(params.slice(0, 2)),
    encodeSafetensors([{ name: "empty", shape: [0, 3], data: new Float32Array(0) }]),
  ];

  const hf = [];
  for (const [i, model] of [m, untied].entries()) {
    const dir = path.join(tmp, `hf${i}`);
    mkdirSync(dir);
    writeHf(dir, model);
    hf.push(bundle([read(`hf${i}/config.json`), read(`hf${i}/model.safetensors`)]));
  }
  const index = JSON.stringify({
    weight_map: { "model.embed_tokens.weight": "model.safetensors" },
  });
  hf.push(bundle([read("hf0/config.json"), read("hf0/model.safetensors"), index]));

  const herd = [];
  for (const [i, model] of [m, untied].entries()) {
    const step = writeHerd(path.join(tmp, `herd${i}`), model, 1);
    const f = (name: string) => readFileSync(path.join(step, name));
    herd.push(bundle([f("trainer.json"), f("model.safetensors"), ""]));
    if (i === 0) herd.push(bundle([f("trainer.json"), f("model.safetensors"), f("manifest.json")]));
  }

  const shard = [];
  for (const [i, vocab] of [300, 70000].entries()) {
    const ids = Int32Array.from({ length: 24 }, (_, k) => (k * 37) % vocab);
    await writeShard(path.join(tmp, `shard${i}.bin`), ids, [0, 5, 5, 24], vocab);
    shard.push(read(`shard${i}.bin`));
  }

  return {
    gguf,
    "gguf-tokenizer": [encodeGguf(gpt2, []), encodeGguf(llama, [])],
    llama2c: [read("tied.bin"), read("untied.bin")],
    safetensors,
    hf,
    herd,
    shard,
  };
}

async function main() {
  const tmp = mkdtempSync(path.join(tmpdir(), "herd-seeds-"));
  try {
    for (const [name, inputs] of Object.entries(await seeds(tmp))) {
      const dir = path.join(corpusRoot, name);
      mkdirSync(dir, { recursive: true });
      for (const f of readdirSync(dir)) if (f.startsWith("seed-")) rmSync(path.join(dir, f));
      inputs.forEach((b, i) => writeFileSync(path.join(dir, `seed-${i}`), b));
      console.log(`${name}: ${inputs.length} seeds`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
