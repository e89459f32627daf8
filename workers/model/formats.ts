// Model formats in and out. Every reader returns the same thing: the model's shape (the
// engine's ModelConfig) and its tensors in herd's names and layout (Meta's LLaMA names,
// matrices [out, in] row-major, rotary pairs interleaved), fp32 — what the trainer writes and
// the inference engine takes. Readers check everything they read and fail with a
// ModelFormatError naming the file and the problem.
//
//   herd       a checkpoint directory (step-NNNNNNNNN/ or a folder with LATEST):
//              model.safetensors + trainer.json (its "model" field), manifest-verified
//   hf         a Hugging Face LLaMA folder: config.json + model.safetensors (or shards with
//              model.safetensors.index.json), F32/F16/BF16; q/k rows un-permuted (below)
//   gguf       a GGUF file (llama architecture), dequantised; carries its tokenizer
//   llama2c    llama2.c's legacy .bin: 7 int32 (dim, hidden, layers, heads, kv heads,
//              ±vocab, seq_len; negative vocab = separate classifier), then fp32 tensors
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import type { ModelConfig } from "../../crds/model.ts";
import { loadCheckpoint, saveCheckpoint, type VerifiedFiles } from "../trainer/checkpoint.ts";
import { encodeSafetensors } from "../trainer/safetensors.ts";
import {
  dequantize,
  encodeGguf,
  GgufError,
  ggmlType,
  type GgufWriteValue,
  metaNumber,
  metaString,
  parseGguf,
  quantize,
} from "./gguf.ts";
import { ggufTokenizer, type TextTokenizer } from "./tokenizers.ts";
import { readHfTokenizer } from "./hf-tokenizer.ts";

export class ModelFormatError extends Error {
  override name = "ModelFormatError";
}

export type ModelFormat = "herd" | "hf" | "gguf" | "llama2c";

export interface LoadedModel {
  config: ModelConfig;
  tensors: Record<string, Float32Array>;
  /** The tokenizer the file carries (GGUF; tokenizer.json beside Hugging Face weights), if any. */
  tokenizer?: TextTokenizer;
  format: ModelFormat;
  /** Training step and tokens, for herd checkpoints. */
  step?: number;
  tokensSeen?: number;
}

/** herd's tensor names and shapes for a config, in checkpoint order (as native/src/engine/model.cc). */
export function tensorShapes(c: ModelConfig): { name: string; shape: number[] }[] {
  const d = c.dim,
    kvd = (c.dim / c.nHeads) * c.nKvHeads,
    h = c.ffnHidden,
    V = c.vocabSize;
  const out = [{ name: "tok_embeddings.weight", shape: [V, d] }];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `layers.${l}.`;
    out.push(
      { name: p + "attention.wq.weight", shape: [d, d] },
      { name: p + "attention.wk.weight", shape: [kvd, d] },
      { name: p + "attention.wv.weight", shape: [kvd, d] },
      { name: p + "attention.wo.weight", shape: [d, d] },
      { name: p + "feed_forward.w1.weight", shape: [h, d] },
      { name: p + "feed_forward.w2.weight", shape: [d, h] },
      { name: p + "feed_forward.w3.weight", shape: [h, d] },
      { name: p + "attention_norm.weight", shape: [d] },
      { name: p + "ffn_norm.weight", shape: [d] },
    );
  }
  out.push({ name: "norm.weight", shape: [d] });
  if (!c.tiedEmbeddings) out.push({ name: "output.weight", shape: [V, d] });
  return out;
}

function checkConfig(c: ModelConfig, source: string): ModelConfig {
  const ints: (keyof ModelConfig)[] = [
    "dim",
    "nLayers",
    "nHeads",
    "nKvHeads",
    "ffnHidden",
    "vocabSize",
    "maxSeqLen",
  ];
  for (const k of ints) {
    const v = c[k];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0 || v > 1 << 24)
      throw new ModelFormatError(`${source}: ${k} ${String(v)} is not a positive integer`);
  }
  if (c.dim % c.nHeads !== 0 || (c.dim / c.nHeads) % 2 !== 0)
    throw new ModelFormatError(
      `${source}: dim ${c.dim} is not nHeads ${c.nHeads} × an even head size`,
    );
  if (c.nHeads % c.nKvHeads !== 0)
    throw new ModelFormatError(
      `${source}: nHeads ${c.nHeads} is not a multiple of nKvHeads ${c.nKvHeads}`,
    );
  if (
    typeof c.normEps !== "number" ||
    typeof c.ropeTheta !== "number" ||
    !(c.normEps > 0) ||
    !(c.ropeTheta > 0)
  )
    throw new ModelFormatError(`${source}: normEps and ropeTheta must be positive numbers`);
  if (typeof c.tiedEmbeddings !== "boolean")
    throw new ModelFormatError(`${source}: tiedEmbeddings must be true or false`);
  return c;
}

// The number of tensors a config needs, without listing them: a header that claims millions
// of layers must fail on its count, not after building millions of tensor names.
function tensorCount(c: ModelConfig): number {
  return 2 + 9 * c.nLayers + (c.tiedEmbeddings ? 0 : 1);
}

function expectTensorCount(c: ModelConfig, have: number, source: string): void {
  if (have < tensorCount(c))
    throw new ModelFormatError(
      `${source}: ${c.nLayers} layers need ${tensorCount(c)} tensors, the file has ${have}`,
    );
}

function expectShape(name: string, got: number[], want: number[], source: string) {
  if (got.join(",") !== want.join(","))
    throw new ModelFormatError(
      `${source}: tensor ${name} has shape [${got}], the config needs [${want}]`,
    );
}

// ---- herd checkpoints --------------------------------------------------------------------------

/** A herd checkpoint: `dir` is a step-NNNNNNNNN folder or a run folder with LATEST. */
export function readHerd(dir: string, warn: (m: string) => void = () => {}): LoadedModel {
  const required = ["model.safetensors", "trainer.json"];
  const open = (files: Pick<VerifiedFiles, "get" | "path">, step: number): LoadedModel => {
    let state: { model?: ModelConfig; tokens?: number };
    try {
      state = JSON.parse(files.get("trainer.json").toString("utf8")) as typeof state;
    } catch (err) {
      throw new ModelFormatError(
        `${dir}: trainer.json is not valid JSON (${(err as Error).message})`,
      );
    }
    if (typeof state !== "object" || state === null || !state.model)
      throw new ModelFormatError(`${dir}: trainer.json has no model`);
    if (state.tokens !== undefined && !(Number.isSafeInteger(state.tokens) && state.tokens >= 0))
      throw new ModelFormatError(`${dir}: trainer.json tokens is not a token count`);
    const config = checkConfig(state.model, `${dir}/trainer.json`);
    const tensors = readSafetensorsFile(
      files.path("model.safetensors"),
      `${dir}/model.safetensors`,
    );
    expectTensorCount(config, tensors.size, `${dir}/model.safetensors`);
    const out: Record<string, Float32Array> = {};
    for (const t of tensorShapes(config)) {
      const got = tensors.get(t.name);
      if (!got) throw new ModelFormatError(`${dir}: model.safetensors lacks tensor ${t.name}`);
      expectShape(t.name, got.shape, t.shape, `${dir}/model.safetensors`);
      out[t.name] = got.data;
    }
    return { config, tensors: out, format: "herd", step, tokensSeen: state.tokens };
  };
  const base = path.basename(dir);
  const m = /^step-(\d{9})$/.exec(base);
  // a single step folder: open it through its parent's protocol, pinned to that step
  if (m) {
    for (const f of required)
      if (!existsSync(path.join(dir, f))) throw new ModelFormatError(`${dir}: ${f} is missing`);
    const at = (name: string) => path.join(dir, name);
    return open({ path: at, get: (name) => readFileSync(at(name)) }, Number(m[1]));
  }
  const loaded = loadCheckpoint(dir, required, open, warn);
  if (!loaded) throw new ModelFormatError(`${dir}: no herd checkpoint (step-NNNNNNNNN/) found`);
  return loaded.value;
}

/** Writes a model as a herd checkpoint (step 0 unless given) under `dir`, with LATEST. */
export function writeHerd(dir: string, m: LoadedModel, step = m.step ?? 0): string {
  const shapes = tensorShapes(m.config);
  const params = shapes.map((t) => ({ name: t.name, shape: t.shape, data: m.tensors[t.name]! }));
  const state = {
    format: "herd-trainer-state",
    version: 1,
    step,
    tokens: m.tokensSeen ?? 0,
    model: m.config,
    convertedFrom: m.format,
  };
  return saveCheckpoint(
    dir,
    step,
    {
      "model.safetensors": encodeSafetensors(params, { format: "herd", kind: "model" }),
      "trainer.json": JSON.stringify(state, null, 2) + "\n",
    },
    1_000_000,
  );
}

// ---- Hugging Face LLaMA ------------------------------------------------------------------------

interface RawTensor {
  shape: number[];
  data: Float32Array;
}

const dtypeBytes: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

/**
 * A safetensors file of F32, F16 or BF16 tensors, converted to fp32; every bound checked. The
 * file is read tensor by tensor (a positioned read each), never whole: model files past
 * 2 GiB, which one Node Buffer cannot hold, load as long as each tensor is smaller.
 */
export function readSafetensorsFile(file: string, source = file): Map<string, RawTensor> {
  const fd = openSync(file, "r");
  try {
    return decodeSafetensorsAny(fstatSync(fd).size, source, (at, n) => {
      const b = Buffer.alloc(n);
      for (let got = 0; got < n;) {
        const r = readSync(fd, b, got, n - got, at + got);
        if (r === 0) throw new ModelFormatError(`${source}: ends at byte ${at + got}`);
        got += r;
      }
      return b;
    });
  } finally {
    closeSync(fd);
  }
}

/** The same from bytes in memory. */
export function readSafetensorsAny(bytes: Buffer, source: string): Map<string, RawTensor> {
  return decodeSafetensorsAny(bytes.length, source, (at, n) => bytes.subarray(at, at + n));
}

// A safetensors file of `size` bytes, read through `read(at, n)` (only inside the file).
function decodeSafetensorsAny(
  size: number,
  source: string,
  read: (at: number, n: number) => Buffer,
): Map<string, RawTensor> {
  const fail = (msg: string): never => {
    throw new ModelFormatError(`${source}: ${msg}`);
  };
  if (size < 8) fail(`file is ${size} bytes, shorter than the header length`);
  const n = read(0, 8).readBigUInt64LE(0);
  if (n > BigInt(Math.min(size - 8, 100_000_000))) fail(`header length ${n} exceeds the file`);
  const start = 8 + Number(n);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(read(8, Number(n)).toString("utf8")) as Record<string, unknown>;
  } catch (err) {
    return fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header))
    fail("header is not a JSON object");
  const out = new Map<string, RawTensor>();
  for (const [name, v] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const width =
      typeof e?.dtype === "string" && Object.hasOwn(dtypeBytes, e.dtype)
        ? dtypeBytes[e.dtype]
        : undefined;
    if (!width)
      fail(`tensor ${name}: dtype ${JSON.stringify(e?.dtype)} is not supported (F32, F16, BF16)`);
    if (!Array.isArray(e.shape) || !e.shape.every((x) => Number.isSafeInteger(x) && x >= 0))
      fail(`tensor ${name}: bad shape`);
    const [b, en] = Array.isArray(e.data_offsets) ? (e.data_offsets as number[]) : [];
    const count = (e.shape as number[]).reduce((a, x) => a * x, 1);
    if (
      !Number.isSafeInteger(b) ||
      !Number.isSafeInteger(en) ||
      b! < 0 ||
      en! < b! ||
      start + en! > size
    )
      fail(`tensor ${name}: data_offsets lie outside the file`);
    if (en! - b! !== count * width!)
      fail(`tensor ${name}: ${en! - b!} bytes for ${count} elements of ${String(e.dtype)}`);
    out.set(name, {
      shape: e.shape as number[],
      data: toFloat32(read(start + b!, en! - b!), e.dtype as string, count),
    });
  }
  return out;
}

/** Little-endian F32, BF16 or F16 values as fp32. */
function toFloat32(bytes: Buffer, dtype: string, count: number): Float32Array {
  const data = new Float32Array(count);
  if (dtype === "F32") for (let i = 0; i < count; i++) data[i] = bytes.readFloatLE(4 * i);
  else if (dtype === "BF16") {
    const u = new Uint32Array(data.buffer);
    for (let i = 0; i < count; i++) u[i] = bytes.readUInt16LE(2 * i) << 16;
  } else {
    for (let i = 0; i < count; i++) {
      const h = bytes.readUInt16LE(2 * i);
      const s = h & 0x8000 ? -1 : 1,
        ex = (h >> 10) & 31,
        mant = h & 1023;
      data[i] =
        ex === 0
          ? s * mant * 2 ** -24
          : ex === 31
            ? mant
              ? NaN
              : s * Infinity
            : s * (1 + mant / 1024) * 2 ** (ex - 15);
    }
  }
  return data;
}

// Hugging Face's conversion permutes the rows of wq and wk so that rotary embedding rotates
// the two halves of each head (rotate_half) instead of interleaved pairs:
//   hf[h·hd + half·hd/2 + i] = meta[h·hd + 2i + half]   (half ∈ {0, 1}, i < hd/2)
// reorderHeadRows moves rows between the layouts; unpermuteRows reads HF, permuteRows writes it.
function reorderHeadRows(
  w: Float32Array,
  heads: number,
  rows: number,
  cols: number,
  to: "meta" | "hf",
): Float32Array {
  const hd = rows / heads,
    out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let half = 0; half < 2; half++)
      for (let i = 0; i < hd / 2; i++) {
        const hf = (h * hd + half * (hd / 2) + i) * cols,
          meta = (h * hd + 2 * i + half) * cols;
        const [from, dest] = to === "meta" ? [hf, meta] : [meta, hf];
        out.set(w.subarray(from, from + cols), dest);
      }
  return out;
}

export const unpermuteRows = (w: Float32Array, heads: number, rows: number, cols: number) =>
  reorderHeadRows(w, heads, rows, cols, "meta");

export const permuteRows = (w: Float32Array, heads: number, rows: number, cols: number) =>
  reorderHeadRows(w, heads, rows, cols, "hf");

const hfNames = (l: number) => ({
  [`layers.${l}.attention.wq.weight`]: `model.layers.${l}.self_attn.q_proj.weight`,
  [`layers.${l}.attention.wk.weight`]: `model.layers.${l}.self_attn.k_proj.weight`,
  [`layers.${l}.attention.wv.weight`]: `model.layers.${l}.self_attn.v_proj.weight`,
  [`layers.${l}.attention.wo.weight`]: `model.layers.${l}.self_attn.o_proj.weight`,
  [`layers.${l}.feed_forward.w1.weight`]: `model.layers.${l}.mlp.gate_proj.weight`,
  [`layers.${l}.feed_forward.w2.weight`]: `model.layers.${l}.mlp.down_proj.weight`,
  [`layers.${l}.feed_forward.w3.weight`]: `model.layers.${l}.mlp.up_proj.weight`,
  [`layers.${l}.attention_norm.weight`]: `model.layers.${l}.input_layernorm.weight`,
  [`layers.${l}.ffn_norm.weight`]: `model.layers.${l}.post_attention_layernorm.weight`,
});

function hfName(name: string): string {
  if (name === "tok_embeddings.weight") return "model.embed_tokens.weight";
  if (name === "norm.weight") return "model.norm.weight";
  if (name === "output.weight") return "lm_head.weight";
  const l = Number(/^layers\.(\d+)\./.exec(name)?.[1]);
  return hfNames(l)[name]!;
}

/** The safetensors shards a model.safetensors.index.json names (its weight_map's values). */
function shardFiles(indexPath: string): string[] {
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(indexPath, "utf8"));
  } catch (err) {
    throw new ModelFormatError(`${indexPath}: not valid JSON (${(err as Error).message})`);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map))
    throw new ModelFormatError(`${indexPath}: weight_map is missing or not an object`);
  const files = Object.values(map);
  if (!files.every((f): f is string => typeof f === "string" && f.length > 0))
    throw new ModelFormatError(`${indexPath}: weight_map values must be file names`);
  return [...new Set(files)];
}

export function readHf(dir: string): LoadedModel {
  const cfgPath = path.join(dir, "config.json");
  if (!existsSync(cfgPath)) throw new ModelFormatError(`${dir}: config.json is missing`);
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readFileSync(cfgPath, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new ModelFormatError(`${cfgPath}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof cfg !== "object" || cfg === null || Array.isArray(cfg))
    throw new ModelFormatError(`${cfgPath}: not a JSON object`);
  const num = (k: string, fallback?: number) => {
    const v = cfg[k] ?? fallback;
    if (typeof v !== "number")
      throw new ModelFormatError(`${cfgPath}: ${k} is missing or not a number`);
    return v;
  };
  const heads = num("num_attention_heads");
  const config = checkConfig(
    {
      dim: num("hidden_size"),
      nLayers: num("num_hidden_layers"),
      nHeads: heads,
      nKvHeads: num("num_key_value_heads", heads),
      ffnHidden: num("intermediate_size"),
      vocabSize: num("vocab_size"),
      maxSeqLen: num("max_position_embeddings", 2048),
      normEps: num("rms_norm_eps", 1e-6),
      ropeTheta: num("rope_theta", 10000),
      tiedEmbeddings: cfg.tie_word_embeddings === true,
    },
    cfgPath,
  );
  const indexPath = path.join(dir, "model.safetensors.index.json");
  const files = existsSync(indexPath) ? shardFiles(indexPath) : ["model.safetensors"];
  const all = new Map<string, RawTensor>();
  for (const f of files) {
    const p = path.join(dir, path.basename(f));
    if (!existsSync(p) || !statSync(p).isFile())
      throw new ModelFormatError(`${dir}: ${f} is missing or not a file`);
    for (const [k, v] of readSafetensorsFile(p)) all.set(k, v);
  }
  expectTensorCount(config, all.size, dir);
  const hd = config.dim / config.nHeads;
  const tensors: Record<string, Float32Array> = {};
  for (const t of tensorShapes(config)) {
    const name = hfName(t.name);
    const got = all.get(name);
    if (!got) throw new ModelFormatError(`${dir}: tensor ${name} is missing`);
    expectShape(name, got.shape, t.shape, dir);
    if (t.name.endsWith("attention.wq.weight"))
      tensors[t.name] = unpermuteRows(got.data, config.nHeads, config.dim, config.dim);
    else if (t.name.endsWith("attention.wk.weight"))
      tensors[t.name] = unpermuteRows(got.data, config.nKvHeads, config.nKvHeads * hd, config.dim);
    else tensors[t.name] = got.data;
  }
  // The folder's own tokenizer (tokenizer.json), when it has one herd reads.
  const tokenizer = existsSync(path.join(dir, "tokenizer.json"))
    ? readHfTokenizer(dir).tokenizer
    : undefined;
  return { config, tensors, format: "hf", ...(tokenizer && { tokenizer }) };
}

/** A Hugging Face folder: config.json, model.safetensors, and the tokenizer files when given (hfTokenizerFiles). */
export function writeHf(
  dir: string,
  m: LoadedModel,
  tokenizerFiles: Record<string, string> = {},
): void {
  for (const [name, text] of Object.entries(tokenizerFiles))
    writeFileSync(path.join(dir, name), text);
  const c = m.config,
    hd = c.dim / c.nHeads;
  const out = tensorShapes(c).map((t) => {
    let data = m.tensors[t.name]!;
    if (t.name.endsWith("attention.wq.weight")) data = permuteRows(data, c.nHeads, c.dim, c.dim);
    if (t.name.endsWith("attention.wk.weight"))
      data = permuteRows(data, c.nKvHeads, c.nKvHeads * hd, c.dim);
    return { name: hfName(t.name), shape: t.shape, data };
  });
  writeFileSync(path.join(dir, "model.safetensors"), encodeSafetensors(out, { format: "pt" }));
  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: c.dim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    intermediate_size: c.ffnHidden,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tiedEmbeddings,
    hidden_act: "silu",
    torch_dtype: "float32",
  };
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
}

// ---- GGUF --------------------------------------------------------------------------------------

const ggufNames = (l: number): Record<string, string> => ({
  [`layers.${l}.attention.wq.weight`]: `blk.${l}.attn_q.weight`,
  [`layers.${l}.attention.wk.weight`]: `blk.${l}.attn_k.weight`,
  [`layers.${l}.attention.wv.weight`]: `blk.${l}.attn_v.weight`,
  [`layers.${l}.attention.wo.weight`]: `blk.${l}.attn_output.weight`,
  [`layers.${l}.feed_forward.w1.weight`]: `blk.${l}.ffn_gate.weight`,
  [`layers.${l}.feed_forward.w2.weight`]: `blk.${l}.ffn_down.weight`,
  [`layers.${l}.feed_forward.w3.weight`]: `blk.${l}.ffn_up.weight`,
  [`layers.${l}.attention_norm.weight`]: `blk.${l}.attn_norm.weight`,
  [`layers.${l}.ffn_norm.weight`]: `blk.${l}.ffn_norm.weight`,
});

export function ggufTensorName(name: string): string {
  if (name === "tok_embeddings.weight") return "token_embd.weight";
  if (name === "norm.weight") return "output_norm.weight";
  if (name === "output.weight") return "output.weight";
  const l = Number(/^layers\.(\d+)\./.exec(name)?.[1]);
  return ggufNames(l)[name]!;
}

/**
 * A GGUF file of the llama architecture. llama.cpp's converter already undid Hugging Face's
 * q/k permutation (its llama graph rotates interleaved pairs, as Meta's code and herd do), so
 * tensors are used as they are.
 */
export function readGguf(file: string, bytes?: Uint8Array): LoadedModel {
  const wrap = <T>(f: () => T): T => {
    try {
      return f();
    } catch (err) {
      if (err instanceof GgufError)
        throw new ModelFormatError(`${file}: ${err.message.replace(/^gguf: /, "")}`);
      throw err;
    }
  };
  return wrap(() => {
    const g = parseGguf(bytes ?? readFileSync(file), file);
    const arch = metaString(g, "general.architecture");
    if (arch !== "llama")
      throw new ModelFormatError(
        `${file}: architecture ${JSON.stringify(arch)} is not supported (llama)`,
      );
    const heads = metaNumber(g, "llama.attention.head_count");
    const embd = g.tensors.get("token_embd.weight");
    if (!embd) throw new ModelFormatError(`${file}: tensor token_embd.weight is missing`);
    const config = checkConfig(
      {
        dim: metaNumber(g, "llama.embedding_length"),
        nLayers: metaNumber(g, "llama.block_count"),
        nHeads: heads,
        nKvHeads: metaNumber(g, "llama.attention.head_count_kv", heads),
        ffnHidden: metaNumber(g, "llama.feed_forward_length"),
        vocabSize: embd.ne[1] ?? 0,
        maxSeqLen: metaNumber(g, "llama.context_length"),
        normEps: metaNumber(g, "llama.attention.layer_norm_rms_epsilon", 1e-5),
        ropeTheta: metaNumber(g, "llama.rope.freq_base", 10000),
        tiedEmbeddings: !g.tensors.has("output.weight"),
      },
      file,
    );
    expectTensorCount(config, g.tensors.size, file);
    const tensors: Record<string, Float32Array> = {};
    for (const t of tensorShapes(config)) {
      const name = ggufTensorName(t.name);
      const info = g.tensors.get(name);
      if (!info) throw new ModelFormatError(`${file}: tensor ${name} is missing`);
      expectShape(name, [...info.ne].reverse(), t.shape, file);
      tensors[t.name] = dequantize(g, info);
    }
    const tokenizer = ggufTokenizer(g);
    if (tokenizer.vocabSize > config.vocabSize)
      throw new ModelFormatError(
        `${file}: the tokenizer has ${tokenizer.vocabSize} tokens, the model ${config.vocabSize}`,
      );
    return { config, tensors, tokenizer, format: "gguf" as const };
  });
}

// ---- llama2.c ----------------------------------------------------------------------------------

// llama2.c's version-1 files (export.py --version 1) start with this magic, "ak42" as a
// little-endian uint32; version 0 (legacy) files start with the config's dim.
const llama2cMagic = 0x616b3432;
const llama2cV1Header = 256;

// The tensor groups of a llama2.c file, in file order: each group stacks all layers.
// Version 0 interleaves norms and matrices (its RoPE tables follow norm.weight); version 1
// puts the norms and the embedding first. The classifier comes last, when not tied.
function llama2cGroups(c: ModelConfig, version: 0 | 1): string[][] {
  const per = (suffix: string) =>
    Array.from({ length: c.nLayers }, (_, l) => `layers.${l}.${suffix}`);
  const attention = ["wq", "wk", "wv", "wo"].map((w) => per(`attention.${w}.weight`));
  const ffn = ["w1", "w2", "w3"].map((w) => per(`feed_forward.${w}.weight`));
  const groups =
    version === 0
      ? [
          ["tok_embeddings.weight"],
          per("attention_norm.weight"),
          ...attention,
          per("ffn_norm.weight"),
          ...ffn,
          ["norm.weight"],
        ]
      : [
          per("attention_norm.weight"),
          per("ffn_norm.weight"),
          ["norm.weight"],
          ["tok_embeddings.weight"],
          ...attention,
          ...ffn,
        ];
  return c.tiedEmbeddings ? groups : [...groups, ["output.weight"]];
}

// The version and shape of a llama2.c file, from its header.
function llama2cHeader(b: Buffer, file: string): { version: 0 | 1; config: ModelConfig } {
  const fail = (msg: string): never => {
    throw new ModelFormatError(`${file}: ${msg}`);
  };
  let version: 0 | 1 = 0;
  if (b.length >= 8 && b.readUInt32LE(0) === llama2cMagic) {
    const v = b.readInt32LE(4);
    if (v !== 1)
      fail(
        `a llama2.c version-${v} file (export.py --version ${v}${v === 2 ? ", int8-quantised" : ""}); ` +
          "herd reads llama2.c's fp32 files, version 0 (legacy) and version 1: export with --version 1",
      );
    if (b.length < llama2cV1Header)
      fail(`a llama2.c version-1 file of ${b.length} bytes, shorter than its 256-byte header`);
    version = 1;
  } else if (b.length < 28) fail(`file is ${b.length} bytes, shorter than the 28-byte header`);
  const at = version === 1 ? 8 : 0;
  const [dim, hidden, layers, heads, kvHeads, vocab, seq] = Array.from({ length: 7 }, (_, i) =>
    b.readInt32LE(at + 4 * i),
  ) as [number, number, number, number, number, number, number];
  const config = checkConfig(
    {
      dim,
      ffnHidden: hidden,
      nLayers: layers,
      nHeads: heads,
      nKvHeads: kvHeads,
      // version 0 marks an untied classifier by a negative vocabulary; version 1 has a flag
      vocabSize: version === 1 ? vocab : Math.abs(vocab),
      maxSeqLen: seq,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedEmbeddings: version === 1 ? b.readUInt8(36) === 1 : vocab > 0,
    },
    `${file} header (llama2.c version ${version})`,
  );
  return { version, config };
}

/** llama2.c's fp32 files: version 0 (legacy, 28-byte header) and version 1 ("ak42" magic). */
export function readLlama2c(file: string, bytes?: Buffer): LoadedModel {
  const b = bytes ?? readFileSync(file);
  const { version, config: c } = llama2cHeader(b, file);
  const hd = c.dim / c.nHeads;
  const kvDim = hd * c.nKvHeads;
  const ropeBytes = version === 0 ? 4 * c.maxSeqLen * hd : 0; // freq_cis_real and _imag
  const offset = version === 0 ? 28 : llama2cV1Header;
  // from the header alone, before any tensor is listed: a header that claims millions of
  // layers fails here, not after building millions of tensor names
  const perLayer = 2 * c.dim + 2 * c.dim * c.dim + 2 * kvDim * c.dim + 3 * c.ffnHidden * c.dim;
  const floats = c.vocabSize * c.dim * (c.tiedEmbeddings ? 1 : 2) + c.nLayers * perLayer + c.dim;
  const expected = offset + 4 * floats + ropeBytes;
  if (b.length !== expected)
    throw new ModelFormatError(
      `${file}: file is ${b.length} bytes; the header (llama2.c version ${version}: dim ${c.dim}, hidden ${c.ffnHidden}, layers ${c.nLayers}, heads ${c.nHeads}/${c.nKvHeads}, vocab ${c.vocabSize}${c.tiedEmbeddings ? "" : " untied"}, seq ${c.maxSeqLen}) needs ${expected}`,
    );
  const shapes = new Map(tensorShapes(c).map((t) => [t.name, t.shape]));
  const count = (name: string) => shapes.get(name)!.reduce((a, x) => a * x, 1);
  let at = offset;
  const take = (n: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = b.readFloatLE(at + 4 * i);
    at += 4 * n;
    return out;
  };
  const tensors: Record<string, Float32Array> = {};
  for (const g of llama2cGroups(c, version)) {
    for (const n of g) tensors[n] = take(count(n));
    if (g[0] === "norm.weight") at += ropeBytes; // version 0's RoPE tables follow the final norm
  }
  return { config: c, tensors, format: "llama2c" };
}

/** llama2.c's legacy format; ropeTheta must be 10000 and normEps 1e-5 (the format stores neither). */
export function writeLlama2c(file: string, m: LoadedModel): void {
  const c = m.config;
  if (c.ropeTheta !== 10000 || Math.abs(c.normEps - 1e-5) > 1e-12)
    throw new ModelFormatError(
      `llama2.c files assume ropeTheta 10000 and normEps 1e-5; this model has ${c.ropeTheta} and ${c.normEps}`,
    );
  const hd = c.dim / c.nHeads;
  const header = Buffer.alloc(28);
  [
    c.dim,
    c.ffnHidden,
    c.nLayers,
    c.nHeads,
    c.nKvHeads,
    c.tiedEmbeddings ? c.vocabSize : -c.vocabSize,
    c.maxSeqLen,
  ].forEach((v, i) => header.writeInt32LE(v, 4 * i));
  const parts: Buffer[] = [header];
  const f32 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const real = new Float32Array(c.maxSeqLen * (hd / 2)),
    imag = new Float32Array(real.length);
  for (let p = 0; p < c.maxSeqLen; p++)
    for (let i = 0; i < hd / 2; i++) {
      const f = p * Math.pow(10000, (-2 * i) / hd);
      real[p * (hd / 2) + i] = Math.cos(f);
      imag[p * (hd / 2) + i] = Math.sin(f);
    }
  for (const g of llama2cGroups(c, 0)) {
    for (const n of g) parts.push(f32(m.tensors[n]!));
    if (g[0] === "norm.weight") parts.push(f32(real), f32(imag)); // RoPE tables, as the reader skips
  }
  writeFileSync(file, Buffer.concat(parts));
}

// ---- any ---------------------------------------------------------------------------------------

/** The format of a path: a folder with config.json is hf, other folders herd; files by magic. */
export function detectFormat(p: string): ModelFormat {
  if (!existsSync(p)) throw new ModelFormatError(`${p} does not exist`);
  if (statSync(p).isDirectory()) return existsSync(path.join(p, "config.json")) ? "hf" : "herd";
  const head = Buffer.alloc(4);
  const fd = openSync(p, "r");
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  return head.toString("latin1") === "GGUF" ? "gguf" : "llama2c";
}

export function readModel(
  p: string,
  format: ModelFormat | "auto" = "auto",
  warn?: (m: string) => void,
): LoadedModel {
  const f = format === "auto" ? detectFormat(p) : format;
  switch (f) {
    case "herd":
      return readHerd(p, warn);
    case "hf":
      return readHf(p);
    case "gguf":
      return readGguf(p);
    case "llama2c":
      return readLlama2c(p);
  }
}

/**
 * A GGUF file of the llama architecture: matrices as `type` (F32, F16, BF16, Q8_0, Q4_0 or
 * Q4_1; row lengths must be whole blocks), norms as F32, plus the given tokenizer metadata.
 */
export function encodeGgufModel(
  m: LoadedModel,
  type: number,
  extra: Record<string, GgufWriteValue> = {},
): Buffer {
  const c = m.config;
  const meta: Record<string, GgufWriteValue> = {
    "general.architecture": { type: "string", value: "llama" },
    "llama.embedding_length": { type: "u32", value: c.dim },
    "llama.block_count": { type: "u32", value: c.nLayers },
    "llama.attention.head_count": { type: "u32", value: c.nHeads },
    "llama.attention.head_count_kv": { type: "u32", value: c.nKvHeads },
    "llama.feed_forward_length": { type: "u32", value: c.ffnHidden },
    "llama.context_length": { type: "u32", value: c.maxSeqLen },
    "llama.attention.layer_norm_rms_epsilon": { type: "f32", value: c.normEps },
    "llama.rope.freq_base": { type: "f32", value: c.ropeTheta },
    "llama.rope.dimension_count": { type: "u32", value: c.dim / c.nHeads },
    ...extra,
  };
  const tensors = tensorShapes(c).map((t) => ({
    name: ggufTensorName(t.name),
    ne: [...t.shape].reverse(),
    type: t.shape.length === 1 ? ggmlType.F32 : type,
    data: quantize(m.tensors[t.name]!, t.shape.length === 1 ? ggmlType.F32 : type),
  }));
  return encodeGguf(meta, tensors);
}
