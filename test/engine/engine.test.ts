// The engine binding: determinism, gradient accumulation, schedule, resume state, errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { engine } from "../../native/engine.ts";
import { trainerOptions } from "./fixtures.ts";
import { shakespeare } from "../data/files.ts";
import { readDecompressed } from "../../workers/compressed.ts";

const text = readDecompressed(shakespeare);

const options = trainerOptions;

function values(ts: { data: Float32Array }[]): Float32Array {
  const out = new Float32Array(ts.reduce((n, t) => n + t.data.length, 0));
  let at = 0;
  for (const t of ts) out.set(t.data, (at += t.data.length) - t.data.length);
  return out;
}
const flat = (ts: { data: Float32Array }[]) => Buffer.from(values(ts).buffer);

test("same seed, data and threads give bit-identical weights; another seed does not", async () => {
  const runs = [options(), options(), options({ seed: 4 })].map((o) => engine.createTrainer(o));
  for (const t of runs) for (let i = 0; i < 3; i++) await t.step();
  const [a, b, c] = runs.map((t) => flat(t.tensors("params")));
  assert.ok(a!.equals(b!), "two identical runs differ");
  assert.ok(!a!.equals(c!), "a different seed gave the same weights");
});

test("accumulating 2 micro-batches of 2 gives the gradients of one micro-batch of 4", async () => {
  const accum = engine.createTrainer(options({ microBatch: 2, accumSteps: 2 }));
  const whole = engine.createTrainer(options({ microBatch: 4, accumSteps: 1 }));
  const [ra, rw] = [await accum.step(), await whole.step()];
  assert.ok(Math.abs(ra.loss - rw.loss) < 1e-6, `loss ${ra.loss} vs ${rw.loss}`);
  assert.ok(Math.abs(ra.gradNorm - rw.gradNorm) / rw.gradNorm < 1e-5);
  // The gradients (clipped by the same factor) stay in the model after the step.
  const ref = whole.tensors("grads");
  for (const [i, g] of accum.tensors("grads").entries()) {
    const r = ref[i]!.data;
    let worst = 0,
      scale = 0;
    for (let j = 0; j < r.length; j++) {
      worst = Math.max(worst, Math.abs(g.data[j]! - r[j]!));
      scale = Math.max(scale, Math.abs(r[j]!));
    }
    assert.ok(worst <= 1e-5 * scale, `${g.name}: ${worst} of ${scale}`);
  }
});

test("the learning rate warms up linearly, then follows the cosine down to 10 %", async () => {
  const t = engine.createTrainer(options());
  const lrs: number[] = [];
  for (let i = 0; i < 12; i++) lrs.push((await t.step()).lr);
  const peak = 3e-3;
  assert.ok(Math.abs(lrs[0]! - peak / 2) < 1e-12 && Math.abs(lrs[1]! - peak) < 1e-12);
  assert.ok(Math.abs(lrs[2]! - peak) < 1e-12, "cosine starts at the peak");
  const mid = 0.1 * peak + 0.5 * 0.9 * peak * (1 + Math.cos((Math.PI * 4) / 8));
  assert.ok(Math.abs(lrs[6]! - mid) < 1e-12, `${lrs[6]} vs ${mid}`);
  assert.ok(Math.abs(lrs[10]! - 0.1 * peak) < 1e-12 && Math.abs(lrs[11]! - 0.1 * peak) < 1e-12);
});

test("tensors, setTensors and setState restore a trainer exactly", async () => {
  const a = engine.createTrainer(options());
  for (let i = 0; i < 2; i++) await a.step();
  const b = engine.createTrainer(options({ seed: 99 }));
  for (const set of ["params", "m", "v"] as const)
    b.setTensors(set, Object.fromEntries(a.tensors(set).map((t) => [t.name, t.data])));
  const s = a.state();
  b.setState(s);
  await a.step();
  await b.step();
  assert.ok(flat(a.tensors("params")).equals(flat(b.tensors("params"))));
  assert.equal(b.state().step, 3);
  assert.equal(b.state().tokens, 3 * 4 * 32);
});

test("forward gives each token's −log p(target), consistent with the logits and the mean", async () => {
  const t = engine.createTrainer(options());
  const tokens = Int32Array.from(text.subarray(0, 64));
  const targets = Int32Array.from(text.subarray(1, 65));
  const { logits, loss, tokenLosses } = await t.forward(tokens, 2, 32, targets);
  assert.ok(tokenLosses, "no tokenLosses with targets");
  assert.equal(tokenLosses.length, 64);
  const mean = tokenLosses.reduce((a, b) => a + b, 0) / 64;
  assert.ok(Math.abs(mean - loss) < 1e-5, `${mean} vs ${loss}`);
  for (const n of [0, 31, 63]) {
    const row = logits.subarray(n * 256, (n + 1) * 256);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((a, z) => a + Math.exp(z - max), 0));
    assert.ok(Math.abs(lse - row[targets[n]!]! - tokenLosses[n]!) < 1e-4, `token ${n}`);
  }
  assert.equal((await t.forward(tokens, 2, 32)).tokenLosses, undefined);
});

test("bad input is a clear error, never a crash", async () => {
  assert.throws(
    () => engine.createTrainer(options({ model: { ...options().model, nKvHeads: 3 } })),
    /not divisible by nKvHeads 3/,
  );
  assert.throws(() => engine.createTrainer(options({ seqLen: 1000 })), /seqLen 1000 must be in/);
  assert.throws(
    () => engine.createTrainer(options({ model: { ...options().model, vocabSize: 100 } })),
    /vocabulary \(256\) is larger than the model's \(100\)/,
  );
  const t = engine.createTrainer(options());
  await assert.rejects(t.forward(new Int32Array([1, 2, 300, 4]), 1, 4), /token id out of range/);
  assert.throws(() => t.forward(new Int32Array(3), 1, 4), /tokens has 3 entries/);
  assert.throws(() => t.setTensors("params", {}), /tensor tok_embeddings.weight is missing/);
  assert.throws(
    () => t.setState({ ...t.state(), sourceState: "{}" }),
    /does not match this text source/,
  );
  const busy = t.step();
  assert.throws(() => t.tensors("params"), /trainer is busy/);
  await busy;
});

test("a training step runs off the JavaScript thread", async () => {
  const t = engine.createTrainer(options({ seqLen: 128, microBatch: 8, accumSteps: 1 }));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  await t.step();
  clearInterval(timer);
  assert.ok(ticks >= 1, `event loop ticks during a step: ${ticks}`);
});
