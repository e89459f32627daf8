// The CUDA backend's sources prepared for the CPU emulation in this directory (used by
// test/native/cuda-emulation.test.ts and attention-emulation.test.ts): native/cuda copied
// into a work folder with the three pieces of CUDA syntax g++ cannot parse rewritten, and
// compiled with this folder first on the include path, so that <cuda_runtime.h>,
// <cuda_bf16.h>, <cublasLt.h>, <cublas_v2.h>, <mma.h> and <dlfcn.h> are the stand-ins here.
// Everything else (common.cuh, kernels.cuh, attention.cuh, the kernels, the host code) is the
// real source, unchanged.
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
export const emulation = import.meta.dirname;
export const native = path.resolve(emulation, "../..");

/** The rewrites, applied to every .cu/.cuh file:
 *  1. `kernel<<<grid, block, shared, stream>>>(args);` →
 *     `emu::Launch(grid, block, shared, stream).run([&] { kernel(args); });`
 *     (the arguments never contain `;`, so `);` ends the statement);
 *  2. `extern __shared__ [__align__(n)] T name[];` → `T* const name = emu::dynamic_shared<T>();`
 *  3. `__shared__ T name[N];` → `auto& name = emu::static_shared<T[N]>([] {});`
 *     (the lambda's unique type tells the declarations apart). */
export function rewrite(source: string): string {
  return source
    .replace(
      /(\w+(?:<[^<>;]*>)?)\s*<<<([^;]*?)>>>\s*\(([^;]*)\);/g,
      "emu::Launch($2).run([&] { $1($3); });",
    )
    .replace(
      /extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([\w ]+?)\s+(\w+)\[\];/g,
      "$1* const $2 = emu::dynamic_shared<$1>();",
    )
    .replace(
      /__shared__\s+([\w:]+)\s+(\w+)\[([^\]]+)\];/g,
      "auto& $2 = emu::static_shared<$1[$3]>([] {});",
    );
}

/** Copies native/cuda into `into` (rewritten; `edit` may change a file's text first) and
 *  returns the .cu files' paths there. */
export function prepareSources(into: string, edit = (_file: string, text: string) => text) {
  mkdirSync(into, { recursive: true });
  const dir = path.join(native, "cuda");
  const cu: string[] = [];
  for (const f of readdirSync(dir)) {
    let text = readFileSync(path.join(dir, f), "utf8");
    if (f.endsWith(".cu") || f.endsWith(".cuh")) text = rewrite(edit(f, text));
    writeFileSync(path.join(into, f), text);
    if (f.endsWith(".cu")) cu.push(path.join(into, f));
  }
  return cu.sort();
}

/** g++ flags for a CUDA source or an emulation file, given the rewritten sources' folder. */
export const cxxFlags = (sources: string) => [
  "-std=c++20",
  "-O2",
  "-fPIC",
  "-fopenmp",
  "-I",
  emulation,
  "-I",
  sources,
  "-I",
  path.join(native, "src"),
];

/** Compiles each file to an object in `out` (a .cu as C++), as many at once as there are
 *  cores; returns the objects' paths. */
export async function compile(files: string[], sources: string, out: string) {
  mkdirSync(out, { recursive: true });
  const objects = files.map((f) => path.join(out, `${path.basename(f)}.o`));
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      await run("g++", [...cxxFlags(sources), "-x", "c++", "-c", files[i]!, "-o", objects[i]!], {
        maxBuffer: 16 << 20,
      });
    }
  };
  await Promise.all(Array.from({ length: availableParallelism() }, worker));
  return objects;
}
