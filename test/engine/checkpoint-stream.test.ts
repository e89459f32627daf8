// Checkpoint files streamed out of and into the engine (workers/trainer/engine-checkpoint.ts):
// byte-identical to the in-memory encoder, in chunks that cross tensor boundaries, back into
// a trainer exactly; and a model whose optimizer file is past 4 GiB, which a whole-file
// Buffer could not hold (HERD_BIG_CHECKPOINT=0 skips it on a machine without ~12 GB free).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { engine, type Trainer } from "../../native/engine.ts";
import { saveCheckpoint, verifyCheckpoint } from "../../workers/trainer/checkpoint.ts";
import {
  engineCheckpointReader,
  engineSafetensors,
  modelSets,
  optimizerSets,
} from "../../workers/trainer/engine-checkpoint.ts";
import { encodeSafetensors } from "../../workers/trainer/safetensors.ts";
import { readHerd } from "../../workers/model/formats.ts";
import { largeModelOptions, trainerOptions } from "./fixtures.ts";

/** A streamed file's bytes; each chunk is copied before the next is asked for (it is reused). */
const bytesOf = (f: { chunks(): Iterable<Uint8Array> }) => {
  const copies: Buffer[] = [];
  for (const c of f.chunks()) copies.push(Buffer.from(c));
  return Buffer.concat(copies);
};

/** SHA-256 of a whole set, read out in chunks. */
function setHash(t: Trainer, set: "params" | "m" | "v"): string {
  const total = t.layout().reduce((n, x) => n + x.size, 0);
  const hash = createHash("sha256");
  const chunk = new Float32Array(1 << 22);
  for (let at = 0; at < total; at += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, total - at));
    t.readSet(set, at, part);
    hash.update(new Uint8Array(part.buffer, 0, part.byteLength));
  }
  return hash.digest("hex");
}

test("a streamed file is the in-memory encoder's bytes, whatever the chunk size", async () => {
  const t = engine.createTrainer(trainerOptions());
  await t.step();
  await t.step();
  const model = encodeSafetensors(t.tensors("params"), { format: "herd", kind: "model" });
  const optimizer = encodeSafetensors(
    [
      ...t.tensors("m").map((x) => ({ ...x, name: `m.${x.name}` })),
      ...t.tensors("v").map((x) => ({ ...x, name: `v.${x.name}` })),
    ],
    { format: "herd", kind: "adamw" },
  );
  for (const chunk of [1000, 4096, 1 << 22]) {
    const meta = { format: "herd", kind: "model" };
    assert.ok(
      bytesOf(engineSafetensors(t, modelSets, meta, chunk)).equals(model),
      `chunk ${chunk}`,
    );
    const adamw = { format: "herd", kind: "adamw" };
    assert.ok(bytesOf(engineSafetensors(t, optimizerSets, adamw, chunk)).equals(optimizer));
  }
});

test("saved through the checkpoint protocol and streamed back, every set is the same", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-stream-"));
  try {
    const a = engine.createTrainer(trainerOptions());
    await a.step();
    const written = saveCheckpoint(
      dir,
      1,
      {
        "model.safetensors": engineSafetensors(a, modelSets, {}, 777),
        "optimizer.safetensors": engineSafetensors(a, optimizerSets, {}, 777),
        "trainer.json": "{}\n",
      },
      1,
    );
    const manifest = JSON.parse(readFileSync(path.join(written, "manifest.json"), "utf8"));
    const onDisk = readFileSync(path.join(written, "model.safetensors"));
    assert.equal(manifest.files["model.safetensors"].size, onDisk.length);
    assert.equal(
      manifest.files["model.safetensors"].sha256,
      createHash("sha256").update(onDisk).digest("hex"),
      "the SHA-256 hashed while writing is the file's",
    );
    const files = verifyCheckpoint(written, ["model.safetensors", "optimizer.safetensors"]);
    const b = engine.createTrainer(trainerOptions({ seed: 99 }));
    assert.notEqual(setHash(b, "params"), setHash(a, "params"));
    engineCheckpointReader(files, b, 333)();
    for (const set of ["params", "m", "v"] as const) assert.equal(setHash(b, set), setHash(a, set));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  "past 4 GiB: a 617M-parameter model's checkpoint (optimizer file 4.9 GB) written and read back in chunks",
  { skip: process.env.HERD_BIG_CHECKPOINT === "0" },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "herd-big-"));
    try {
      const big = largeModelOptions(2048, 12);
      const t = engine.createTrainer(big);
      const parameters = t.layout().reduce((n, x) => n + x.size, 0);
      assert.ok(parameters * 8 > 4 * 2 ** 30, `${parameters} parameters: m and v past 4 GiB`);
      const before = { params: setHash(t, "params"), m: setHash(t, "m"), v: setHash(t, "v") };
      const written = saveCheckpoint(
        dir,
        1,
        {
          "model.safetensors": engineSafetensors(t, modelSets, {}),
          "optimizer.safetensors": engineSafetensors(t, optimizerSets, {}),
          "trainer.json": JSON.stringify({ model: big.model }) + "\n",
        },
        1,
      );
      // model.safetensors is past 2 GiB too (one Node Buffer's limit): herd's model reader
      // (evaluation, herd convert) reads it tensor by tensor.
      assert.ok(statSync(path.join(written, "model.safetensors")).size > 2 * 2 ** 30);
      const read = readHerd(written);
      const hash = createHash("sha256");
      for (const x of t.layout()) hash.update(read.tensors[x.name]!);
      assert.equal(hash.digest("hex"), before.params, "readHerd gives the trainer's weights");
      const optimizerFile = path.join(written, "optimizer.safetensors");
      assert.ok(statSync(optimizerFile).size > 4 * 2 ** 30);
      // Overwrite the live state, then resume it from the files.
      const zeros = new Float32Array(1 << 20);
      for (const set of ["params", "m", "v"] as const)
        for (let at = 0; at + zeros.length <= parameters; at += zeros.length)
          t.writeSet(set, at, zeros);
      assert.notEqual(setHash(t, "params"), before.params);
      const files = verifyCheckpoint(written, ["model.safetensors", "optimizer.safetensors"]);
      engineCheckpointReader(files, t)();
      assert.deepEqual(
        { params: setHash(t, "params"), m: setHash(t, "m"), v: setHash(t, "v") },
        before,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
