// The CUDA sources compile with nvcc from the nvidia pip wheels for Ampere (sm_80) and Hopper
// (sm_90). Compile only: no GPU is present here or in CI (bench/gpu/run.sh runs them on one).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ffnHidden, presets } from "../../crds/presets.ts";

const run = promisify(execFile);
const cudaHome = process.env.HERD_CUDA_HOME;
const sources = path.resolve(import.meta.dirname, "../../native/cuda");
const engineSources = path.resolve(sources, "../src");

function nvccPath(): string {
  assert.ok(cudaHome, "HERD_CUDA_HOME is unset: the provisioning installs nvcc from the wheels");
  return path.join(cudaHome, "bin", "nvcc");
}

// For the header checks below.
const archFlags = [
  "-gencode",
  "arch=compute_80,code=sm_80",
  "-gencode",
  "arch=compute_90,code=sm_90",
];

const build = path.resolve(import.meta.dirname, "../../native/build");

// The provisioning builds libherd_cuda.so from every native/cuda/*.cu (CUDA_ARCHITECTURES
// 80;90). Rather than compile them all a second time, the test brings that build up to date
// (a no-op after provisioning) and reads the object CMake made of each source.
test("every CUDA source compiles for sm_80 and sm_90", { timeout: 1_800_000 }, async () => {
  nvccPath();
  assert.ok(
    existsSync(path.join(build, "build.ninja")),
    "native/build is not configured: run bash scripts/provision.sh",
  );
  await run("cmake", ["--build", build, "--target", "herd_cuda"], { maxBuffer: 64 << 20 });
  const files = readdirSync(sources).filter((f) => f.endsWith(".cu"));
  for (const expected of [
    "attention.cu",
    "attention_tc.cu",
    "model.cu",
    "nccl.cu",
    "gemm.cu",
    "adamw.cu",
  ])
    assert.ok(files.includes(expected), `native/cuda/${expected} is missing`);
  const objects = path.join(build, "CMakeFiles", "herd_cuda.dir", "cuda");
  for (const file of files) {
    const object = path.join(objects, `${file}.o`);
    assert.ok(existsSync(object), `${file}: no object in ${objects}`);
    // The fat binary names each embedded cubin's target.
    const bytes = readFileSync(object).toString("latin1");
    for (const arch of ["sm_80", "sm_90"])
      assert.ok(bytes.includes(`-arch ${arch}`), `${file}: no ${arch} code in the object`);
  }
});

test("the C API header compiles as C, as C++ and under nvcc for both targets", async () => {
  const nvcc = nvccPath();
  const out = mkdtempSync(path.join(tmpdir(), "herd-capi-"));
  try {
    const use = `#include "herd_cuda.h"\nint use(herd_cuda_model* m) { return herd_cuda_zero_grad(m); }\n`;
    for (const [name, compiler, args] of [
      ["c.c", "cc", ["-std=c99", "-Wall", "-Werror", "-pedantic"]],
      ["cxx.cc", "c++", ["-std=c++17", "-Wall", "-Werror"]],
      ["cu.cu", nvcc, ["-std=c++17", ...archFlags]],
    ] as const) {
      const file = path.join(out, name);
      writeFileSync(file, use);
      await run(compiler, ["-c", file, "-o", `${file}.o`, "-I", sources, ...args]);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

// nccl.cuh declares NCCL's types itself (NCCL is loaded with dlopen); they must match the
// real header's, which the nvidia-nccl wheel carries.
test("nccl.cuh agrees with nccl.h from the wheel", async () => {
  const nvcc = nvccPath();
  const ncclInclude = path.resolve(cudaHome!, "../nccl/include");
  assert.ok(existsSync(path.join(ncclInclude, "nccl.h")), `no nccl.h under ${ncclInclude}`);
  const out = mkdtempSync(path.join(tmpdir(), "herd-nccl-"));
  try {
    const file = path.join(out, "abi.cu");
    writeFileSync(
      file,
      `#include <nccl.h>
#include "nccl.cuh"
using namespace herd::cuda;
static_assert(sizeof(NcclId) == sizeof(ncclUniqueId), "unique id size");
static_assert(int(kNcclFloat32) == int(ncclFloat32) && int(kNcclFloat64) == int(ncclFloat64) &&
              int(kNcclBfloat16) == int(ncclBfloat16), "data types");
static_assert(int(kNcclSum) == int(ncclSum) && int(kNcclAvg) == int(ncclAvg), "reductions");
static_assert(sizeof(NcclComm) == sizeof(ncclComm_t), "communicator handle");
`,
    );
    await run(nvcc, [
      "-c",
      file,
      "-o",
      `${file}.o`,
      "-std=c++17",
      "-I",
      ncclInclude,
      "-I",
      sources,
    ]);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

// bench/gpu runs where Node is absent, so it reads the presets from a JSON copy.
test("bench/gpu/presets.json matches crds/presets.ts", () => {
  const json = JSON.parse(
    readFileSync(path.resolve(import.meta.dirname, "../../bench/gpu/presets.json"), "utf8"),
  ) as Record<string, Record<string, number>>;
  assert.deepEqual(Object.keys(json), ["llama-125m", "llama-350m", "llama-1b"]);
  for (const [name, shape] of Object.entries(json)) {
    const p = presets[name as keyof typeof presets];
    assert.deepEqual(shape, {
      dim: p.dim,
      nLayers: p.nLayers,
      nHeads: p.nHeads,
      nKvHeads: p.nKvHeads,
      ffnHidden: ffnHidden(p.dim, p.ffnMultipleOf),
      vocabSize: 32000,
      maxSeqLen: p.maxSeqLen,
    });
  }
});

// The check driver builds here as run.sh builds it on a GPU machine, linked against the
// provisioned libherd_cuda.so (so every entry point it calls exists), and stops at the device.
test("bench/gpu's driver builds against the engine and the C API, and needs a GPU to run", (t) => {
  const library = path.join(build, "libherd_cuda.so");
  if (!existsSync(library)) return t.skip("libherd_cuda.so was not built (no nvcc)");
  const out = mkdtempSync(path.join(tmpdir(), "herd-gpu-bench-"));
  try {
    const bin = path.join(out, "herd-gpu-bench");
    const engine = (f: string) => path.join(engineSources, "engine", f);
    execFileSync("c++", [
      "-std=c++17",
      "-fopenmp",
      "-I",
      path.resolve(import.meta.dirname, "../../bench/gpu/cblas"),
      "-I",
      engineSources,
      "-I",
      sources,
      path.resolve(import.meta.dirname, "../../bench/gpu/check.cc"),
      engine("model.cc"),
      engine("optimizer.cc"),
      engine("cuda_device.cc"),
      "-o",
      bin,
      `-L${build}`,
      "-lherd_cuda",
      `-Wl,-rpath,${build}`,
      "-ldl",
    ]);
    let stderr = "";
    try {
      execFileSync(bin, ["check"], { encoding: "utf8", stdio: "pipe" });
      assert.fail("the check ran without a GPU");
    } catch (err) {
      stderr = String((err as { stderr?: string }).stderr);
    }
    assert.match(stderr, /no CUDA device visible/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
