// The whole CUDA backend on the CPU: every native/cuda source, compiled with g++ against the
// emulation of the CUDA runtime, cuBLASLt and WMMA in native/test/cuda_emulation/ (fibers
// for CUDA threads, barriers at __syncthreads and warp operations, NaN-filled shared and
// device memory), linked into libherd_cuda.so; bench/gpu's driver, linked against it exactly
// as bench/gpu/run.sh links it, runs `check`: every kernel against engine/ops.h in float64 on
// random inputs, then whole training steps of the CUDA model against the CPU engine's Model
// and AdamW (fp32 and bf16, tied and untied, recomputation, a resume), and through NCCL (the
// emulated libnccl of native/test/cuda_emulation/nccl.cc, over shared memory) with a world of
// one. Then the trainer itself loads the emulated library: two ranks of `herd train --backend
// cuda`, their gradients averaged by the backend's NCCL buckets (or, sharded, reduce-scattered
// and all-gathered), follow two CPU ranks, across a stop and a resume. This proves the
// backend's logic (indexing, masking, barriers, host code, cuBLASLt's column-major calls, the
// NCCL paths' offsets); bench/gpu/run.sh on a GPU proves the hardware, the fragment layouts
// and the speed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import {
  compile,
  emulation,
  native,
  prepareSources,
} from "../../native/test/cuda_emulation/sources.ts";
import { readTrainingJob } from "../../crds/manifest.ts";
import { tinyJobManifest } from "../engine/fixtures.ts";
import { checkpointTensors, rankGroup, relativeL2 } from "../engine/ranks.ts";

const run = promisify(execFile);
const root = path.resolve(native, "..");
const work = mkdtempSync(path.join(tmpdir(), "herd-cuda-emulation-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

// Kernel checks per storage type (matmul 4, embedding 3, rmsnorm 4, rope 4 — plain and with
// packed examples' positions —, swiglu 3, cross-entropy 2) + attention (4 shapes, one of them
// packed examples, × 5 outputs: fp32 once, bf16 on tensor cores and on CUDA cores) + AdamW 4
// + 4 training steps × (loss, grads, grad norm, update against the CPU's step, update from
// the GPU's own gradients, resume) + 2 steps on packed examples with ignored targets × 5 (no
// resume). With NCCL, two more bf16 steps (all-reduce buckets, sharded) of 5 (no resume).
const expectedChecks = 2 * 20 + 3 * 4 * 5 + 4 + 4 * 6 + 2 * 5 + 2 * 5;

/** The emulated libherd_cuda.so and libnccl, and bench/gpu's driver linked against them. */
async function buildEmulation() {
  const sources = path.join(work, "cuda");
  const cu = prepareSources(sources);
  const objects = await compile(
    [...cu, path.join(emulation, "emulation.cc"), path.join(emulation, "cublas.cc")],
    sources,
    path.join(work, "obj"),
  );
  const lib = path.join(work, "lib");
  mkdirSync(lib);
  const so = path.join(lib, "libherd_cuda.so");
  await run("g++", ["-shared", "-fopenmp", "-o", so, ...objects, "-ldl"]);
  const bench = path.join(lib, "herd-gpu-bench");
  // bench/gpu/run.sh's link line, with the emulated library.
  await run(
    "g++",
    [
      "-O2",
      "-std=c++17",
      "-fopenmp",
      "-I",
      "bench/gpu/cblas",
      "-I",
      "native/src",
      "-I",
      "native/cuda",
      "bench/gpu/check.cc",
      "native/src/engine/model.cc",
      "native/src/engine/optimizer.cc",
      "native/src/engine/cuda_device.cc",
      "-o",
      bench,
      `-L${lib}`,
      "-lherd_cuda",
      `-Wl,-rpath,${lib}`,
      "-ldl",
    ],
    { cwd: root, maxBuffer: 16 << 20 },
  );

  const nccl = path.join(lib, "libnccl_emulated.so");
  await run("g++", [
    ...["-std=c++20", "-O2", "-fPIC", "-shared", "-Wall"],
    ...["-o", nccl, path.join(emulation, "nccl.cc")],
  ]);
  return { so, nccl, bench };
}
const built = buildEmulation();

test(
  "the CUDA backend on the CPU emulation passes bench/gpu's checks",
  { timeout: 600_000 },
  async () => {
    const { bench, nccl } = await built;
    const env = { ...process.env, HERD_EMULATED_NCCL: nccl };
    const { stdout, code } = await run(bench, ["check"], { env, maxBuffer: 16 << 20 }).then(
      (r) => ({ stdout: r.stdout, code: 0 }),
      (e: { stdout?: string; stderr?: string; code?: number }) => {
        assert.ok(e.code === 1, `the check driver crashed: ${e.stdout}${e.stderr}`);
        return { stdout: e.stdout ?? "", code: 1 };
      },
    );
    // One line per check: name, type, error (or "identical"/"differs"), limit, ok/FAIL.
    const checks = stdout
      .split("\n")
      .map((line) => /^(.+?)\s+(fp32|bf16)\s+(\S+)\s+(?:<\s+\S+\s+)?(ok|FAIL)$/.exec(line))
      .filter((m) => m !== null)
      .map((m) => ({ name: `${m[1]!.trim()} ${m[2]}`, error: m[3]!, ok: m[4] === "ok" }));
    assert.equal(checks.length, expectedChecks, `checks run:\n${stdout}`);
    assert.match(stdout, /^step untied nccl-sharded grads\s+bf16/m);
    const failed = checks.filter((c) => !c.ok);
    assert.deepEqual(
      failed.map((c) => `${c.name}: ${c.error}`),
      [],
      `failed checks:\n${stdout}`,
    );
    assert.equal(code, 0, "the driver's exit code");
    // The training-step figures, for the record (docs/engine.md quotes them).
    for (const line of stdout.split("\n")) if (line.startsWith("step ")) console.log(`# ${line}`);
  },
);

// llama-tiny made 128 wide with two heads on one kv head: head dim 64, as the CUDA kernels
// need; 8 sequences of 64 bytes per step, 2 ranks × micro-batches of 2 × 2. The LoRA job
// fine-tunes the CPU ranks' model of the first job (their step-6 checkpoint).
type Variant = "buckets" | "sharded" | "lora";
function emulatedJob(name: Variant): string {
  const job = readTrainingJob(
    tinyJobManifest(work, name, { steps: 6, globalBatchTokens: 512, seed: 4 }),
  );
  Object.assign(job.spec.model, { dim: 128, nHeads: 2, nKvHeads: 1 });
  job.spec.training.shardOptimizerState = name === "sharded";
  if (name === "lora") {
    job.spec.model = { from: { uri: path.join(work, "cpu-buckets"), format: "herd" } };
    job.spec.training.lora = { rank: 4, alpha: 8, targets: ["wq", "wv", "w1", "w2"] };
  }
  const file = path.join(work, `${name}.json`);
  writeFileSync(file, JSON.stringify(job));
  return file;
}

const described = {
  buckets: "",
  sharded: ", optimizer state sharded",
  lora: ", LoRA adapters trained on the host",
};
for (const variant of ["buckets", "sharded", "lora"] as const)
  test(
    `herd train on the emulated backend, two ranks through NCCL${described[variant]}, follows two CPU ranks across a stop and a resume`,
    { timeout: 600_000 },
    async () => {
      const { so, nccl } = await built;
      const shard = variant === "sharded";
      const job = emulatedJob(variant);
      const cpuOut = path.join(work, `cpu-${variant}`);
      const cpu = await Promise.all((await rankGroup(job, cpuOut)).map((r) => r.done));
      for (const r of cpu) assert.equal(r.code, 0, r.stderr);

      const gpuOut = path.join(work, `gpu-${variant}`);
      const env = { HERD_CUDA_LIBRARY: so, HERD_EMULATED_NCCL: nccl };
      const cuda = ["--backend", "cuda"];
      const first = await Promise.all(
        (await rankGroup(job, gpuOut, 2, [...cuda, "--steps", "3"], env)).map((r) => r.done),
      );
      for (const r of first) assert.equal(r.code, 0, r.stderr);
      const rest = await Promise.all(
        (await rankGroup(job, gpuOut, 2, cuda, env)).map((r) => r.done),
      );
      for (const r of rest) assert.equal(r.code, 0, r.stderr);
      assert.match(rest[0]!.stdout, /resumed from .*step-000000003/);
      for (const r of [...first, ...rest])
        assert.match(
          r.stdout,
          shard
            ? /training on CUDA device 0 \(fp32, optimizer state sharded\)/
            : /training on CUDA device 0 \(fp32\)/,
        );

      const losses = [...first[0]!.losses, ...rest[0]!.losses];
      assert.equal(losses.length, 6);
      for (const [i, l] of cpu[0]!.losses.entries())
        assert.ok(Math.abs(losses[i]! - l) / l < 1e-4, `step ${i + 1}: ${losses[i]} vs ${l}`);
      const files = ["model.safetensors", "optimizer.safetensors"];
      for (const file of variant === "lora" ? [...files, "lora.safetensors"] : files) {
        const r = relativeL2(
          checkpointTensors(gpuOut, 6, file),
          checkpointTensors(cpuOut, 6, file),
        );
        assert.ok(r < 1e-4, `${file}: relative L2 difference ${r}`);
        console.log(`# ${variant} ${file}: relative L2 ${r.toExponential(2)}`);
      }
    },
  );
