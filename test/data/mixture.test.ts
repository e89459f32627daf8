// The mixture loader: rows are contiguous windows of their source, sources appear in exact
// proportion, every window is visited once per epoch, batches depend only on
// (seed, step, rank, row), world size 1 and 2 see the same global batch, and a saved state
// resumes the same stream in a new loader.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  LLAMA_MIXTURE,
  createMixtureLoader,
  writeShard,
  type MixtureSource,
} from "../../native/data.ts";

// Source s holds ids s·SPAN + (position mod SPAN), so a row tells where it came from.
const SPAN = 8000;
const VOCAB = 65536;
let dir = "";
const names = Object.keys(LLAMA_MIXTURE);

async function makeSource(name: string, s: number, shardSizes: number[]) {
  const folder = path.join(dir, name);
  mkdirSync(folder);
  let pos = 0;
  for (const [i, n] of shardSizes.entries()) {
    const ids = Int32Array.from({ length: n }, (_, j) => s * SPAN + ((pos + j) % SPAN));
    await writeShard(
      path.join(folder, `shard-${String(i).padStart(6, "0")}.bin`),
      ids,
      [0, n],
      VOCAB,
    );
    pos += n;
  }
  return folder;
}

let table1: MixtureSource[] = [];

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "herd-mix-"));
  table1 = [];
  for (const [s, name] of names.entries()) {
    // Several shards of uneven sizes, so windows cross shard boundaries.
    const folder = await makeSource(name, s, [1000 + 97 * s, 333, 2000 - 50 * s]);
    table1.push({ name, weight: LLAMA_MIXTURE[name]!, folder });
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

const rowsOf = (batch: Int32Array, seq: number) =>
  Array.from({ length: batch.length / (seq + 1) }, (_, i) => [
    ...batch.subarray(i * (seq + 1), (i + 1) * (seq + 1)),
  ]);

test("each row is seq_len + 1 consecutive tokens of one source", async () => {
  const seq = 64;
  const loader = createMixtureLoader({ sources: table1, seed: 7 });
  assert.equal(loader.vocabSize, VOCAB);
  for (let step = 0; step < 5; step++) {
    for (const row of rowsOf(await loader.batch(step, 0, 1, 16, seq), seq)) {
      const s = Math.floor(row[0]! / SPAN);
      for (let j = 1; j < row.length; j++) {
        assert.equal(Math.floor(row[j]! / SPAN), s, "a row mixes sources");
        assert.equal(row[j]! % SPAN, (row[j - 1]! % SPAN) + 1, "a row is not contiguous");
      }
      assert.equal((row[0]! % SPAN) % seq, 0, "windows start at multiples of seq_len");
    }
  }
});

test("sources appear in exactly Table 1's proportions per block of rows", async () => {
  const loader = createMixtureLoader({ sources: table1, seed: 3, blockRows: 1000 });
  const counts = new Map<number, number>();
  const batch = await loader.batch(0, 0, 1, 2000, 8);
  for (const row of rowsOf(batch, 8)) {
    const s = Math.floor(row[0]! / SPAN);
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  for (const [s, name] of names.entries())
    assert.equal(counts.get(s), Math.round(LLAMA_MIXTURE[name]! * 20), name); // 2 blocks × weight% × 10
  const pos = loader.positions();
  assert.deepEqual(
    pos.map((p) => p.samples),
    names.map((n) => Math.round(LLAMA_MIXTURE[n]! * 20)),
  );
});

test("every window of a source is read once per epoch, in a new order each epoch", async () => {
  const seq = 50;
  const source = table1[6]!; // stackexchange: 1000+582 + 333 + 1700 tokens
  const loader = createMixtureLoader({ sources: [source], seed: 11 });
  const windows = Math.floor((1582 + 333 + 1700 - 1) / seq);
  const starts = rowsOf(await loader.batch(0, 0, 1, 2 * windows, seq), seq).map(
    (r) => (r[0]! % SPAN) / seq,
  );
  const epoch0 = starts.slice(0, windows);
  const epoch1 = starts.slice(windows);
  const all = Array.from({ length: windows }, (_, i) => i);
  assert.deepEqual(
    [...epoch0].sort((a, b) => a - b),
    all,
  );
  assert.deepEqual(
    [...epoch1].sort((a, b) => a - b),
    all,
  );
  assert.notDeepEqual(epoch0, epoch1);
  assert.notDeepEqual(epoch0, all);
  assert.equal(loader.sample(windows, seq).epoch, 1);
  assert.deepEqual(loader.positions()[0], {
    name: source.name,
    tokens: 1582 + 333 + 1700,
    windows,
    samples: 2 * windows,
    epoch: 2,
  });
});

test("batches depend only on (seed, step, rank): any order, any loader", async () => {
  const a = createMixtureLoader({ sources: table1, seed: 42 });
  const b = createMixtureLoader({ sources: table1, seed: 42 });
  const c = createMixtureLoader({ sources: table1, seed: 43 });
  const forward = [];
  for (let step = 0; step < 6; step++) forward.push(await a.batch(step, 0, 1, 8, 32));
  for (let step = 5; step >= 0; step--)
    assert.deepEqual(await b.batch(step, 0, 1, 8, 32), forward[step]);
  assert.notDeepEqual(await c.batch(0, 0, 1, 8, 32), forward[0]);
});

test("world size 2 sees the same global batch as world size 1", async () => {
  const one = createMixtureLoader({ sources: table1, seed: 5 });
  const two = createMixtureLoader({ sources: table1, seed: 5 });
  for (let step = 0; step < 4; step++) {
    const whole = await one.batch(step, 0, 1, 12, 16);
    const r0 = await two.batch(step, 0, 2, 6, 16);
    const r1 = await two.batch(step, 1, 2, 6, 16);
    assert.deepEqual([...r0, ...r1], [...whole], `step ${step}`);
  }
});

test("save_state → new loader → load_state continues the same batches", async () => {
  const seq = 40;
  const first = createMixtureLoader({ sources: table1, seed: 9 });
  const batches = [];
  let state = "";
  for (let step = 0; step < 10; step++) {
    batches.push(await first.batch(step, 0, 1, 64, seq));
    if (step === 4) state = first.saveState();
  }
  assert.match(state, /^herd-mixture-state 1\nseed 9 block_rows 10000\nserved 5 64 40\n/);
  const resumed = createMixtureLoader({ sources: table1, seed: 9 });
  resumed.loadState(state);
  assert.equal(resumed.saveState(), state);
  for (let step = 5; step < 10; step++)
    assert.deepEqual(await resumed.batch(step, 0, 1, 64, seq), batches[step]);
  assert.deepEqual(resumed.positions(), first.positions());
  assert.equal(resumed.saveState(), first.saveState());
});

test("a state from other data, another seed, or garbage is refused with a reason", async () => {
  const loader = createMixtureLoader({ sources: table1, seed: 9 });
  await loader.batch(0, 0, 1, 4, 8);
  const state = loader.saveState();
  assert.throws(
    () => createMixtureLoader({ sources: table1, seed: 10 }).loadState(state),
    /saved with seed 9/,
  );
  const fewer = createMixtureLoader({ sources: table1.slice(0, 6), seed: 9 });
  assert.throws(
    () => fewer.loadState(state),
    /source commoncrawl changed since the state was saved/,
  );
  const other = await makeSource("other", 1, [500]);
  const changed = table1.map((s, i) => (i === 1 ? { ...s, folder: other } : s));
  assert.throws(
    () => createMixtureLoader({ sources: changed, seed: 9 }).loadState(state),
    /source c4 changed since the state was saved/,
  );
  for (const junk of ["", "hello", "herd-mixture-state 2\n", "herd-mixture-state 1\nseed x"])
    assert.throws(() => loader.loadState(junk), /mixture state: /);
});

test("bad mixture configuration is a clear error", async () => {
  const f = table1[0]!.folder!;
  assert.throws(() => createMixtureLoader({ sources: [] }), /no sources/);
  assert.throws(
    () => createMixtureLoader({ sources: [{ name: "a b", weight: 1, folder: f }] }),
    /whitespace/,
  );
  assert.throws(
    () => createMixtureLoader({ sources: [{ name: "a", weight: -1, folder: f }] }),
    /weights must be positive/,
  );
  assert.throws(
    () =>
      createMixtureLoader({
        sources: [
          { name: "a", weight: 1, folder: f },
          { name: "a", weight: 1, folder: f },
        ],
      }),
    /listed twice/,
  );
  const loader = createMixtureLoader({ sources: [table1[0]!] });
  await assert.rejects(loader.batch(0, 0, 1, 1, 100000), /fewer than one row of seq_len \+ 1/);
  assert.throws(() => loader.batch(0, 2, 2, 1, 8), /rank < world/);
});
