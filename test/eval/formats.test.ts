// Model formats: every reader against its writer on a small random model (the weights and the
// logits they give), the known block layouts of GGUF quantisation, HF's rotary permutation
// against a direct computation, tokenizers on small vocabularies, and malformed files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomMatrix } from "../../native/reference.ts";
import { config, logitsOf, randomModel } from "./models.ts";
import {
  encodeGgufModel,
  ModelFormatError,
  permuteRows,
  readGguf,
  readHerd,
  readHf,
  readLlama2c,
  readModel,
  readSafetensorsAny,
  tensorShapes,
  writeHerd,
  writeHf,
  writeLlama2c,
} from "../../workers/model/formats.ts";
import {
  dequantize,
  ggmlType,
  GgufError,
  parseGguf,
  quantize,
  encodeGguf,
} from "../../workers/model/gguf.ts";
import {
  BpeTokenizer,
  byteToUnicode,
  preTokenize,
  preTokenizers,
  SpmTokenizer,
} from "../../workers/model/tokenizers.ts";

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

const tmp = () => mkdtempSync(path.join(tmpdir(), "herd-formats-"));
const tokens = [3, 17, 42, 5, 63, 0, 9];

test("herd checkpoint, HF safetensors and llama2.c round-trip exactly", () => {
  const dir = tmp();
  try {
    const m = randomModel(config);
    writeHerd(path.join(dir, "run"), { ...m, step: 7 });
    mkdirSync(path.join(dir, "hf"));
    writeHf(path.join(dir, "hf"), m);
    writeLlama2c(path.join(dir, "m.bin"), m);
    const tied = randomModel({ ...config, tiedEmbeddings: true }, 9);
    writeLlama2c(path.join(dir, "tied.bin"), tied);
    for (const [back, want] of [
      [readHerd(path.join(dir, "run")), m],
      [readModel(path.join(dir, "run", "step-000000007")), m],
      [readHf(path.join(dir, "hf")), m],
      [readModel(path.join(dir, "m.bin")), m],
      [readLlama2c(path.join(dir, "tied.bin")), tied],
    ] as const) {
      assert.deepEqual(back.config, want.config);
      for (const t of tensorShapes(want.config))
        assert.deepEqual(back.tensors[t.name], want.tensors[t.name], t.name);
    }
    assert.equal(readHerd(path.join(dir, "run")).step, 7);
    assert.equal(readModel(path.join(dir, "hf")).format, "hf");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Meta's rotary embedding on interleaved pairs, and Hugging Face's rotate_half on the halves.
function ropeInterleaved(q: Float32Array, pos: number, hd: number) {
  const out = new Float32Array(q.length);
  for (let h = 0; h < q.length / hd; h++)
    for (let i = 0; i < hd / 2; i++) {
      const a = pos * Math.pow(10000, (-2 * i) / hd);
      const x0 = q[h * hd + 2 * i]!,
        x1 = q[h * hd + 2 * i + 1]!;
      out[h * hd + 2 * i] = x0 * Math.cos(a) - x1 * Math.sin(a);
      out[h * hd + 2 * i + 1] = x0 * Math.sin(a) + x1 * Math.cos(a);
    }
  return out;
}
function ropeHalves(q: Float32Array, pos: number, hd: number) {
  const out = new Float32Array(q.length);
  for (let h = 0; h < q.length / hd; h++)
    for (let i = 0; i < hd / 2; i++) {
      const a = pos * Math.pow(10000, (-2 * i) / hd);
      const x0 = q[h * hd + i]!,
        x1 = q[h * hd + i + hd / 2]!;
      out[h * hd + i] = x0 * Math.cos(a) - x1 * Math.sin(a);
      out[h * hd + i + hd / 2] = x0 * Math.sin(a) + x1 * Math.cos(a);
    }
  return out;
}

test("HF's q/k permutation: rotate_half on permuted weights gives the same attention scores", () => {
  const heads = 2,
    hd = 8,
    dim = heads * hd;
  const wq = randomMatrix(dim * dim, 4),
    wk = randomMatrix(dim * dim, 5),
    x = randomMatrix(dim, 6),
    y = randomMatrix(dim, 7);
  const mv = (w: Float32Array, v: Float32Array) =>
    Float32Array.from({ length: dim }, (_, r) =>
      v.reduce((s, vi, c) => s + w[r * dim + c]! * vi, 0),
    );
  const score = (q: Float32Array, k: Float32Array, h: number) =>
    q.subarray(h * hd, h * hd + hd).reduce((s, qi, i) => s + qi * k[h * hd + i]!, 0);
  const hq = permuteRows(wq, heads, dim, dim),
    hk = permuteRows(wk, heads, dim, dim);
  for (const [pq, pk] of [
    [3, 1],
    [5, 5],
  ] as const) {
    const meta = [ropeInterleaved(mv(wq, x), pq, hd), ropeInterleaved(mv(wk, y), pk, hd)] as const;
    const hf = [ropeHalves(mv(hq, x), pq, hd), ropeHalves(mv(hk, y), pk, hd)] as const;
    for (let h = 0; h < heads; h++)
      assert.ok(Math.abs(score(meta[0], meta[1], h) - score(hf[0], hf[1], h)) < 1e-4);
  }
});

test("GGUF blocks decode as ggml lays them out", () => {
  const half = (x: number) => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(x);
    return b;
  };
  // Q4_1: d = 0.5 (0x3800), m = −1 (0xBC00); byte j holds x[j] (low) and x[j+16] (high)
  const q41 = Buffer.concat([
    half(0x3800),
    half(0xbc00),
    Buffer.from(Array.from({ length: 16 }, (_, j) => (j & 15) | ((15 - j) << 4))),
  ]);
  // Q4_0: d = 2 (0x4000): x = 2·(q − 8)
  const q40 = Buffer.concat([
    half(0x4000),
    Buffer.from(Array.from({ length: 16 }, (_, j) => j | (8 << 4))),
  ]);
  // Q8_0: d = 0.25 (0x3400): x = 0.25·q
  const q80 = Buffer.concat([
    half(0x3400),
    Buffer.from(Int8Array.from({ length: 32 }, (_, j) => j - 16).buffer),
  ]);
  const file = encodeGguf({}, [
    { name: "a", ne: [32], type: ggmlType.Q4_1, data: q41 },
    { name: "b", ne: [32], type: ggmlType.Q4_0, data: q40 },
    { name: "c", ne: [32], type: ggmlType.Q8_0, data: q80 },
    { name: "d", ne: [2], type: ggmlType.F16, data: Buffer.concat([half(0x3c00), half(0xc000)]) },
  ]);
  const g = parseGguf(file);
  const get = (n: string) => Array.from(dequantize(g, g.tensors.get(n)!));
  assert.deepEqual(get("a"), [
    ...Array.from({ length: 16 }, (_, j) => 0.5 * j - 1),
    ...Array.from({ length: 16 }, (_, j) => 0.5 * (15 - j) - 1),
  ]);
  assert.deepEqual(get("b"), [
    ...Array.from({ length: 16 }, (_, j) => 2 * (j - 8)),
    ...Array(16).fill(0),
  ]);
  assert.deepEqual(
    get("c"),
    Array.from({ length: 32 }, (_, j) => 0.25 * (j - 16)),
  );
  assert.deepEqual(get("d"), [1, -2]);
  // quantise → dequantise stays within half a step of each block
  const x = randomMatrix(256, 3);
  for (const [type, tol] of [
    [ggmlType.F16, 1e-3],
    [ggmlType.Q8_0, 0.02],
    [ggmlType.Q4_0, 0.3],
    [ggmlType.Q4_1, 0.2],
  ] as const) {
    const g2 = parseGguf(encodeGguf({}, [{ name: "x", ne: [256], type, data: quantize(x, type) }]));
    assert.ok(maxDiff(dequantize(g2, g2.tensors.get("x")!), x) < tol, `type ${type}`);
  }
});

test("a GGUF model gives the logits of the model it was written from (F32 exactly, Q8_0 closely)", async () => {
  const m = randomModel({ ...config, tiedEmbeddings: true }, 3);
  const want = await logitsOf(m, tokens);
  const tok = {
    "tokenizer.ggml.model": { type: "string" as const, value: "gpt2" },
    "tokenizer.ggml.tokens": { type: "strings" as const, value: byteToUnicode().slice(0, 64) },
    "tokenizer.ggml.merges": { type: "strings" as const, value: [] },
  };
  const f32 = readGguf("f32.gguf", encodeGgufModel(m, ggmlType.F32, tok));
  assert.deepEqual(f32.config, { ...m.config, normEps: Math.fround(1e-5) });
  assert.equal(maxDiff(await logitsOf(f32, tokens), want) < 1e-5, true);
  const q8 = readGguf("q8.gguf", encodeGgufModel(m, ggmlType.Q8_0, tok));
  const d = maxDiff(await logitsOf(q8, tokens), want);
  assert.ok(d < 0.05 && d > 0, `Q8_0 logits differ by ${d}`);
  assert.equal(f32.tokenizer?.kind, "bpe");
});

test("byte-level BPE: pre-tokenizer, merges by rank, byte map round trip", async () => {
  assert.deepEqual(preTokenize("Hello  world's 123!\n", preTokenizers.smollm!), [
    "Hello",
    " ",
    " world",
    "'s",
    " ",
    "1",
    "2",
    "3",
    "!",
    "\n",
  ]);
  const b2u = byteToUnicode();
  assert.equal(new Set(b2u).size, 256);
  assert.equal(b2u[32], "Ġ");
  const vocab = [...b2u, "he", "ll", "hell", "Ġw", "Ġwo"];
  const bpe = new BpeTokenizer(
    vocab,
    ["l l", "h e", "he ll", "Ġ w", "Ġw o"],
    preTokenizers.gpt2!,
    undefined,
    undefined,
    false,
  );
  const ids = await bpe.encode("hello wow");
  assert.deepEqual(
    [...ids].map((i) => vocab[i]),
    ["hell", "o", "Ġwo", "w"],
  );
  const text = "naïve 🤖 text\twith\nbytes";
  assert.equal(await bpe.decode(await bpe.encode(text)), text);
});

test("SentencePiece-style vocabulary: highest-score merges, ▁ prefix, byte fallback", async () => {
  const bytes = Array.from(
    { length: 256 },
    (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`,
  );
  const pieces = ["<unk>", "<s>", "</s>", ...bytes, "▁", "a", "b", "▁a", "ab", "▁ab", "c"];
  const scores = pieces.map((p) => (p === "▁ab" ? -1 : p === "ab" ? -2 : p === "▁a" ? -3 : -10));
  const spm = new SpmTokenizer(pieces, scores, 1, 2, true, true);
  const ids = await spm.encode("ab c é");
  assert.deepEqual(
    [...ids].map((i) => pieces[i]),
    ["▁ab", "▁", "c", "▁", "<0xC3>", "<0xA9>"],
  );
  assert.equal(await spm.decode(ids), "ab c é");
});

test("malformed GGUF, llama2.c and HF files fail with an error naming the problem", () => {
  const m = randomModel(config, 5);
  const good = encodeGgufModel(m, ggmlType.F32, {});
  assert.throws(() => parseGguf(Buffer.from("GGUX0000")), /not a GGUF file/);
  const v9 = Buffer.from(good);
  v9.writeUInt32LE(9, 4);
  assert.throws(() => parseGguf(v9), /GGUF version 9 is not supported/);
  assert.throws(
    () => parseGguf(good.subarray(0, 100)),
    /needs \d+ bytes but the file ends .*at byte \d+/,
  );
  assert.throws(() => parseGguf(good.subarray(0, good.length - 4)), /lies beyond the file/);
  const bigCount = Buffer.from(good);
  bigCount.writeBigUInt64LE(1n << 40n, 8);
  assert.throws(() => parseGguf(bigCount), /tensor count \d+ exceeds the limit/);
  assert.throws(() => readGguf("x.gguf", good), /tokenizer.ggml.model is missing/);
  const dir = tmp();
  try {
    writeLlama2c(path.join(dir, "m.bin"), m);
    const bin = readFileSync(path.join(dir, "m.bin"));
    assert.throws(() => readLlama2c("m.bin", bin.subarray(0, bin.length - 8)), /needs \d+/);
    const badHeader = Buffer.from(bin);
    badHeader.writeInt32LE(7, 12); // 7 heads do not divide dim 64
    assert.throws(() => readLlama2c("m.bin", badHeader), ModelFormatError);
    mkdirSync(path.join(dir, "hf"));
    writeFileSync(path.join(dir, "hf", "config.json"), "{");
    assert.throws(() => readHf(path.join(dir, "hf")), /config.json: not valid JSON/);
    writeHf(path.join(dir, "hf"), m);
    const st = readFileSync(path.join(dir, "hf", "model.safetensors"));
    writeFileSync(path.join(dir, "hf", "model.safetensors"), st.subarray(0, st.length - 4));
    assert.throws(() => readHf(path.join(dir, "hf")), /data_offsets lie outside the file/);
    assert.throws(() => readModel(path.join(dir, "nothing")), /does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("fuzz: 3000 mutated GGUF, llama2.c and safetensors files only ever fail with a format error", () => {
  const m = randomModel({ ...config, nLayers: 1, vocabSize: 32, dim: 32, ffnHidden: 32 }, 8);
  const tok = {
    "tokenizer.ggml.model": { type: "string" as const, value: "gpt2" },
    "tokenizer.ggml.tokens": { type: "strings" as const, value: byteToUnicode().slice(0, 32) },
    "tokenizer.ggml.merges": { type: "strings" as const, value: ["a b"] },
  };
  const gguf = encodeGgufModel(m, ggmlType.Q4_1, tok);
  const dir = tmp();
  try {
    writeLlama2c(path.join(dir, "m.bin"), m);
    const bin = readFileSync(path.join(dir, "m.bin"));
    mkdirSync(path.join(dir, "hf"));
    writeHf(path.join(dir, "hf"), m);
    const st = readFileSync(path.join(dir, "hf", "model.safetensors"));
    const readers: [Buffer, (b: Buffer) => unknown][] = [
      [gguf, (b) => readGguf("f.gguf", b)],
      [bin, (b) => readLlama2c("m.bin", b)],
      [st, (b) => readSafetensorsAny(b, "model.safetensors")],
    ];
    let s = 12345;
    const rand = (n: number) => ((s = (s * 1103515245 + 12345) % 2147483648), s % n);
    let formatErrors = 0;
    for (let i = 0; i < 3000; i++) {
      const [src, read] = readers[i % readers.length]!;
      const b = Buffer.from(src.subarray(0, rand(4) === 0 ? rand(src.length) : src.length));
      // header bytes are where parsing decisions are made: mutate them more often
      for (let k = 0, n = 1 + rand(8); k < n; k++)
        b[rand(4) ? rand(Math.min(b.length, 2048)) || 0 : rand(b.length || 1)] = rand(256);
      try {
        read(b);
      } catch (err) {
        assert.ok(
          err instanceof ModelFormatError || err instanceof GgufError,
          `iteration ${i}: ${(err as Error).stack}`,
        );
        formatErrors++;
      }
    }
    assert.ok(formatErrors > 100);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
