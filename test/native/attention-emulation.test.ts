// The tensor-core attention kernels (native/cuda/attention_tc.cu) cannot run here: no GPU.
// Their source runs instead on the CPU emulation of CUDA in native/test/cuda_emulation/
// (fibers for CUDA threads, each running as far as it can before the next starts, barriers
// at __syncthreads and at warp operations, shared memory filled with NaN bytes, WMMA by its
// documented semantics with its alignment rules checked), against a float64 causal
// attention: forward and backward, grouped-query heads, sequences that end inside a tile,
// several batch rows. A missing __syncthreads shows as a wrong result: the last test removes
// one and expects exactly that. This proves the indexing, masking and barriers;
// bench/gpu/run.sh checks the hardware. (cuda-emulation.test.ts runs the whole backend.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { compile, emulation, prepareSources } from "../../native/test/cuda_emulation/sources.ts";

const run = promisify(execFile);
const work = mkdtempSync(path.join(tmpdir(), "herd-attention-emulation-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

/** Builds attention_tc_check from the backend's sources as prepared in work/name (`edit`
 *  may change a source first); the binary's path. */
async function build(name: string, edit?: (file: string, text: string) => string) {
  const sources = path.join(work, name);
  prepareSources(sources, edit);
  const objects = await compile(
    [path.join(emulation, "attention_tc_check.cc"), path.join(emulation, "emulation.cc")],
    sources,
    path.join(sources, "obj"),
  );
  const out = path.join(sources, "attention_tc_check");
  await run("g++", ["-fopenmp", ...objects, "-o", out]);
  return out;
}
const plain = build("plain");

/** Runs one shape: head dim, heads, kv heads, T, B; the relative errors it printed. */
async function errors(bin: string, shape: number[]) {
  const { stdout, stderr } = await run(bin, shape.map(String), { maxBuffer: 16 << 20 });
  const m = /out (\S+) lse (\S+) dq (\S+) dk (\S+) dv (\S+) launches (\d+)/.exec(stdout);
  assert.ok(m, `no result line: ${stdout}${stderr}`);
  const [out, lse, dq, dk, dv] = m.slice(1, 6).map(Number);
  return { out: out!, lse: lse!, dq: dq!, dk: dk!, dv: dv!, launches: Number(m[6]) };
}

// bf16 operands round to 2⁻⁹ relative; the bar for bf16 kernels is 1e-2.
function assertClose(e: Awaited<ReturnType<typeof errors>>, shape: number[]) {
  for (const k of ["out", "dq", "dk", "dv"] as const)
    assert.ok(e[k] >= 0 && e[k] < 1e-2, `${shape}: ${k} relative error ${e[k]}`);
  assert.ok(e.lse >= 0 && e.lse < 1e-6, `${shape}: lse relative error ${e.lse}`); // fp32 statistics
  assert.equal(e.launches, 3, "a forward, a dK/dV and a dQ kernel");
}

const shapes = [
  [64, 4, 2, 130, 1], // GQA (2 query heads per kv head), three tiles, the last one partial
  [128, 4, 1, 130, 1], // head dim 128, four heads on one kv head
  [128, 2, 2, 64, 2], // one whole tile, two batch rows
];

for (const shape of shapes)
  test(`tensor-core attention on the CPU emulation matches float64: hd ${shape[0]}, H ${shape[1]}/${shape[2]}, T ${shape[3]}, B ${shape[4]}`, async () => {
    assertClose(await errors(await plain, shape), shape);
  });

// The emulation's own test: without the barrier between writing P and dS and the products
// that read them across rows, thread 0 runs ahead into products over rows no thread has
// written yet (NaN bytes, or the previous step's values), and the result is wrong.
test("a __syncthreads removed from the kernels makes the emulated result wrong", async () => {
  const marker = "__syncthreads();  // P and dS are complete";
  const broken = await build("broken", (file, text) => {
    if (file !== "attention_tc.cu") return text;
    assert.ok(text.includes(marker), `attention_tc.cu no longer has "${marker}"`);
    return text.replace(marker, "//");
  });
  const e = await errors(broken, [64, 2, 1, 130, 1]);
  assert.ok(
    !(e.dk < 1e-2 && e.dv < 1e-2),
    `dk ${e.dk}, dv ${e.dv}: the missing barrier went unseen`,
  );
});
