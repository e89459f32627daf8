// LoRA in the engine (native/src/engine/lora.h): the adapters' gradients are the projection of
// the targets' gradients (checked against a float64 reference and a finite difference of the
// loss), only the adapters train (every other weight keeps its bits, the targets stay
// W0 + s·B·A), step 1 is the base model's, a checkpoint's sets resume exactly, and the CUDA
// path (the stand-in: the CPU engine behind the C API) trains bit-identically to the CPU.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import type { LoraOptions, NamedTensor, Trainer } from "../../native/engine.ts";
import { trainerOptions } from "./fixtures.ts";

// Before the addon's first look for the CUDA library, which it makes once per process.
process.env.HERD_CUDA_LIBRARY = path.resolve(
  import.meta.dirname,
  "../../native/build/libherd_cuda_standin.so",
);
const { engine } = await import("../../native/engine.ts");

const lora: LoraOptions = { rank: 4, alpha: 8, targets: ["wq", "wv", "w2"] };
const scale = lora.alpha / lora.rank;
const noClip = { ...trainerOptions().optimizer, gradClip: 0 };
const byName = (ts: NamedTensor[]) => new Map(ts.map((t) => [t.name, t]));
const record = (ts: NamedTensor[]) => Object.fromEntries(ts.map((t) => [t.name, t.data]));
const isTarget = (name: string) => /\.(wq|wv|w2)\.weight$/.test(name);

// A batch of the text source, as step() would draw it: inputs and next-token targets.
function batch(n: number, T: number, seed: number) {
  const tokens = new Int32Array(n * T),
    targets = new Int32Array(n * T);
  let x = seed;
  for (let i = 0; i < n * T; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    tokens[i] = x % 256;
    targets[i] = (x >> 8) % 256;
  }
  return { tokens, targets };
}

/** C = op(A)·op(B) in float64: A is [m,k] (or its transpose), B [k,n] (or its transpose). */
function matmul(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  ta = false,
  tb = false,
) {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++)
        s += (ta ? a[p * m + i]! : a[i * k + p]!) * (tb ? b[j * k + p]! : b[p * n + j]!);
      c[i * n + j] = s;
    }
  return c;
}

function maxRelDiff(got: Float32Array, want: Float64Array) {
  let diff = 0,
    norm = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    norm = Math.max(norm, Math.abs(want[i]!));
  }
  return diff / norm;
}

async function steps(t: Trainer, n: number) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await t.step());
  return out;
}

test("step 1 of LoRA is the base model's: B starts at 0, so the merged weights are the base's", async () => {
  const full = engine.createTrainer(trainerOptions());
  const adapted = engine.createTrainer(trainerOptions({ lora }));
  assert.deepEqual((await adapted.step()).loss, (await full.step()).loss);
  const s = adapted.state();
  assert.equal(s.numParameters, full.state().numParameters);
  // A [r, in] and B [out, r] for wq, wv and w2 of both blocks of llama-tiny
  const per = adapted.layout("lora").reduce((n, t) => n + t.size, 0);
  assert.equal(s.trainableParameters, per);
  assert.equal(adapted.layout("lora").length, 2 * 3 * 2);
  assert.ok(s.trainableParameters < s.numParameters / 10);
  assert.deepEqual(adapted.lora(), lora);
  assert.equal(full.lora(), undefined);
});

test("the adapters' gradients are s·Bᵀ·dW and s·dW·Aᵀ, and the loss's own derivative", async () => {
  const o = trainerOptions({ lora, optimizer: noClip, microBatch: 2, accumSteps: 1 });
  const t = engine.createTrainer(o);
  await steps(t, 2); // B is no longer 0
  const { tokens, targets } = batch(2, o.seqLen, 11);
  const before = byName(t.tensors("lora"));
  await t.lossAndGrads(tokens, 2, o.seqLen, targets);
  const dW = byName(t.tensors("grads"));
  await t.update();
  const got = byName(t.tensors("lora_grads"));
  for (const base of t.layout("base")) {
    const stem = base.name.replace(/\.weight$/, "");
    const [out, inn] = base.shape as [number, number];
    const A = before.get(`${stem}.lora_A.weight`)!.data,
      B = before.get(`${stem}.lora_B.weight`)!.data,
      g = dW.get(base.name)!.data;
    const dA = matmul(B, g, lora.rank, inn, out, true).map((x) => x * scale);
    const dB = matmul(g, A, out, lora.rank, inn, false, true).map((x) => x * scale);
    assert.ok(maxRelDiff(got.get(`${stem}.lora_A.weight`)!.data, dA) < 1e-5, `${stem} dA`);
    assert.ok(maxRelDiff(got.get(`${stem}.lora_B.weight`)!.data, dB) < 1e-5, `${stem} dB`);
  }

  // Directional derivative along dB of one target: (L(B + εD) − L(B − εD)) / 2ε = <dB, D>,
  // the loss evaluated by a plain trainer at W0 + s·B·A, which knows nothing of LoRA.
  const lo = byName(t.tensors("lora")),
    baseW = byName(t.tensors("base"));
  await t.lossAndGrads(tokens, 2, o.seqLen, targets);
  await t.update(); // lora_grads now at the current adapters
  const grad = byName(t.tensors("lora_grads"));
  const target = "layers.1.attention.wv";
  const A = lo.get(`${target}.lora_A.weight`)!.data,
    B = lo.get(`${target}.lora_B.weight`)!.data;
  const [out, inn] = baseW.get(`${target}.weight`)!.shape as [number, number];
  const plain = engine.createTrainer(trainerOptions({ microBatch: 2, accumSteps: 1 }));
  const lossAt = async (eps: number) => {
    const Bp = B.map((x, i) => x + eps * Math.sign(grad.get(`${target}.lora_B.weight`)!.data[i]!));
    const BA = matmul(Bp, A, out, inn, lora.rank);
    const w = baseW.get(`${target}.weight`)!.data.map((x, i) => x + scale * BA[i]!);
    plain.setTensors("params", { ...record(t.tensors("params")), [`${target}.weight`]: w });
    return (await plain.lossAndGrads(tokens, 2, o.seqLen, targets)).loss;
  };
  const eps = 1e-3;
  const numeric = ((await lossAt(eps)) - (await lossAt(-eps))) / (2 * eps);
  const analytic = grad.get(`${target}.lora_B.weight`)!.data.reduce((s, g) => s + Math.abs(g), 0);
  assert.ok(
    Math.abs(numeric - analytic) < 0.02 * Math.abs(analytic),
    `finite difference ${numeric}, gradient ${analytic}`,
  );
});

test("only the adapters train: other weights keep their bits, the targets are W0 + s·B·A", async () => {
  const t = engine.createTrainer(trainerOptions({ lora }));
  const start = byName(t.tensors("params"));
  const losses = (await steps(t, 6)).map((r) => r.loss);
  assert.ok(losses[5]! < losses[0]!, `loss ${losses[0]} → ${losses[5]}`);
  const end = byName(t.tensors("params")),
    lo = byName(t.tensors("lora")),
    base = byName(t.tensors("base"));
  let changed = 0;
  for (const [name, p] of end) {
    const w0 = start.get(name)!.data;
    if (!isTarget(name)) {
      assert.ok(Buffer.from(p.data.buffer).equals(Buffer.from(w0.buffer)), `${name} changed`);
      continue;
    }
    assert.deepEqual(base.get(name)!.data, w0, `${name}: the base is the initial weight`);
    const stem = name.replace(/\.weight$/, "");
    const [out, inn] = p.shape as [number, number];
    const BA = matmul(
      lo.get(`${stem}.lora_B.weight`)!.data,
      lo.get(`${stem}.lora_A.weight`)!.data,
      out,
      inn,
      lora.rank,
    );
    const want = new Float64Array(w0.length).map((_, i) => w0[i]! + scale * BA[i]!);
    assert.ok(maxRelDiff(p.data, want) < 1e-6, `${name} is not W0 + s·B·A`);
    changed += Number(!Buffer.from(p.data.buffer).equals(Buffer.from(w0.buffer)));
  }
  assert.equal(changed, 6, "every target moved");
  // The frozen weights get no gradient at all: their weight-gradient products are skipped.
  for (const g of t.tensors("grads"))
    if (!isTarget(g.name))
      assert.ok(
        g.data.every((x) => x === 0),
        `${g.name} has a gradient`,
      );
});

test("a LoRA trainer's sets (params, lora, base, m, v) and state resume it exactly", async () => {
  const straight = engine.createTrainer(trainerOptions({ lora }));
  const want = await steps(straight, 5);
  const first = engine.createTrainer(trainerOptions({ lora }));
  const head = await steps(first, 3);
  const saved = Object.fromEntries(
    (["params", "lora", "base", "m", "v"] as const).map((s) => [s, record(first.tensors(s))]),
  );
  const second = engine.createTrainer(trainerOptions({ lora, seed: 99 })); // other initial weights
  for (const [set, tensors] of Object.entries(saved)) second.setTensors(set as "params", tensors);
  second.setState(first.state());
  const tail = await steps(second, 2);
  assert.deepEqual([...head, ...tail], want);
  for (const set of ["params", "lora", "m", "v"] as const)
    assert.deepEqual(record(second.tensors(set)), record(straight.tensors(set)), set);
});

test("LoRA on the cuda backend (the stand-in) trains bit-identically to the CPU", async () => {
  const cpu = engine.createTrainer(trainerOptions({ lora }));
  const cuda = engine.createTrainer(trainerOptions({ lora, backend: "cuda", precision: "fp32" }));
  assert.deepEqual(await steps(cuda, 4), await steps(cpu, 4));
  for (const set of ["params", "lora", "m", "v"] as const)
    assert.deepEqual(record(cuda.tensors(set)), record(cpu.tensors(set)), set);
  assert.deepEqual(cuda.state(), cpu.state());
});

test("bad LoRA options are refused naming the problem", () => {
  const make = (l: LoraOptions) => () => engine.createTrainer(trainerOptions({ lora: l }));
  assert.throws(
    make({ ...lora, targets: ["wq", "q_proj" as "wq"] }),
    /target 'q_proj' is not a block matrix \(wq wk wv wo w1 w2 w3\)/,
  );
  assert.throws(make({ ...lora, targets: [] }), /no target matrices/);
  assert.throws(make({ ...lora, rank: 0 }), /rank must be positive/);
  assert.throws(make({ ...lora, rank: 1000 }), /rank 1000 exceeds .*wq.weight's smaller side 64/);
  const t = engine.createTrainer(trainerOptions());
  assert.throws(() => t.layout("lora"), /tensor set must be one of params, m, v, grads$/);
});
