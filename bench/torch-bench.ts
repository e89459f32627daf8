// PyTorch's side of the CPU training benchmarks: test/engine/torch_reference.py --bench runs
// the same LLaMA (fp32, same threads, same batch) and reports its tokens per second, wall
// clock and CPU time. Used by bench/engine-cpu.ts and bench/finetune-cpu.ts.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const python = path.join(
  process.env.HERD_CACHE ?? path.join(homedir(), ".cache/herd"),
  "torch-venv/bin/python",
);

export type TorchBench = {
  trainTokensPerSecond: number;
  forwardTokensPerSecond: number;
  trainTokensPerCpuSecond: number;
  forwardTokensPerCpuSecond: number;
  torch: string;
};

export function torchTrainBench(config: {
  model: object;
  batch: number;
  seqLen: number;
  steps: number;
  threads: number;
}): TorchBench {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-bench-"));
  try {
    const file = path.join(dir, "config.json");
    writeFileSync(file, JSON.stringify(config));
    const out = execFileSync(
      python,
      [path.join(root, "test/engine/torch_reference.py"), "--bench", file],
      {
        encoding: "utf8",
        // Both sides let idle OpenMP threads sleep (herd's native/index.ts sets the same), so
        // CPU time counts work, not spinning.
        env: {
          ...process.env,
          OMP_NUM_THREADS: String(config.threads),
          OMP_WAIT_POLICY: "passive",
        },
      },
    );
    return JSON.parse(out.trim().split("\n").at(-1)!) as TorchBench;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
