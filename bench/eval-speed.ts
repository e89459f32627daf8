// Benchmark (not a test): herd's inference speed on SmolLM2-135M-Instruct beside llama.cpp,
// same machine, same thread count, in one run:
//   scoring: tokens/s of a 512-token prefill that computes every position's logits (what
//     log-likelihood scoring and perplexity do) — herd's perplexity() over one window, and
//     llama-perplexity -c 512 --chunks 1 on the same text (its seconds per pass);
//   generation: greedy decoding tokens/s after a short prompt — herd's generate() (prefill
//     timed separately and subtracted) and llama-server's predicted_per_second.
// herd computes in fp32 from weights dequantised on load; llama.cpp multiplies the Q4_1
// blocks directly, reading ~6× fewer bytes per token, which bounds decoding on a CPU.
//
//   node --import tsx bench/eval-speed.ts [threads=2]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { openModel } from "../workers/eval/open.ts";
import { llamaCppBin, smollm2Path } from "../workers/model/smollm2.ts";
import { shakespeare } from "../test/data/files.ts";
import { readTextDecompressed } from "../workers/compressed.ts";
import { startServer } from "./llama-cpp.ts";

const threads = Number(process.argv[2] ?? 2);
const gguf = smollm2Path();
if (!gguf) throw new Error("SmolLM2 is not provisioned (scripts/provision.d/40-eval.sh)");
const bin = llamaCppBin();
const m = openModel({ path: gguf, threads, maxSeqLen: 1024 });
const text = readTextDecompressed(shakespeare).slice(0, 20000);
const tokens = (await m.tokenizer.encode(text)).subarray(0, 512);
const seconds = async (f: () => Promise<unknown>) => {
  const t0 = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t0) / 1e9;
};

await m.inference.perplexity(tokens.subarray(0, 64), 64, 64); // warm-up
const scoreS = await seconds(() => m.inference.perplexity(tokens, 512, 512));
const herdScoring = 512 / scoreS;
const prompt = tokens.subarray(0, 16);
const newTokens = 64;
const prefillS = await seconds(() => m.inference.generate(prompt, { maxNewTokens: 1 }));
const genS = await seconds(() => m.inference.generate(prompt, { maxNewTokens: newTokens }));
const herdGeneration = (newTokens - 1) / (genS - prefillS);
const result: Record<string, unknown> = {
  threads,
  herd: { scoringTokensPerSecond: herdScoring, generationTokensPerSecond: herdGeneration },
};

if (bin) {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-speed-"));
  try {
    const f = path.join(dir, "text.txt");
    writeFileSync(f, text);
    const r = spawnSync(
      path.join(bin, "llama-perplexity"),
      [
        "-m",
        gguf,
        "-f",
        f,
        "-c",
        "512",
        "-b",
        "512",
        "--chunks",
        "1",
        "-t",
        String(threads),
        "-tb",
        String(threads),
      ],
      { encoding: "utf8" },
    );
    // "<s> seconds per pass": one 512-token chunk with every position's logits
    const pass = /([\d.]+) seconds per pass/.exec(r.stderr);
    if (!pass)
      throw new Error(`llama-perplexity printed no time per pass:\n${r.stderr.slice(-1500)}`);
    const server = await startServer(bin, gguf, threads, 1024);
    let gen;
    try {
      await server.generate(Array.from(prompt), 4); // warm-up
      gen = await server.generate(Array.from(prompt), newTokens);
    } finally {
      server.stop();
    }
    const llamaScoring = 512 / Number(pass[1]);
    result.llamaCpp = {
      scoringTokensPerSecond: llamaScoring,
      generationTokensPerSecond: gen.predictedPerSecond,
    };
    result.ratios = {
      scoring: herdScoring / llamaScoring,
      generation: herdGeneration / gen.predictedPerSecond,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
console.log(JSON.stringify(result, null, 2));
