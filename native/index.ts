// Typed entry point to the native engine. Every other module imports the addon from here.
import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

export type Backend = "cpu" | "cuda";

export interface NativeEngine {
  /** Compute backends this build carries: always "cpu", and "cuda" when the CUDA library was built. */
  backends(): Backend[];
  /** CUDA devices visible to the CUDA backend; 0 without a GPU or driver. */
  cudaDeviceCount(): number;
  /** Why the CUDA library does not load; "" when it does. */
  cudaLoadError(): string;
  /** C = A·B for row-major fp32 matrices (A m×k, B k×n), computed off the JavaScript thread. */
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Promise<Float32Array>;
}

const here = path.dirname(fileURLToPath(import.meta.url));
export const addonPath = path.join(here, "build", "herd_native.node");

function blasCoreType(): string | undefined {
  try {
    const flags = /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "";
    const has = (f: string) => flags.includes(` ${f}`);
    if (has("avx512f") && has("avx512bw") && has("avx512vl")) return "SkylakeX";
    if (has("avx2") && has("fma")) return "Haswell";
  } catch {
    // not Linux: leave OpenBLAS's own detection
  }
  return undefined;
}

function load(): NativeEngine {
  // OpenMP threads that spin while idle starve OpenBLAS's own threads (and the reverse) when
  // there are no spare cores; sleeping idle threads make the engine several times faster on
  // small machines. libgomp reads this once, when the addon loads.
  process.env.OMP_WAIT_POLICY ??= "passive";
  // Debian's OpenBLAS 0.3.21 does not recognise recent Xeons and falls back to its SSE3
  // (Prescott) kernels, 2-3x slower; name the kernel family the CPU's flags allow.
  const core = blasCoreType();
  if (core !== undefined) process.env.OPENBLAS_CORETYPE ??= core;
  if (!existsSync(addonPath)) {
    throw new Error(
      `herd's native engine is not built (${addonPath} is missing): run 'npm run provision'`,
    );
  }
  return createRequire(import.meta.url)(addonPath) as NativeEngine;
}

export const native: NativeEngine = load();
