// Benchmark (not a test): what sharing the few-shot prompt in the KV cache saves on MMLU
// 5-shot, SmolLM2-135M-Instruct, in one run. The same requests (the first `perSubject`
// questions of `subjects` subjects, four choices each) are scored twice:
//   shared    in one score() call, as the evaluator batches them: each question reuses the
//             cached preamble and five examples of the question before it;
//   separate  one score() call per question: its four choices still share its context, but
//             the prompt is computed anew for every question (herd before this change).
// It prints both times, the ratio, and checks the log-likelihoods agree.
//
//   node --import tsx bench/eval-prefix-cache.ts [subjects=3] [perSubject=4] [threads=2]
import type { ScoreRequest } from "../native/inference.ts";
import { choicePairs, scoringOf } from "../workers/eval/choices.ts";
import { readChoiceItems } from "../workers/eval/documents.ts";
import { openModel } from "../workers/eval/open.ts";
import { runnableTask } from "../workers/eval/registry.ts";
import { encodePair, fitWindow } from "../workers/eval/tasks.ts";
import { smollm2Path } from "../workers/model/smollm2.ts";

const [subjects, perSubject, threads] = [3, 4, 2].map((d, i) => Number(process.argv[2 + i] ?? d));
const gguf = smollm2Path();
if (!gguf) throw new Error("SmolLM2 is not provisioned (scripts/provision.d/40-eval.sh)");
const m = openModel({ path: gguf, threads, maxSeqLen: 2048 });

const task = runnableTask({ name: "mmlu", seed: 1234 });
const d = task.definition!;
const pool = readChoiceItems(d, task.fewShotUri!);
const all = readChoiceItems(d, task.uri, perSubject);
const groups = [...new Set(all.map((x) => x.group))].slice(0, subjects);
const items = all.filter((x) => groups.includes(x.group));
const s = scoringOf(d, pool);
const perQuestion: ScoreRequest[][] = [];
for (let i = 0; i < items.length; i++) {
  const pairs = choicePairs(items, i, task.numFewShot, task.seed, s);
  perQuestion.push(
    await Promise.all(
      pairs.map(async ([c, x]) => fitWindow(await encodePair(m.tokenizer, c, x), m.maxSeqLen)),
    ),
  );
}
const promptTokens = perQuestion.reduce((a, q) => a + q[0]!.context.length, 0);

const seconds = async <T>(f: () => Promise<T>): Promise<[number, T]> => {
  const t0 = process.hrtime.bigint();
  const r = await f();
  return [Number(process.hrtime.bigint() - t0) / 1e9, r];
};
await m.inference.score(perQuestion[0]!.slice(0, 1)); // warm-up
const [shared, a] = await seconds(() => m.inference.score(perQuestion.flat()));
const [separate, b] = await seconds(async () => {
  const out = [];
  for (const q of perQuestion) out.push(...(await m.inference.score(q)));
  return out;
});
const maxDiff = Math.max(...a.map((r, i) => Math.abs(r.logprob - b[i]!.logprob)));
console.log(
  `MMLU 5-shot, ${items.length} questions (${groups.join(", ")}), ${(promptTokens / items.length).toFixed(0)} prompt tokens each, ${threads} threads`,
);
console.log(`separate (prompt per question): ${separate.toFixed(2)} s`);
console.log(`shared (few-shot prompt cached): ${shared.toFixed(2)} s`);
console.log(
  `speed-up: ${(separate / shared).toFixed(2)}x; max |Δ log-likelihood| ${maxDiff.toExponential(1)}`,
);
