// Instruction examples: version-2 shards with learn masks, and the loader that packs them into
// rows (native/src/data/examples.h). Each example is one document whose first tokens are its
// prompt (not learned) and the rest its response (learned).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createExampleLoader, readShard, verifyShard, writeShard } from "../../native/data.ts";
import { engine } from "../../native/engine.ts";
import { trainerOptions } from "../engine/fixtures.ts";

const V = 256;

/** Example e: token 1 + e % 250 first (its tag), then prompt and response tokens. */
function example(e: number) {
  const prompt = 2 + (e % 5),
    response = 1 + ((e * 7) % 13);
  const ids = Array.from({ length: prompt + response }, (_, i) =>
    i === 0 ? 1 + (e % 250) : (e + i) % V,
  );
  const learn = ids.map((_, i) => (i >= prompt ? 1 : 0));
  return { ids, learn };
}

async function writeExamples(dir: string, counts: number[], extra: number[][] = []) {
  let e = 0;
  for (let s = 0; s < counts.length; s++) {
    const ids: number[] = [],
      learn: number[] = [],
      starts = [0];
    for (let i = 0; i < counts[s]!; i++, e++) {
      const x = example(e);
      ids.push(...x.ids);
      learn.push(...x.learn);
      starts.push(ids.length);
    }
    for (const x of s === 0 ? extra : []) {
      ids.push(...x);
      learn.push(...x.map(() => 1));
      starts.push(ids.length);
    }
    await writeShard(
      path.join(dir, `shard-${String(s).padStart(5, "0")}.bin`),
      Int32Array.from(ids),
      starts,
      V,
      Uint8Array.from(learn),
    );
  }
  return e;
}

test("a version-2 shard keeps its learn mask and its hash", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-examples-"));
  await writeExamples(dir, [9]);
  const file = path.join(dir, "shard-00000.bin");
  const header = await verifyShard(file);
  assert.equal(header.version, 2);
  const c = await readShard(file);
  let t = 0;
  for (let e = 0; e < 9; e++) {
    const x = example(e);
    assert.deepEqual(Array.from(c.ids.subarray(t, t + x.ids.length)), x.ids);
    assert.deepEqual(Array.from(c.learn!.subarray(t, t + x.ids.length)), x.learn);
    t += x.ids.length;
  }
});

test("an epoch packs every example exactly once, whole, attending only to itself", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-examples-"));
  const n = await writeExamples(dir, [40, 33]);
  const seqLen = 31;
  const loader = createExampleLoader({ folder: dir, seed: 5 });
  assert.equal(loader.exampleCount, n);
  const rows = loader.rowsInEpoch(0, seqLen);
  assert.ok(rows < n, `${rows} rows for ${n} examples: nothing was packed`);
  const r = loader.rows(0, 0, 1, rows, seqLen);
  const seen: number[] = [];
  for (let row = 0; row < rows; row++) {
    const tok = r.tokens.subarray(row * (seqLen + 1), (row + 1) * (seqLen + 1));
    const pos = r.positions.subarray(row * seqLen, (row + 1) * seqLen);
    const learn = r.learn.subarray(row * seqLen, (row + 1) * seqLen);
    for (let t = 0; t < seqLen; t++) {
      if (pos[t] !== 0 || tok[t] === 0) continue; // inside an example, or padding
      // An example starts at t; its tag names it (fewer than 250 examples here).
      const e = tok[t]! - 1;
      const x = example(e);
      x.ids.forEach((id, i) => assert.equal(tok[t + i], id, `example ${e} is not whole`));
      seen.push(e);
      for (let i = 0; i + 1 < x.ids.length && t + i < seqLen; i++) {
        assert.equal(pos[t + i], i);
        assert.equal(learn[t + i], x.learn[i + 1], `example ${e}, token ${i}: learn bit`);
      }
      if (t + x.ids.length - 1 < seqLen)
        assert.equal(learn[t + x.ids.length - 1], 0, "an example's last token predicts nothing");
    }
  }
  assert.deepEqual(
    [...seen].sort((a, b) => a - b),
    Array.from({ length: n }, (_, i) => i),
  );
  // The next epoch is another order of the same examples.
  const next = loader.rows(1, 0, 1, rows, seqLen).tokens;
  assert.notDeepEqual(Array.from(next.subarray(0, 64)), Array.from(r.tokens.subarray(0, 64)));
});

test("two ranks of batch B draw the rows one rank of batch 2B draws", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-examples-"));
  await writeExamples(dir, [50]);
  const a = createExampleLoader({ folder: dir, seed: 1 });
  const b = createExampleLoader({ folder: dir, seed: 1 });
  for (const step of [0, 3, 11]) {
    const one = a.rows(step, 0, 1, 4, 24);
    const r0 = b.rows(step, 0, 2, 2, 24),
      r1 = b.rows(step, 1, 2, 2, 24);
    assert.deepEqual(Array.from(one.tokens), [...r0.tokens, ...r1.tokens]);
    assert.deepEqual(Array.from(one.learn), [...r0.learn, ...r1.learn]);
  }
});

test("an example longer than a row is cut to seqLen + 1 tokens", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-examples-"));
  const long = Array.from({ length: 100 }, (_, i) => 200 + (i % 50));
  await writeExamples(dir, [1], [long]);
  const loader = createExampleLoader({ folder: dir, seed: 0 });
  const seqLen = 16;
  const rows = loader.rowsInEpoch(0, seqLen);
  const r = loader.rows(0, 0, 1, rows, seqLen);
  const found = [...Array(rows).keys()].some((row) =>
    long.slice(0, seqLen + 1).every((id, i) => r.tokens[row * (seqLen + 1) + i] === id),
  );
  assert.ok(found, "the long example's first seqLen + 1 tokens fill a row");
});

test("pre-training shards and a changed data set are refused by name", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-examples-"));
  await writeShard(path.join(dir, "shard-00000.bin"), Int32Array.from([1, 2, 3]), [0, 3], V);
  assert.throws(() => createExampleLoader({ folder: dir }), /has no learn mask \(version 1/);
  const good = mkdtempSync(path.join(tmpdir(), "herd-examples-"));
  await writeExamples(good, [10]);
  const state = createExampleLoader({ folder: good, seed: 2 }).saveState();
  assert.throws(() => createExampleLoader({ folder: good, seed: 3 }).loadState(state), /seed 2/);
  await writeExamples(good, [12]);
  assert.throws(
    () => createExampleLoader({ folder: good, seed: 2 }).loadState(state),
    /saved over 10 examples, the data now has 12/,
  );
  writeFileSync(path.join(good, "shard-00000.bin"), "HERDTOK\0junk");
  assert.throws(() => createExampleLoader({ folder: good }), /shard-00000\.bin/);
});

test("a training step learns from exactly the loader's rows: masked targets, packed examples", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-examples-"));
  await writeExamples(dir, [60]);
  const seqLen = 32,
    microBatch = 2,
    accumSteps = 2;
  const base = trainerOptions({ seqLen, microBatch, accumSteps });
  const trainer = engine.createTrainer({
    ...base,
    source: { kind: "examples", folder: dir, seed: 4 },
  });
  const reference = engine.createTrainer(base); // same seed: the same initial weights
  const rows = createExampleLoader({ folder: dir, seed: 4 }).rows(
    0,
    0,
    1,
    microBatch * accumSteps,
    seqLen,
  );
  const n = microBatch * accumSteps * seqLen;
  const inputs = new Int32Array(n),
    targets = new Int32Array(n);
  for (let r = 0; r < microBatch * accumSteps; r++)
    for (let t = 0; t < seqLen; t++) {
      inputs[r * seqLen + t] = rows.tokens[r * (seqLen + 1) + t]!;
      targets[r * seqLen + t] = rows.learn[r * seqLen + t]
        ? rows.tokens[r * (seqLen + 1) + t + 1]!
        : -1;
    }
  const want = await reference.lossAndGrads(
    inputs,
    microBatch * accumSteps,
    seqLen,
    targets,
    rows.positions,
  );
  const got = await trainer.step();
  assert.ok(
    Math.abs(got.loss - want.loss) < 1e-5,
    `step loss ${got.loss}, rows' loss ${want.loss}`,
  );
  assert.ok(Math.abs(got.loss - Math.log(V)) < 1.0, "an untrained model's loss is near ln V");
});
