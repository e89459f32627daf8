// The whole CUDA backend on the CPU: every native/cuda source, compiled with g++ against the
// emulation of the CUDA runtime, cuBLASLt and WMMA in native/test/cuda_emulation/ (fibers
// for CUDA threads, barriers at __syncthreads and warp operations, NaN-filled shared and
// device memory), linked into libherd_cuda.so; bench/gpu's driver, linked against it exactly
// as bench/gpu/run.sh links it, runs `check`: every kernel against engine/ops.h in float64 on
// random inputs, then whole training steps of the CUDA model against the CPU engine's Model
// and AdamW (fp32 and bf16, tied and untied, recomputation, a resume). This proves the
// backend's logic (indexing, masking, barriers, host code, cuBLASLt's column-major calls);
// bench/gpu/run.sh on a GPU proves the hardware, the fragment layouts and the speed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import {
  compile,
  emulation,
  native,
  prepareSources,
} from "../../native/test/cuda_emulation/sources.ts";

const run = promisify(execFile);
const root = path.resolve(native, "..");
const work = mkdtempSync(path.join(tmpdir(), "herd-cuda-emulation-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

// Kernel checks per storage type (matmul 4, embedding 3, rmsnorm 4, rope 2, swiglu 3,
// cross-entropy 2) + attention (3 shapes × 5 outputs: fp32 once, bf16 on tensor cores and on
// CUDA cores) + AdamW 4 + 4 training steps × (loss, grads, grad norm, update against the CPU's
// step, update from the GPU's own gradients, resume).
const expectedChecks = 2 * 18 + 3 * 3 * 5 + 4 + 4 * 6;

test(
  "the CUDA backend on the CPU emulation passes bench/gpu's checks",
  { timeout: 600_000 },
  async () => {
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

    const { stdout, code } = await run(bench, ["check"], { maxBuffer: 16 << 20 }).then(
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
    assert.match(stdout, /nccl: libnccl\.so\.2 not found, the NCCL paths were not checked/);
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
