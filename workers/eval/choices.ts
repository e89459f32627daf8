// Multiple-choice scoring, as lm-evaluation-harness and the LLaMA paper score it. Every choice
// is a (context, continuation) pair whose log-likelihood the engine sums; an item's metrics
// compare those sums:
//   acc            argmax log P(choice | context)                      == label
//   acc_norm       argmax log P(choice | context) / characters(choice)  == label
//   acc_per_token  argmax log P(choice | context) / tokens(choice)      == label (llama.cpp's way)
//   acc_uncond     argmax log P(choice | context) − log P(choice | "Answer:") == label (the paper's
//                  OpenBookQA and BoolQ)
//   mc2            Σ P(true choices) / Σ P(all choices) (TruthfulQA MC2)
//   pct_stereotype log P(choice 0) > log P(choice 1) (CrowS-Pairs: choice 0 is the stereotype)
//   likelihood_diff |log P(choice 0) − log P(choice 1)|
// "partial" scoring (WinoGrande) puts each choice into the context's blank and scores the
// rest of the sentence after it instead. Few-shot examples are solved items joined by the
// few-shot delimiter after the task's preamble. Items with groups (MMLU's subjects) get
// per-group metrics and, as the task's metric, their macro average or the mean over items.
import { choiceMetric, type ChoiceMetric, type TaskDefinition } from "../../crds/evaltask.ts";
import { aggregate, encodePair, fewShotSourceOf, fitWindow, shotsFor, TaskError } from "./tasks.ts";
import type { EvalModel, FewShotSource, GroupResult, Metric, MultipleChoiceItem } from "./tasks.ts";

export interface ChoiceItem extends MultipleChoiceItem {
  /** Text before the few-shot examples (MMLU's subject line). */
  preamble?: string;
  /** Per choice, whether it is true (TruthfulQA MC2). */
  correct?: boolean[];
  group?: string;
}

export type ChoiceScoring = Pick<
  TaskDefinition,
  "scoring" | "blank" | "targetDelimiter" | "fewShotDelimiter" | "unconditionalContext" | "average"
> & {
  metrics: ChoiceMetric[];
  fewShot: FewShotSource<ChoiceItem>;
};

/** herd's own JSONL format ({context, choices, label}): lm-evaluation-harness's defaults. */
export const herdFormatScoring: ChoiceScoring = {
  scoring: "choices",
  blank: "_",
  targetDelimiter: " ",
  fewShotDelimiter: "\n\n",
  metrics: ["acc", "acc_norm", "acc_per_token"],
  average: "groups",
  fewShot: { sampler: "random", sameGroup: false },
};

export interface ChoicePrediction {
  acc: number;
  accNorm: number;
  accPerToken: number;
  label: number;
}

export interface ChoiceOutcome {
  examples: number;
  metrics: Metric[];
  groups?: GroupResult[];
  predictions: ChoicePrediction[];
}

/** The item with its gold choice in place: the blank filled, or the choice after the context. */
function solved(item: ChoiceItem, s: ChoiceScoring): string {
  const gold = item.choices[item.label]!;
  if (s.scoring === "partial") return item.context.replace(s.blank, gold);
  return item.context + s.targetDelimiter + gold;
}

/** Everything before the item's own context: its preamble and solved examples. */
export function promptPrefix(
  items: ChoiceItem[],
  i: number,
  k: number,
  seed: number,
  s: ChoiceScoring,
): string {
  const shots = shotsFor(items, i, k, seed, s.fewShot).map(
    (x) => solved(x, s) + s.fewShotDelimiter,
  );
  return (items[i]!.preamble ?? "") + shots.join("");
}

/** The (context, continuation) text pairs that score items[i]'s choices. */
export function choicePairs(
  items: ChoiceItem[],
  i: number,
  k: number,
  seed: number,
  s: ChoiceScoring,
): [string, string][] {
  const item = items[i]!;
  const prefix = promptPrefix(items, i, k, seed, s);
  if (s.scoring === "choices")
    return item.choices.map((c) => [prefix + item.context, s.targetDelimiter + c]);
  const at = item.context.indexOf(s.blank);
  if (at < 0) throw new TaskError(`item ${i}: no blank ${JSON.stringify(s.blank)} in the context`);
  const rest = s.targetDelimiter + item.context.slice(at + s.blank.length).trim();
  return item.choices.map((c) => [prefix + item.context.slice(0, at) + c, rest]);
}

const argmax = (xs: number[]) => xs.reduce((best, x, j) => (x > xs[best]! ? j : best), 0);

/** One item's value of each metric, from its choices' scores. */
function itemMetrics(
  item: ChoiceItem,
  ll: number[],
  tokens: number[],
  llUncond: number[] | undefined,
): Record<ChoiceMetric, number> & { picks: ChoicePrediction } {
  const hit = (xs: number[]) => (argmax(xs) === item.label ? 1 : 0);
  const norm = ll.map((x, c) => x / Array.from(item.choices[c]!).length);
  const perToken = ll.map((x, c) => x / tokens[c]!);
  const top = Math.max(...ll);
  const p = ll.map((x) => Math.exp(x - top));
  const total = p.reduce((a, b) => a + b, 0);
  const trueMass = p.reduce((a, x, c) => a + (item.correct?.[c] ? x : 0), 0);
  return {
    acc: hit(ll),
    acc_norm: hit(norm),
    acc_per_token: hit(perToken),
    acc_uncond: llUncond ? hit(ll.map((x, c) => x - llUncond[c]!)) : NaN,
    mc2: trueMass / total,
    pct_stereotype: ll[0]! > ll[1]! ? 1 : 0,
    likelihood_diff: Math.abs(ll[0]! - ll[1]!),
    picks: {
      acc: argmax(ll),
      accNorm: argmax(norm),
      accPerToken: argmax(perToken),
      label: item.label,
    },
  };
}

export async function evalMultipleChoice(
  m: EvalModel,
  items: ChoiceItem[],
  options: {
    numFewShot: number;
    seed: number;
    batchSize: number;
    scoring?: ChoiceScoring;
    progress?: (done: number) => void;
  },
): Promise<ChoiceOutcome> {
  const s = options.scoring ?? herdFormatScoring;
  const uncond = s.metrics.includes("acc_uncond") ? s.unconditionalContext : undefined;
  if (s.metrics.includes("acc_uncond") && uncond === undefined)
    throw new TaskError("acc_uncond needs unconditionalContext");
  if (s.metrics.some((x) => x === "pct_stereotype" || x === "likelihood_diff"))
    for (const [i, item] of items.entries())
      if (item.choices.length !== 2)
        throw new TaskError(`item ${i}: pct_stereotype and likelihood_diff compare two choices`);
  const values: Record<ChoiceMetric, number>[] = [];
  const predictions: ChoicePrediction[] = [];
  for (let start = 0; start < items.length; start += options.batchSize) {
    const batch = items.slice(start, start + options.batchSize);
    const requests = [];
    for (const [b, item] of batch.entries()) {
      const pairs = choicePairs(items, start + b, options.numFewShot, options.seed, s);
      if (uncond !== undefined)
        pairs.push(...item.choices.map((c): [string, string] => [uncond, s.targetDelimiter + c]));
      for (const [c, [context, continuation]] of pairs.entries()) {
        const pair = fitWindow(await encodePair(m.tokenizer, context, continuation), m.maxSeqLen);
        if (pair.continuation.length === 0)
          throw new TaskError(`item ${start + b}: choice ${c} has no tokens`);
        requests.push(pair);
      }
    }
    const scores = await m.inference.score(requests);
    let at = 0;
    for (const item of batch) {
      const n = item.choices.length;
      const take = () => scores.slice(at, (at += n));
      const scored = take();
      const unscored = uncond !== undefined ? take().map((r) => r.logprob) : undefined;
      const v = itemMetrics(
        item,
        scored.map((r) => r.logprob),
        scored.map((r) => r.tokens),
        unscored,
      );
      values.push(v);
      predictions.push(v.picks);
    }
    options.progress?.(Math.min(items.length, start + options.batchSize));
  }
  const result = aggregate(
    s.metrics,
    values,
    items.map((x) => x.group),
    s.average,
  );
  return { examples: items.length, ...result, predictions };
}

/** The whole prompt of items[i] (its choices follow it). */
export function promptFor(
  items: ChoiceItem[],
  i: number,
  k: number,
  seed: number,
  s: ChoiceScoring = herdFormatScoring,
): string {
  return promptPrefix(items, i, k, seed, s) + items[i]!.context;
}

/** A definition's scoring settings; `pool` holds its few-shot file's items, if it has one. */
export function scoringOf(d: TaskDefinition, pool?: ChoiceItem[]): ChoiceScoring {
  return {
    scoring: d.scoring,
    blank: d.blank,
    targetDelimiter: d.targetDelimiter,
    fewShotDelimiter: d.fewShotDelimiter,
    ...(d.unconditionalContext !== undefined && { unconditionalContext: d.unconditionalContext }),
    metrics: d.metrics.filter((x): x is ChoiceMetric => choiceMetric.safeParse(x).success),
    average: d.average,
    fewShot: fewShotSourceOf(d.fewShot, pool),
  };
}
