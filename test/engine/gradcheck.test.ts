// Finite-difference gradient checks in double precision for every op and the whole model:
// native/test/gradcheck.cc runs the engine's templates with T = double and prints one JSON
// line per check.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "../..");

interface Check {
  check: string;
  maxRelError: number;
  count: number;
}

// Run once; passive OpenMP waiting keeps idle threads from starving OpenBLAS's on 2 cores.
const checks = execFileSync(path.join(root, "native/build/herd_gradcheck"), {
  encoding: "utf8",
  env: { ...process.env, OMP_NUM_THREADS: "2", OMP_WAIT_POLICY: "passive" },
})
  .trim()
  .split("\n")
  .map((line) => JSON.parse(line) as Check);

test("analytic gradients match central differences (fp64) for every op and the model", () => {
  const names = new Set(checks.map((c) => c.check));
  for (const op of [
    "linear.dx",
    "linear.dw",
    "embedding.dtable",
    "rmsnorm.dx",
    "rmsnorm.dg",
    "rope.dx",
    "attention.dq",
    "attention.dk",
    "attention.dv",
    "swiglu.da",
    "swiglu.db",
    "cross_entropy.dlogits",
  ])
    assert.ok(names.has(op), `missing check ${op}`);
  // every parameter tensor of a 2-layer model, untied and tied
  for (const kind of ["untied", "tied"]) {
    const tensors = checks.filter((c) => c.check.startsWith(`model.${kind}.`));
    assert.equal(tensors.length, kind === "untied" ? 21 : 20, `${kind} model tensors checked`);
  }
  for (const c of checks) {
    assert.ok(c.count > 0, `${c.check}: nothing compared`);
    assert.ok(c.maxRelError < 1e-5, `${c.check}: max relative error ${c.maxRelError}`);
  }
});

test("blocked online-softmax attention equals the full softmax over the T×T matrix", () => {
  const c = checks.find((x) => x.check === "attention.forward_vs_naive");
  assert.ok(c, "no attention forward check");
  assert.ok(c.maxRelError < 1e-10, `attention forward error ${c.maxRelError}`);
});
