// llama2.c's version-1 files ("ak42" magic, 256-byte header, norms first, no RoPE tables):
// written here the way llama2.c's export.py --version 1 lays them out, read by herd into the
// same tensors and logits as the legacy (version 0) file of the same model; other versions
// are refused with a message that names the version and what herd reads.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import {
  readLlama2c,
  readModel,
  tensorShapes,
  writeLlama2c,
  type LoadedModel,
} from "../../workers/model/formats.ts";
import { config, logitsOf, randomModel } from "./models.ts";

const dir = mkdtempSync(path.join(tmpdir(), "herd-llama2c-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** export.py's version1_export: header, then the norms, the embedding, the matrices, by layer. */
function llama2cVersion1(m: LoadedModel, version = 1): Buffer {
  const c = m.config;
  const header = Buffer.alloc(256);
  header.writeUInt32LE(0x616b3432, 0); // "ak42"
  header.writeInt32LE(version, 4);
  [c.dim, c.ffnHidden, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.maxSeqLen].forEach((v, i) =>
    header.writeInt32LE(v, 8 + 4 * i),
  );
  header.writeUInt8(c.tiedEmbeddings ? 1 : 0, 36);
  const layers = (suffix: string) =>
    Array.from({ length: c.nLayers }, (_, l) => m.tensors[`layers.${l}.${suffix}`]!);
  const order = [
    ...layers("attention_norm.weight"),
    ...layers("ffn_norm.weight"),
    m.tensors["norm.weight"]!,
    m.tensors["tok_embeddings.weight"]!,
    ...["wq", "wk", "wv", "wo"].flatMap((w) => layers(`attention.${w}.weight`)),
    ...["w1", "w2", "w3"].flatMap((w) => layers(`feed_forward.${w}.weight`)),
    ...(c.tiedEmbeddings ? [] : [m.tensors["output.weight"]!]),
  ];
  return Buffer.concat([
    header,
    ...order.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength)),
  ]);
}

for (const tied of [false, true]) {
  test(`a version-1 file reads as the model it was written from (${tied ? "tied" : "untied"} classifier)`, async () => {
    const m = randomModel({ ...config, tiedEmbeddings: tied }, tied ? 11 : 12);
    const v1 = path.join(dir, `v1-${tied}.bin`);
    const v0 = path.join(dir, `v0-${tied}.bin`);
    writeFileSync(v1, llama2cVersion1(m));
    writeLlama2c(v0, m);
    const a = readModel(v1); // by its magic, with no format named
    const b = readLlama2c(v0);
    assert.equal(a.format, "llama2c");
    assert.deepEqual(a.config, m.config);
    for (const t of tensorShapes(m.config))
      assert.deepEqual(a.tensors[t.name], m.tensors[t.name], t.name);
    assert.deepEqual(await logitsOf(a, [1, 5, 9, 2]), await logitsOf(b, [1, 5, 9, 2]));
  });
}

test("other llama2.c versions and short version-1 files fail naming the version", () => {
  const m = randomModel(config, 13);
  const v2 = llama2cVersion1(m, 2);
  assert.throws(
    () => readLlama2c("q80.bin", v2),
    /q80\.bin: a llama2\.c version-2 file \(export\.py --version 2, int8-quantised\); herd reads llama2\.c's fp32 files, version 0 \(legacy\) and version 1/,
  );
  const v1 = llama2cVersion1(m);
  assert.throws(() => readLlama2c("cut.bin", v1.subarray(0, 100)), /version-1 file of 100 bytes/);
  assert.throws(
    () => readLlama2c("short.bin", v1.subarray(0, v1.length - 4)),
    /short\.bin: file is \d+ bytes; the header \(llama2\.c version 1: dim 64.* needs \d+/,
  );
});
