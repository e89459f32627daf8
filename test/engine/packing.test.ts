// Packed instruction examples: several examples in one row, each seeing only itself, with
// some targets not learned. The reference is each example alone in its own row: the packed
// row must give the same logits, the same summed loss and the same gradients.
import { test } from "node:test";
import assert from "node:assert/strict";
import { engine } from "../../native/engine.ts";
import { trainerOptions } from "./fixtures.ts";

// Three examples; the middle one is longer than an attention tile (64), so a query block
// starts inside it and the first example's key tiles must be skipped or masked.
const lengths = [7, 90, 23];
const examples = lengths.map((n, e) =>
  Int32Array.from({ length: n + 1 }, (_, i) => (31 * e + 7 * i + 3) % 256),
);
// Targets learned from the fourth token of each example on (a prompt of three tokens).
const learns = (i: number) => i >= 3;

function alone(e: number) {
  const x = examples[e]!;
  const n = x.length - 1;
  const tokens = x.subarray(0, n);
  const targets = Int32Array.from({ length: n }, (_, i) => (learns(i) ? x[i + 1]! : -1));
  return { tokens, targets, n, learned: targets.filter((t) => t >= 0).length };
}

function packed(padTo: number) {
  const tokens: number[] = [],
    targets: number[] = [],
    positions: number[] = [];
  for (let e = 0; e < examples.length; e++) {
    const a = alone(e);
    for (let i = 0; i < a.n; i++) {
      tokens.push(a.tokens[i]!);
      targets.push(a.targets[i]!);
      positions.push(i);
    }
  }
  // Padding is one more example, in which nothing is learned.
  for (let i = 0; tokens.length < padTo; i++) {
    positions.push(i);
    tokens.push(0);
    targets.push(-1);
  }
  return {
    tokens: Int32Array.from(tokens),
    targets: Int32Array.from(targets),
    positions: Int32Array.from(positions),
  };
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

test("a packed row gives each example's logits, loss and gradients as if it were alone", async () => {
  const options = trainerOptions({ seqLen: 160 });
  const model = { ...options.model, maxSeqLen: 160 };
  const t = engine.createTrainer({ ...options, model });
  const V = model.vocabSize;

  // Alone: each example's logits, summed loss and gradients weighted by its learned count.
  const total = lengths.map((_, e) => alone(e).learned).reduce((a, b) => a + b);
  const logitsAlone: Float32Array[] = [];
  let lossSum = 0;
  const gradSum = new Map<string, Float32Array>();
  for (let e = 0; e < examples.length; e++) {
    const a = alone(e);
    const r = await t.lossAndGrads(a.tokens, 1, a.n, a.targets);
    logitsAlone.push(r.logits);
    lossSum += r.loss * a.learned;
    for (const g of t.tensors("grads")) {
      const acc = gradSum.get(g.name) ?? new Float32Array(g.data.length);
      for (let i = 0; i < acc.length; i++) acc[i]! += (g.data[i]! * a.learned) / total;
      gradSum.set(g.name, acc);
    }
  }

  const p = packed(160);
  const r = await t.lossAndGrads(p.tokens, 1, 160, p.targets, p.positions);
  assert.ok(Math.abs(r.loss - lossSum / total) < 1e-5, `loss ${r.loss} vs ${lossSum / total}`);
  let offset = 0;
  for (let e = 0; e < examples.length; e++) {
    const n = lengths[e]!;
    const rows = r.logits.subarray(offset * V, (offset + n) * V);
    assert.ok(maxAbsDiff(rows, logitsAlone[e]!) < 1e-4, `example ${e}'s logits differ`);
    offset += n;
  }
  for (const g of t.tensors("grads")) {
    const want = gradSum.get(g.name)!;
    const scale = Math.max(...want.map(Math.abs), 1e-6);
    assert.ok(maxAbsDiff(g.data, want) / scale < 1e-3, `${g.name}: gradients differ`);
  }

  // Without positions the examples would see each other: the check above can fail.
  const unpacked = await t.lossAndGrads(p.tokens, 1, 160, p.targets);
  assert.ok(Math.abs(unpacked.loss - lossSum / total) > 1e-3, "positions made no difference");
});

test("a target of −1 adds nothing; no learned target gives loss 0 and no gradient", async () => {
  const t = engine.createTrainer(trainerOptions());
  const tokens = Int32Array.from({ length: 32 }, (_, i) => (i * 5) % 256);
  const none = new Int32Array(32).fill(-1);
  const r = await t.lossAndGrads(tokens, 1, 32, none);
  assert.equal(r.loss, 0);
  assert.ok(t.tensors("grads").every((g) => g.data.every((x) => x === 0)));
  const f = await t.forward(tokens, 1, 32, none);
  assert.ok(f.tokenLosses!.every((x) => x === 0));
});

test("positions that neither start an example nor follow the one before are refused", async () => {
  const t = engine.createTrainer(trainerOptions());
  const tokens = new Int32Array(32).fill(1);
  const positions = Int32Array.from({ length: 32 }, (_, i) => i);
  positions[10] = 4;
  await assert.rejects(
    t.forward(tokens, 1, 32, tokens, positions),
    /position 4 at row index 10 neither starts an example/,
  );
  await assert.rejects(t.forward(tokens, 1, 32, new Int32Array(32).fill(-2)), /out of range/);
});
