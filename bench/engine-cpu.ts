// CPU engine benchmark (not a test): training and forward-only tokens/s for two small presets,
// herd's native engine beside PyTorch running the same model (test/engine/torch_reference.py)
// with the same threads and batch, in the same run. Prints the ratios.
//   node --import tsx bench/engine-cpu.ts [--threads N] [--steps N] [--rounds N]
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { parameterCount, resolveModel } from "../crds/model.ts";
import { engine } from "../native/engine.ts";
import { shakespeare } from "../test/data/files.ts";
import { readDecompressed } from "../workers/compressed.ts";
import { torchTrainBench } from "./torch-bench.ts";
import { optimizerOptions } from "../test/engine/fixtures.ts";

const { values } = parseArgs({
  options: { threads: { type: "string" }, steps: { type: "string" }, rounds: { type: "string" } },
});
const threads = Number(values.threads ?? availableParallelism());
const steps = Number(values.steps ?? 10);
const text = readDecompressed(shakespeare);

const cases = [
  { preset: "llama-tiny", batch: 8, seqLen: 128 },
  { preset: "llama-15m", batch: 4, seqLen: 256 },
] as const;

async function herd(c: (typeof cases)[number]) {
  const model = resolveModel(
    { preset: c.preset, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false },
    256,
  );
  const trainer = engine.createTrainer({
    model,
    optimizer: optimizerOptions,
    seqLen: c.seqLen,
    microBatch: c.batch,
    accumSteps: 1,
    seed: 0,
    threads,
    source: { kind: "text-bytes", text, seed: 0 },
  });
  const tokens = c.batch * c.seqLen;
  // Wall-clock and CPU-time throughput: on a shared machine the CPU seconds a run consumed
  // say more about its efficiency than the wall clock does.
  const cpuSeconds = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;
  await trainer.step(); // warm-up
  let t0 = performance.now();
  let c0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) await trainer.step();
  const train = (steps * tokens) / ((performance.now() - t0) / 1000);
  const trainCpu = (steps * tokens) / cpuSeconds(process.cpuUsage(c0));
  const input = Int32Array.from(text.subarray(0, tokens));
  await trainer.forward(input, c.batch, c.seqLen);
  t0 = performance.now();
  c0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) await trainer.forward(input, c.batch, c.seqLen);
  const forward = (steps * tokens) / ((performance.now() - t0) / 1000);
  const forwardCpu = (steps * tokens) / cpuSeconds(process.cpuUsage(c0));
  return { model, train, forward, trainCpu, forwardCpu };
}

const torch = (c: (typeof cases)[number], model: object) =>
  torchTrainBench({ model, batch: c.batch, seqLen: c.seqLen, steps, threads });

// The machine may be shared: herd and PyTorch take turns, and each keeps its best round.
const rounds = Number(values.rounds ?? 3);
console.log(
  `herd CPU engine vs PyTorch, ${threads} threads, ${steps} timed steps, best of ${rounds} alternating rounds, fp32`,
);
const best = <T extends Record<string, number | string | object>>(a: T, b: T): T =>
  Object.fromEntries(
    Object.entries(a).map(([k, v]) => [k, typeof v === "number" ? Math.max(v, b[k] as number) : v]),
  ) as T;
for (const c of cases) {
  let h = await herd(c);
  let t = torch(c, h.model);
  for (let r = 1; r < rounds; r++) {
    h = best(h, await herd(c));
    t = best(t, torch(c, h.model));
  }
  const k = (x: number) => `${(x / 1000).toFixed(1)}k`;
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  console.log(
    `${c.preset} (${parameterCount(h.model).toLocaleString("en-US")} params, batch ${c.batch}×${c.seqLen}), torch ${t.torch}:\n` +
      `  train    herd ${k(h.train)} tok/s, torch ${k(t.trainTokensPerSecond)} tok/s: ${ratio(h.train, t.trainTokensPerSecond)}` +
      `  | per CPU-second herd ${k(h.trainCpu)}, torch ${k(t.trainTokensPerCpuSecond)}: ${ratio(h.trainCpu, t.trainTokensPerCpuSecond)}\n` +
      `  forward  herd ${k(h.forward)} tok/s, torch ${k(t.forwardTokensPerSecond)} tok/s: ${ratio(h.forward, t.forwardTokensPerSecond)}` +
      `  | per CPU-second herd ${k(h.forwardCpu)}, torch ${k(t.forwardTokensPerCpuSecond)}: ${ratio(h.forwardCpu, t.forwardTokensPerCpuSecond)}`,
  );
}
