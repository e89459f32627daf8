// The CUDA sources compile with nvcc from the nvidia pip wheels for Ampere (sm_80) and Hopper
// (sm_90). Compile only: no GPU is present here or in CI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const cudaHome = process.env.HERD_CUDA_HOME;
const sources = path.resolve(import.meta.dirname, "../../native/cuda");

test("every CUDA source compiles for sm_80 and sm_90", { timeout: 600_000 }, () => {
  assert.ok(cudaHome, "HERD_CUDA_HOME is unset: the provisioning installs nvcc from the wheels");
  const nvcc = path.join(cudaHome, "bin", "nvcc");
  const out = mkdtempSync(path.join(tmpdir(), "herd-nvcc-"));
  try {
    const files = readdirSync(sources).filter((f) => f.endsWith(".cu"));
    assert.ok(files.length > 0, "no .cu files under native/cuda");
    for (const file of files) {
      const object = path.join(out, `${file}.o`);
      execFileSync(nvcc, [
        "-c",
        path.join(sources, file),
        "-o",
        object,
        "-std=c++17",
        "-I",
        path.resolve(sources, "../src"),
        "-gencode",
        "arch=compute_80,code=sm_80",
        "-gencode",
        "arch=compute_90,code=sm_90",
        "-Xcompiler",
        "-fPIC",
      ]);
      // The fat binary names each embedded cubin's target.
      const bytes = readFileSync(object).toString("latin1");
      for (const arch of ["sm_80", "sm_90"])
        assert.ok(bytes.includes(`-arch ${arch}`), `${file}: no ${arch} code in the object`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
