// Benchmark and check (not a test): herd's inference on SmolLM2-135M-Instruct (Q4_1 GGUF)
// beside llama.cpp on the same machine, threads and items.
//   1. tokenization: herd's byte-level BPE against llama-server's /tokenize on N prompts;
//   2. next-token predictions on the same token ids: top-1 agreement and the largest
//      difference of log-probability over llama.cpp's top 10 tokens;
//   3. HellaSwag and PIQA on the first N items: herd's acc, acc_norm and acc_per_token, and
//      llama.cpp's llama-perplexity --multiple-choice, which ranks choices by mean log-prob
//      per token (so acc_per_token is the like-for-like number).
//
//   node --import tsx bench/eval-smollm2.ts [N=100] [threads=2]
// HERD_RESULTS=<results.json of `herd eval --local` on the same N> reuses herd's side of step
// 3 instead of recomputing it; ONLY=logits,hellaswag,piqa picks steps.
// llama.cpp's tools come from LLAMA_CPP_BIN or ~/.cache/herd/llama.cpp/bin
// (scripts/provision.d/41-llama-cpp.sh); without them only herd's numbers are printed.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { openModel } from "../workers/eval/open.ts";
import type { ResultsFile } from "../workers/eval/run.ts";
import { evalMultipleChoice } from "../workers/eval/choices.ts";
import { readMultipleChoice } from "../workers/eval/documents.ts";
import { llamaCppBin, smollm2Path } from "../workers/model/smollm2.ts";
import { evalFile } from "../test/data/files.ts";
import { perplexityMultipleChoice, startServer } from "./llama-cpp.ts";

const N = Number(process.argv[2] ?? 100);
const threads = Number(process.argv[3] ?? 2);
const gguf = smollm2Path();
if (!gguf) throw new Error("SmolLM2 is not provisioned (scripts/provision.d/40-eval.sh)");
const bin = llamaCppBin();
const only = process.env.ONLY?.split(",");

const m = openModel({ path: gguf, threads, maxSeqLen: 2048 });
const tok = m.tokenizer;
const tasks = {
  hellaswag: readMultipleChoice(evalFile("hellaswag-val.jsonl.gz"), N),
  piqa: readMultipleChoice(evalFile("piqa-val.jsonl.gz"), N),
};
const report: Record<string, unknown> = { model: gguf, N, threads, llamaCpp: bin ?? null };

if (bin && (!only || only.includes("logits"))) {
  const server = await startServer(bin, gguf, threads);
  try {
    // prompts: contexts and context + " " + first choice of both tasks, plus mixed text
    const prompts = [
      "The capital of France is",
      "def fibonacci(n):\n    return",
      "In 1492, Columbus sailed 3,000 miles — naïve café  double  spaces\ttab",
      ...tasks.hellaswag.slice(0, Math.min(N, 50)).map((x) => x.context),
      ...tasks.piqa.slice(0, Math.min(N, 50)).map((x) => x.context + " " + x.choices[0]),
    ];
    let sameTokens = 0;
    let top1 = 0;
    let maxDiff = 0;
    let meanDiff = 0;
    for (const p of prompts) {
      const ours = Array.from(await tok.encode(p));
      const theirs = await server.tokenize(p);
      if (ours.join(",") === theirs.join(",")) sameTokens++;
      else
        console.error(
          `tokenization differs for ${JSON.stringify(p.slice(0, 60))}: ${ours.length} vs ${theirs.length} tokens`,
        );
      const top = await server.nextLogprobs(ours, 10);
      const logits = await m.inference.logits(Int32Array.from(ours), ours.length);
      const V = m.loaded.config.vocabSize;
      const last = logits.subarray((ours.length - 1) * V, ours.length * V);
      let mx = -Infinity;
      let arg = 0;
      for (let v = 0; v < V; v++)
        if (last[v]! > mx) {
          mx = last[v]!;
          arg = v;
        }
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(last[v]! - mx);
      const lse = mx + Math.log(sum);
      if (arg === top[0]!.id) top1++;
      let d = 0;
      for (const t of top) d = Math.max(d, Math.abs(last[t.id]! - lse - t.logprob));
      maxDiff = Math.max(maxDiff, d);
      meanDiff += d / prompts.length;
    }
    report.tokenization = { prompts: prompts.length, identical: sameTokens };
    report.nextToken = {
      prompts: prompts.length,
      top1Agreement: top1 / prompts.length,
      maxAbsLogprobDiffTop10: maxDiff,
      meanOfPromptMaxDiff: meanDiff,
    };
    console.error(
      JSON.stringify({ tokenization: report.tokenization, nextToken: report.nextToken }),
    );
  } finally {
    server.stop();
  }
}

const dir = mkdtempSync(path.join(tmpdir(), "herd-eval-bench-"));
try {
  for (const [name, items] of Object.entries(tasks)) {
    if (only && !only.includes(name)) continue;
    const t0 = Date.now();
    const previous = process.env.HERD_RESULTS
      ? (JSON.parse(readFileSync(process.env.HERD_RESULTS, "utf8")) as ResultsFile).tasks.find(
          (t) => t.task === name,
        )
      : undefined;
    if (previous && previous.examples !== items.length)
      throw new Error(
        `${process.env.HERD_RESULTS}: ${name} has ${previous.examples} items, not ${items.length}`,
      );
    const ours = previous
      ? { metrics: previous.metrics, predictions: previous.predictions }
      : await evalMultipleChoice(m, items, { numFewShot: 0, seed: 1234, batchSize: 16 });
    const seconds = previous ? previous.seconds : (Date.now() - t0) / 1000;
    const metrics = Object.fromEntries(
      ours.metrics.map((x) => [x.name, { value: x.value, stderr: x.stderr }]),
    );
    const entry: Record<string, unknown> = { items: items.length, herd: { ...metrics, seconds } };
    if (bin) {
      const ref = perplexityMultipleChoice(
        bin,
        gguf,
        items,
        path.join(dir, `${name}.bin`),
        threads,
      );
      const ourPerToken = ours.predictions!.map((p) => p.accPerToken === p.label);
      const agree = ref.correct.filter((c, i) => c === ourPerToken[i]).length;
      entry.llamaCpp = {
        acc_per_token: ref.correct.filter(Boolean).length / items.length,
        seconds: ref.seconds,
      };
      entry.perItemAgreement = agree / items.length;
    }
    report[name] = entry;
    console.error(JSON.stringify({ [name]: entry }));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(report, null, 2));
