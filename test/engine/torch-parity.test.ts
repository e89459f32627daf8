// Parity with PyTorch, an independent implementation with autograd (test/engine/torch_reference.py,
// run in the provisioned torch venv): logits, loss, every gradient, the gradient norm and the
// weights after one clipped AdamW step, from the same random weights and tokens, in fp32.
// (The AdamW step is taken by both from herd's gradients; torch_reference.py says why.)
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import path from "node:path";
import { resolveModel } from "../../crds/model.ts";
import { engine, type TrainerOptions } from "../../native/engine.ts";
import { randomMatrix } from "../../native/reference.ts";
import { decodeSafetensors, encodeSafetensors } from "../../workers/trainer/safetensors.ts";
import { trainerOptions } from "./fixtures.ts";

const cache = process.env.HERD_CACHE ?? path.join(homedir(), ".cache/herd");
const python = path.join(cache, "torch-venv/bin/python");
const script = path.join(import.meta.dirname, "torch_reference.py");

/** max |x − ref| / max |ref|: the error relative to the tensor's scale. */
function relativeError(x: ArrayLike<number>, ref: ArrayLike<number>): number {
  assert.equal(x.length, ref.length);
  let worst = 0,
    scale = 0;
  for (let i = 0; i < x.length; i++) {
    worst = Math.max(worst, Math.abs(x[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return scale === 0 ? worst : worst / scale;
}

async function parity(t: TestContext, name: string, tied: boolean, nKvHeads: number) {
  const seqLen = 80; // more than one 64-key tile of the blocked attention
  const batch = 2;
  const model = {
    ...resolveModel(
      {
        dim: 64,
        nLayers: 2,
        nHeads: 4,
        ffnMultipleOf: 32,
        maxSeqLen: 96,
        normEps: 1e-5,
        ropeTheta: 10000,
        tiedEmbeddings: tied,
      },
      256,
    ),
    nKvHeads,
  };
  const lr = 1e-3;
  // The engine tests' options, with this test's model, batch and a constant learning rate.
  const base = trainerOptions();
  const options: TrainerOptions = trainerOptions({
    model,
    optimizer: { ...base.optimizer, peakLr: lr, warmupSteps: 0 },
    seqLen,
    microBatch: batch,
    accumSteps: 1,
    seed: 0,
    source: { kind: "text-bytes", text: new Uint8Array(1000), seed: 0 },
  });
  const trainer = engine.createTrainer(options);
  // Random weights, larger than the training init so every path matters: gains 1 ± 0.2.
  const weights = trainer.tensors("params").map((t, i) => {
    const r = randomMatrix(t.data.length, 17 + i);
    const data = t.shape.length === 1 ? r.map((x) => 1 + 0.2 * x) : r.map((x) => 0.3 * x);
    return { ...t, data };
  });
  trainer.setTensors("params", Object.fromEntries(weights.map((t) => [t.name, t.data])));
  const ids = (seed: number) =>
    Int32Array.from(randomMatrix(batch * seqLen, seed), (x) => Math.floor((x + 1) * 128));
  const tokens = ids(1),
    targets = ids(2);

  const dir = mkdtempSync(path.join(tmpdir(), "herd-parity-"));
  try {
    const { logits, loss } = await trainer.lossAndGrads(tokens, batch, seqLen, targets);
    const grads = trainer.tensors("grads");
    const input = path.join(dir, "in.safetensors");
    writeFileSync(
      input,
      encodeSafetensors([
        ...weights,
        ...grads.map((g) => ({ ...g, name: `herd_grad.${g.name}` })),
        { name: "tokens", shape: [batch, seqLen], data: Float32Array.from(tokens) },
        { name: "targets", shape: [batch, seqLen], data: Float32Array.from(targets) },
      ]),
    );
    writeFileSync(
      path.join(dir, "config.json"),
      JSON.stringify({ model, optimizer: { ...options.optimizer, lr } }),
    );
    execFileSync(
      python,
      [script, input, path.join(dir, "config.json"), path.join(dir, "out.safetensors")],
      { env: { ...process.env, OMP_NUM_THREADS: "2" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    const ref = decodeSafetensors(readFileSync(path.join(dir, "out.safetensors")), "torch").tensors;

    const errors: Record<string, number> = {
      logits: relativeError(logits, ref.get("logits")!.data),
      loss: relativeError([loss], ref.get("loss")!.data),
    };
    for (const g of grads)
      errors[`grad ${g.name}`] = relativeError(g.data, ref.get(`grad.${g.name}`)!.data);
    const step = await trainer.update();
    errors["grad norm"] = relativeError([step.gradNorm], ref.get("grad_norm")!.data);
    assert.equal(step.lr, lr);
    for (const p of trainer.tensors("params"))
      errors[`AdamW ${p.name}`] = relativeError(p.data, ref.get(`param.${p.name}`)!.data);
    const worst = Object.entries(errors).sort((a, b) => b[1] - a[1]);
    t.diagnostic(
      `worst: ${worst
        .slice(0, 3)
        .map(([w, e]) => `${w} ${e.toExponential(2)}`)
        .join(", ")}`,
    );
    assert.ok(step.gradNorm > 1, `clipping is exercised (norm ${step.gradNorm})`);
    for (const [what, err] of worst)
      assert.ok(err < 1e-5, `${name}: ${what}: relative error ${err.toExponential(2)}`);
    assert.ok(Object.keys(errors).length >= 2 * weights.length + 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("matches PyTorch: untied output, multi-head attention", (t) => parity(t, "untied", false, 4));
test("matches PyTorch: tied output, grouped-query attention", (t) =>
  parity(t, "tied-gqa", true, 2));
