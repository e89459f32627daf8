// The tensor-core attention kernels (native/cuda/attention_tc.cu) cannot run here: no GPU.
// Their source runs instead on a CPU emulation of the CUDA they use
// (native/test/cuda_emulation/: a std::thread per CUDA thread, barriers for __syncthreads and
// the warp, WMMA by its documented semantics with its alignment rules checked), against a
// float64 causal attention: forward and backward, grouped-query heads, sequences that end
// inside a tile, several batch rows. Built with ThreadSanitizer too, so a missing barrier is a
// reported race. This proves the indexing, masking and barriers; bench/gpu/run.sh checks the
// hardware.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const native = path.resolve(import.meta.dirname, "../../native");
const emulation = path.join(native, "test/cuda_emulation");
const work = mkdtempSync(path.join(tmpdir(), "herd-attention-emulation-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

// The kernel source beside the stand-in headers, so its quoted includes find them.
for (const f of readdirSync(emulation)) cpSync(path.join(emulation, f), path.join(work, f));
cpSync(path.join(native, "cuda/attention_tc.cu"), path.join(work, "attention_tc.cu"));

const build = async (name: string, flags: string[]) => {
  const out = path.join(work, name);
  await run(
    "g++",
    ["-std=c++20", "-pthread", "-I", work, ...flags, "attention_tc_check.cc", "-o", out],
    {
      cwd: work,
    },
  );
  return out;
};
const plain = build("check", ["-O2"]);
const tsan = build("check-tsan", ["-O1", "-g", "-fsanitize=thread"]);

/** Runs one shape: head dim, heads, kv heads, T, B; the relative errors it printed. */
async function errors(bin: string, shape: number[]) {
  const { stdout, stderr } = await run(bin, shape.map(String), {
    env: { ...process.env, TSAN_OPTIONS: "halt_on_error=1" },
    maxBuffer: 16 << 20,
  });
  const m = /out (\S+) lse (\S+) dq (\S+) dk (\S+) dv (\S+) launches (\d+)/.exec(stdout);
  assert.ok(m, `no result line: ${stdout}${stderr}`);
  const [out, lse, dq, dk, dv] = m.slice(1, 6).map(Number);
  return { out: out!, lse: lse!, dq: dq!, dk: dk!, dv: dv!, launches: Number(m[6]), stderr };
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

test("under ThreadSanitizer: no data race between the kernels' threads", async () => {
  const shape = [64, 2, 1, 70, 1];
  const e = await errors(await tsan, shape);
  assert.doesNotMatch(e.stderr, /ThreadSanitizer/);
  assertClose(e, shape);
});
