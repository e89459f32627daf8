// Generative tasks, as the LLaMA paper scores NaturalQuestions, TriviaQA and GSM8k: the model
// writes its answer after the prompt (greedy, or k samples at a temperature), the text is cut
// before the first stop string, reduced to its answer (the definition's `extract` pattern),
// normalised, and compared with the gold answers:
//   exact_match  the (first) answer equals a gold answer
//   f1           the best token-overlap F1 with a gold answer (SQuAD's)
//   maj1_at_k    the most frequent of the k answers equals a gold answer (Minerva's maj1@k)
//   pass_at_1, pass_at_k  code tasks: the definition's program, the output in it, runs in the
//                sandbox (sandbox.ts); the Codex paper's unbiased estimate from the k samples
import {
  generationMetric,
  type GenerationMetric,
  type TaskDefinition,
} from "../../crds/evaltask.ts";
import { continuationText } from "../model/tokenizers.ts";
import { outputSlot, type GenerationItem } from "./documents.ts";
import { lastBoxed, normalizeMath } from "./math-answers.ts";
import { passAtK, runPython } from "./sandbox.ts";
import {
  aggregate,
  fewShotSourceOf,
  shotsFor,
  TaskError,
  type EvalModel,
  type FewShotSource,
  type GroupResult,
  type Metric,
} from "./tasks.ts";

export type GenerationSettings = Pick<
  TaskDefinition,
  | "until"
  | "maxNewTokens"
  | "extract"
  | "normalize"
  | "samples"
  | "temperature"
  | "targetDelimiter"
  | "fewShotDelimiter"
  | "average"
> & { metrics: GenerationMetric[]; fewShot: FewShotSource<GenerationItem> };

export function generationSettingsOf(
  d: TaskDefinition,
  pool?: GenerationItem[],
): GenerationSettings {
  return {
    until: d.until,
    maxNewTokens: d.maxNewTokens,
    ...(d.extract !== undefined && { extract: d.extract }),
    normalize: d.normalize,
    samples: d.samples,
    temperature: d.temperature,
    targetDelimiter: d.targetDelimiter,
    fewShotDelimiter: d.fewShotDelimiter,
    average: d.average,
    metrics: d.metrics.filter((x): x is GenerationMetric => generationMetric.safeParse(x).success),
    fewShot: fewShotSourceOf(d.fewShot, pool),
  };
}

/** SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces. */
export function normalizeText(s: string): string {
  return s
    .toLowerCase()
    .replace(/[\p{P}\p{S}]/gu, " ")
    .replace(/\b(a|an|the)\b/g, " ")
    .split(/\s+/)
    .filter((w) => w !== "")
    .join(" ");
}

/** A number as GSM8k compares them: no commas, no $, no trailing dot or zeros. */
export function normalizeNumber(s: string): string {
  const t = s.replace(/[,$\s]/g, "").replace(/\.$/, "");
  const n = Number(t);
  return t !== "" && Number.isFinite(n) ? String(n) : t;
}

const lastNumber = /-?\d[\d,]*(?:\.\d+)?/g;

/**
 * The answer in a text: MATH's last \boxed{}; else the extract pattern's first group, else the
 * last number (normalize: number) or the text.
 */
export function answerOf(
  text: string,
  s: Pick<GenerationSettings, "extract" | "normalize">,
): string {
  // no box, no answer (as Hendrycks et al. score it): "" equals no gold answer
  if (s.normalize === "math") return normalizeMath(lastBoxed(text) ?? "");
  const m = s.extract ? new RegExp(s.extract).exec(text) : null;
  let answer = m ? (m[1] ?? m[0]) : text;
  if (!m && s.normalize === "number") answer = text.match(lastNumber)?.at(-1) ?? text;
  return s.normalize === "number" ? normalizeNumber(answer) : normalizeText(answer);
}

/** SQuAD's F1 between the normalised words of a prediction and of a gold answer. */
export function tokenF1(prediction: string, gold: string): number {
  const p = prediction.split(" ").filter((w) => w !== "");
  const g = gold.split(" ").filter((w) => w !== "");
  if (p.length === 0 || g.length === 0) return p.length === g.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const w of g) counts.set(w, (counts.get(w) ?? 0) + 1);
  let common = 0;
  for (const w of p) {
    const c = counts.get(w) ?? 0;
    if (c > 0) {
      common++;
      counts.set(w, c - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / p.length;
  const recall = common / g.length;
  return (2 * precision * recall) / (precision + recall);
}

/** The most frequent answer; a tie goes to the one that came first. */
export function majority(answers: string[]): string {
  const counts = new Map<string, number>();
  for (const a of answers) counts.set(a, (counts.get(a) ?? 0) + 1);
  let best = answers[0]!;
  for (const a of answers) if (counts.get(a)! > counts.get(best)!) best = a;
  return best;
}

/** The text before the first stop string. */
export function cutAtStop(text: string, until: string[]): string {
  let end = text.length;
  for (const stop of until) {
    const at = text.indexOf(stop);
    if (at >= 0 && at < end) end = at;
  }
  return text.slice(0, end);
}

export function generationPrompt(
  items: GenerationItem[],
  i: number,
  k: number,
  seed: number,
  s: GenerationSettings,
): string {
  const shots = shotsFor(items, i, k, seed, s.fewShot).map(
    (x) => x.context + s.targetDelimiter + x.target + s.fewShotDelimiter,
  );
  return (items[i]!.preamble ?? "") + shots.join("") + items[i]!.context;
}

export interface Generation {
  /** The first sample's text, cut at the stop string. */
  output: string;
  /** The answers of all samples, normalised. */
  answers: string[];
  /** Code tasks: how many samples' programs passed. */
  passed?: number;
}

export interface GenerationOutcome {
  examples: number;
  metrics: Metric[];
  groups?: GroupResult[];
  generations: Generation[];
}

/** The model's outputs for one prompt, cut at the stop strings. */
async function generate(
  m: EvalModel,
  prompt: string,
  seed: number,
  s: GenerationSettings,
  stopSequences: Int32Array[],
): Promise<string[]> {
  const t = m.tokenizer;
  const bos = t.addBos && t.bosId !== undefined ? [t.bosId] : [];
  let ids = Int32Array.from([...bos, ...(await t.encode(prompt))]);
  const room = m.maxSeqLen - s.maxNewTokens;
  if (room < 1)
    throw new TaskError(
      `maxNewTokens ${s.maxNewTokens} leaves no room in the model's ${m.maxSeqLen} tokens`,
    );
  if (ids.length > room) ids = ids.subarray(ids.length - room); // the question is at the end
  const outs = await m.inference.generateSamples(ids, {
    maxNewTokens: s.maxNewTokens,
    temperature: s.temperature,
    seed,
    samples: s.samples,
    stopSequences,
    ...(t.eosId !== undefined && { stop: Int32Array.of(t.eosId) }),
  });
  const tail = ids.subarray(Math.max(0, ids.length - 16)); // enough to decode the boundary
  return Promise.all(
    outs.map(async (o) => {
      const ended = t.eosId !== undefined && o.at(-1) === t.eosId ? o.subarray(0, -1) : o;
      return cutAtStop(await continuationText(t, tail, ended), s.until);
    }),
  );
}

export async function evalGeneration(
  m: EvalModel,
  items: GenerationItem[],
  options: {
    numFewShot: number;
    seed: number;
    settings: GenerationSettings;
    progress?: (done: number) => void;
  },
): Promise<GenerationOutcome> {
  const s = options.settings;
  const values: Record<GenerationMetric, number>[] = [];
  const generations: Generation[] = [];
  // the stop strings' tokens, an early exit for the engine (the text is cut at the strings)
  const stops = (await Promise.all(s.until.map((u) => m.tokenizer.encode(u)))).filter(
    (x) => x.length > 0,
  );
  for (const [i, item] of items.entries()) {
    const prompt = generationPrompt(items, i, options.numFewShot, options.seed, s);
    // each question's samples are drawn from (seed, i) alone, as its few-shot examples are
    const outputs = await generate(m, prompt, options.seed * 1_000_003 + i, s, stops);
    const answers = outputs.map((o) => answerOf(o, s));
    const golds = item.answers.map((g) => answerOf(g, s));
    const right = (a: string) => (golds.includes(a) ? 1 : 0);
    let passed: number | undefined;
    if (item.program) {
      passed = 0;
      for (const o of outputs)
        if ((await runPython(item.program.replace(outputSlot, () => o))).outcome === "passed")
          passed++;
    }
    const n = outputs.length;
    values.push({
      exact_match: right(answers[0]!),
      f1: Math.max(...golds.map((g) => tokenF1(answers[0]!, g))),
      maj1_at_k: right(majority(answers)),
      pass_at_1: passed === undefined ? NaN : passAtK(n, passed, 1),
      pass_at_k: passed === undefined ? NaN : passAtK(n, passed, n),
    });
    generations.push({ output: outputs[0]!, answers, ...(passed !== undefined && { passed }) });
    if ((i + 1) % 10 === 0 || i + 1 === items.length) options.progress?.(i + 1);
  }
  const result = aggregate(
    s.metrics,
    values,
    items.map((x) => x.group),
    s.average,
  );
  return { examples: items.length, ...result, generations };
}
