// Fine-tuning benchmark (not a test): SmolLM2-135M instruction-tuned on oasst1 examples
// (packed rows, loss on replies) by herd's CPU engine, beside PyTorch training the same
// architecture with the same threads and batch (test/engine/torch_reference.py --bench) in
// the same run. Prints tokens per second, wall clock and per CPU-second, and the ratios.
//   node --import tsx bench/finetune-cpu.ts [--threads N] [--steps N] [--batch N] [--seq-len N]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { parameterCount } from "../crds/model.ts";
import { engine, type LoraOptions } from "../native/engine.ts";
import { dataDir } from "../test/data/files.ts";
import { readGguf } from "../workers/model/formats.ts";
import { smollm2Path } from "../workers/model/smollm2.ts";
import { torchTrainBench } from "./torch-bench.ts";
import { optimizerOptions } from "../test/engine/fixtures.ts";

const { values } = parseArgs({
  options: {
    threads: { type: "string" },
    steps: { type: "string" },
    batch: { type: "string" },
    "seq-len": { type: "string" },
  },
});
const threads = Number(values.threads ?? availableParallelism());
const steps = Number(values.steps ?? 3);
const batch = Number(values.batch ?? 2);
const seqLen = Number(values["seq-len"] ?? 256);
const gguf = smollm2Path();
if (!gguf) throw new Error("SmolLM2 is not provisioned (scripts/provision.d/40-eval.sh)");

const dir = mkdtempSync(path.join(tmpdir(), "herd-finetune-bench-"));
try {
  const shards = path.join(dir, "oasst1");
  const prepared = spawnSync(
    process.execPath,
    [
      path.join(import.meta.dirname, "../bin/herd.mjs"),
      ...["data", "prepare", "--instruct", "--tokenizer", gguf, "--out", shards],
      ...["--input", path.join(dataDir, "instruct/oasst1-en-validation.jsonl.gz")],
    ],
    { encoding: "utf8" },
  );
  if (prepared.status !== 0) throw new Error(prepared.stderr);

  const base = readGguf(gguf);
  const cpuSeconds = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;
  // tokens/s of herd's trainer on the examples, full fine-tuning or LoRA
  async function herdRun(lora?: LoraOptions) {
    const trainer = engine.createTrainer({
      model: base.config,
      optimizer: optimizerOptions,
      seqLen,
      microBatch: batch,
      accumSteps: 1,
      seed: 0,
      threads,
      source: { kind: "examples", folder: shards, seed: 0 },
      ...(lora && { lora }),
    });
    trainer.setTensors("params", base.tensors);
    await trainer.step(); // warm-up
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (let i = 0; i < steps; i++) await trainer.step();
    const tokens = steps * batch * seqLen;
    return {
      wall: tokens / ((performance.now() - t0) / 1000),
      cpu: tokens / cpuSeconds(process.cpuUsage(c0)),
      trained: trainer.state().trainableParameters,
    };
  }
  const herd = await herdRun();
  const lora = await herdRun({ rank: 8, alpha: 16, targets: ["wq", "wv"] });
  const torch = torchTrainBench({ model: base.config, batch, seqLen, steps, threads });

  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  console.log(
    `fine-tuning SmolLM2-135M (${parameterCount(base.config).toLocaleString("en-US")} params) on oasst1, ` +
      `batch ${batch}×${seqLen}, ${threads} threads, ${steps} timed steps, fp32, torch ${torch.torch}\n` +
      `  herd  ${herd.wall.toFixed(0)} tok/s, ${herd.cpu.toFixed(0)} tok/CPU-s (packed examples, loss on replies)\n` +
      `  torch ${torch.trainTokensPerSecond.toFixed(0)} tok/s, ${torch.trainTokensPerCpuSecond.toFixed(0)} tok/CPU-s (same architecture, plain rows)\n` +
      `  herd / torch: ${ratio(herd.wall, torch.trainTokensPerSecond)} wall, ${ratio(herd.cpu, torch.trainTokensPerCpuSecond)} per CPU-second\n` +
      `  herd LoRA r=8 on wq, wv: ${lora.wall.toFixed(0)} tok/s, ${lora.trained.toLocaleString("en-US")} trained parameters ` +
      `(AdamW state ${((lora.trained * 8) / 2 ** 20).toFixed(1)} MiB vs ${((herd.trained * 8) / 2 ** 20).toFixed(0)} MiB); LoRA / full: ${ratio(lora.wall, herd.wall)} wall`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
