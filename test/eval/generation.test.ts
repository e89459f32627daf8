// Generative tasks: answer extraction and normalisation as SQuAD and GSM8k define them, the
// metrics on outputs the test chooses, prompts with their few-shot examples, and a whole
// generate task through `herd eval --local` on a tiny model.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { GenerateOptions } from "../../native/inference.ts";
import { taskDefinitionChecked } from "../../crds/evaltask.ts";
import { readGenerationItems, type GenerationItem } from "../../workers/eval/documents.ts";
import {
  answerOf,
  cutAtStop,
  evalGeneration,
  generationPrompt,
  generationSettingsOf,
  majority,
  normalizeNumber,
  normalizeText,
  tokenF1,
} from "../../workers/eval/generation.ts";
import { lastBoxed, normalizeMath } from "../../workers/eval/math-answers.ts";
import { runnableTask } from "../../workers/eval/registry.ts";
import type { EvalModel } from "../../workers/eval/tasks.ts";
import { bytesTokenizer } from "../../workers/model/tokenizers.ts";

test("normalisation, extraction, F1 and the majority vote", () => {
  assert.equal(normalizeText("The  Eiffel Tower!"), "eiffel tower");
  assert.equal(normalizeText("an Apple, a day"), "apple day");
  assert.equal(normalizeNumber("$1,200."), "1200");
  assert.equal(normalizeNumber("18.00"), "18");
  const gsm = { extract: "#### (-?[0-9.,$]+)", normalize: "number" as const };
  assert.equal(answerOf("3 + 4 = 7\n#### 7", gsm), "7");
  assert.equal(answerOf("so she has 1,000 apples and 25 pears", gsm), "25", "the last number");
  assert.equal(answerOf(" Sunset Blvd.", { normalize: "squad" }), "sunset blvd");
  assert.equal(
    tokenF1("sunset boulevard", "west sunset boulevard"),
    (2 * 1 * (2 / 3)) / (1 + 2 / 3),
  );
  assert.equal(tokenF1("paris", "london"), 0);
  assert.equal(majority(["3", "4", "4", "3", "5"]), "3", "a tie goes to the first");
  assert.equal(majority(["3", "4", "4"]), "4");
  assert.equal(cutAtStop(" Paris, France.\nQ:", ["\n", ".", ","]), " Paris");
});

/** A model that answers each prompt with the outputs the test gives, one token per byte. */
function fakeModel(answer: (prompt: string, samples: number) => string[]): EvalModel & {
  seen: GenerateOptions[];
} {
  const seen: GenerateOptions[] = [];
  const text = (t: Int32Array) => Buffer.from(Uint8Array.from(t)).toString("utf8");
  return {
    seen,
    tokenizer: bytesTokenizer,
    maxSeqLen: 4096,
    inference: {
      generateSamples: async (prompt: Int32Array, o: GenerateOptions & { samples: number }) => {
        seen.push(o);
        return answer(text(prompt), o.samples).map((a) => Int32Array.from(Buffer.from(a)));
      },
    } as unknown as EvalModel["inference"],
  };
}

test("exact match, F1 and maj1@k over the gold answers", async () => {
  const items: GenerationItem[] = [
    { context: "Q: capital of France?\nA:", target: "Paris", answers: ["Paris", "Paris, France"] },
    { context: "Q: tallest mountain?\nA:", target: "Everest", answers: ["Mount Everest"] },
  ];
  const outputs: Record<string, string[]> = {
    "Q: capital of France?\nA:": [" paris.\nQ: next", " Lyon", " paris"],
    "Q: tallest mountain?\nA:": [" Everest\n", " K2", " K2"],
  };
  const d = taskDefinitionChecked.parse({
    scoring: "generate",
    context: "{{q}}",
    answers: "{{a}}",
    until: ["\n", "."],
    samples: 3,
    temperature: 0.5,
    metrics: ["exact_match", "f1", "maj1_at_k"],
  });
  const m = fakeModel((p, k) => outputs[p]!.slice(0, k));
  const out = await evalGeneration(m, items, {
    numFewShot: 0,
    seed: 3,
    settings: generationSettingsOf(d),
  });
  const v = Object.fromEntries(out.metrics.map((x) => [x.name, x.value]));
  // item 1: "paris" exact, majority "paris"; item 2: "everest" vs "mount everest": F1 2/3, majority K2
  assert.deepEqual(v, { exact_match: 0.5, f1: (1 + 2 / 3) / 2, maj1_at_k: 0.5 });
  assert.deepEqual(out.generations[0], { output: " paris", answers: ["paris", "lyon", "paris"] });
  // every sample of item i comes from one seed of (seed, i), the stop strings go down as tokens
  assert.deepEqual(
    m.seen.map((o) => [o.seed, o.temperature]),
    [
      [3 * 1_000_003, 0.5],
      [3 * 1_000_003 + 1, 0.5],
    ],
  );
  assert.deepEqual(m.seen[0]!.stopSequences, [Int32Array.of(10), Int32Array.of(46)]);
});

test("GSM8k's prompt: eight solved training problems, then the question; the gold answer follows ####", () => {
  const t = runnableTask({ name: "gsm8k", seed: 1234 });
  assert.equal(t.numFewShot, 8);
  const pool = readGenerationItems(t.definition!, t.fewShotUri!);
  const items = readGenerationItems(t.definition!, t.uri, 2);
  const s = generationSettingsOf(t.definition!, pool);
  const prompt = generationPrompt(items, 1, 8, 1234, s);
  const blocks = prompt.split("\n\n");
  assert.equal(blocks.length, 9);
  for (const [k, b] of blocks.slice(0, 8).entries()) {
    assert.ok(
      b.startsWith(`Question: ${pool[k]!.context.slice("Question: ".length, -"\nAnswer:".length)}`),
    );
    assert.match(b, /\n#### -?[0-9.,]+$/);
  }
  assert.ok(blocks[8]!.startsWith("Question: ") && blocks[8]!.endsWith("\nAnswer:"));
  assert.deepEqual(
    items.map((x) => answerOf(x.answers[0]!, s)),
    ["18", "3"],
  );
});

test("MATH: the last \\boxed{} with nested braces; Hendrycks' normalisation makes equal forms equal", () => {
  assert.equal(lastBoxed("so $\\boxed{2}$ and then $\\boxed{\\frac{1}{2}}$."), "\\frac{1}{2}");
  assert.equal(
    lastBoxed("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}"),
    "\\left( 3, \\frac{\\pi}{2} \\right)",
  );
  assert.equal(lastBoxed("the answer is \\boxed 5$"), "5");
  assert.equal(lastBoxed("no box here"), undefined);
  const same = (a: string, b: string) =>
    assert.equal(normalizeMath(a), normalizeMath(b), `${a} ≡ ${b}`);
  same("\\dfrac{1}{2}", "\\frac12");
  same("1/2", "\\frac{1}{2}");
  same("0.5", "\\frac{1}{2}");
  same("10^\\circ", "10");
  same("\\$18.", "18");
  same("x = 5", "5");
  same("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})");
  same("\\text{(C)}", "(C)");
  same("\\sqrt2", "\\sqrt{2}");
  assert.notEqual(normalizeMath("\\frac{1}{3}"), normalizeMath("\\frac{1}{2}"));
  const t = runnableTask({ name: "math", seed: 1 });
  const items = readGenerationItems(t.definition!, t.uri);
  assert.equal(items.length, 5000);
  assert.equal(new Set(items.map((x) => x.group)).size, 7);
  const s = generationSettingsOf(t.definition!);
  const empty = items.filter((x) => answerOf(x.answers[0]!, s) === "");
  assert.deepEqual(empty.length, 0, "every gold solution has a boxed answer");
  // a model's solution in the same words as the gold one scores as right
  assert.equal(answerOf(items[0]!.answers[0]!, s), "2");
});
