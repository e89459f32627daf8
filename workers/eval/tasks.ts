// Evaluation tasks on a loaded model, as in the LLaMA paper's zero- and few-shot evaluations
// and lm-evaluation-harness's conventions:
//
// multiple choice (the JSONL format of data/README.md): each choice is scored as
//   the log-likelihood of " " + choice given the context; acc picks the highest sum, acc_norm
//   the highest sum divided by the choice's length in characters; standard errors are the
//   sample standard deviation over items / √n. Few-shot prompts prepend k solved examples
//   (context + " " + correct choice), drawn from the other items with a fixed seed, separated
//   by a blank line.
// perplexity (a text file): rolling windows over its tokens; per-token perplexity, and the
//   same likelihood per UTF-8 byte (byte perplexity, bits per byte), which compares models
//   with different tokenizers.
import type { Inference } from "../../native/inference.ts";
import { readTextDecompressed } from "../compressed.ts";
import { Rng } from "./rng.ts";
import type { TextTokenizer } from "../model/tokenizers.ts";

export class TaskError extends Error {
  override name = "TaskError";
}

export interface MultipleChoiceItem {
  context: string;
  choices: string[];
  label: number;
}

export interface Metric {
  name: "acc" | "acc_norm" | "acc_per_token" | "perplexity" | "bits_per_byte" | "byte_perplexity";
  value: number;
  stderr?: number;
}

export interface TaskOutcome {
  examples: number;
  metrics: Metric[];
  /** Per item: the chosen index by acc and by acc_norm (multiple choice). */
  predictions?: { acc: number; accNorm: number; accPerToken: number; label: number }[];
}

/** Reads the first `limit` items of a multiple-choice JSONL file, checking every field. */
export function readMultipleChoice(file: string, limit?: number): MultipleChoiceItem[] {
  const lines = readTextDecompressed(file).split("\n");
  const items: MultipleChoiceItem[] = [];
  for (const [i, line] of lines.entries()) {
    if (limit !== undefined && items.length >= limit) break;
    if (line.trim() === "") continue;
    const where = `${file}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new TaskError(`${where}: not valid JSON (${(err as Error).message})`);
    }
    const o = v as Partial<MultipleChoiceItem>;
    if (typeof o?.context !== "string") throw new TaskError(`${where}: context must be a string`);
    if (
      !Array.isArray(o.choices) ||
      o.choices.length < 2 ||
      !o.choices.every((c) => typeof c === "string")
    )
      throw new TaskError(`${where}: choices must be an array of at least two strings`);
    if (!Number.isInteger(o.label) || o.label! < 0 || o.label! >= o.choices.length)
      throw new TaskError(`${where}: label must be an index into choices`);
    items.push({ context: o.context, choices: o.choices, label: o.label! });
  }
  if (items.length === 0) throw new TaskError(`${file}: no items`);
  return items;
}

/** Mean and its standard error (sample standard deviation / √n), as lm-evaluation-harness. */
export function meanStderr(xs: number[]): { value: number; stderr: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { value: mean, stderr: 0 };
  const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1);
  return { value: mean, stderr: Math.sqrt(variance / n) };
}

/** The few-shot examples for item i: k other items, chosen by (seed, i) alone. */
export function fewShotIndices(n: number, i: number, k: number, seed: number): number[] {
  if (k === 0) return [];
  if (k > n - 1) throw new TaskError(`numFewShot ${k} needs more than ${n} items`);
  const rng = new Rng(seed * 1_000_003 + i);
  const picked = new Set<number>();
  while (picked.size < k) {
    const j = rng.below(n);
    if (j !== i) picked.add(j);
  }
  return [...picked];
}

export function promptFor(items: MultipleChoiceItem[], i: number, k: number, seed: number): string {
  const shots = fewShotIndices(items.length, i, k, seed).map((j) => {
    const ex = items[j]!;
    return ex.context + " " + ex.choices[ex.label];
  });
  return [...shots, items[i]!.context].join("\n\n");
}

export interface EvalModel {
  inference: Inference;
  tokenizer: TextTokenizer;
  maxSeqLen: number;
}

// lm-evaluation-harness's split: trailing spaces of the context move to the continuation;
// the continuation's tokens are what encode(context + continuation) has beyond
// encode(context)'s length.
async function encodePair(t: TextTokenizer, context: string, continuation: string) {
  const trimmed = context.trimEnd();
  if (trimmed.length < context.length) {
    continuation = context.slice(trimmed.length) + continuation;
    context = trimmed;
  }
  const ctx = await t.encode(context);
  const whole = await t.encode(context + continuation);
  const bos = t.addBos && t.bosId !== undefined ? [t.bosId] : [];
  let contextIds = Int32Array.from([...bos, ...ctx]);
  // an empty context still needs a token to condition on: BOS, or lm-eval's end-of-text
  if (contextIds.length === 0) {
    const start = t.bosId ?? t.eosId;
    if (start === undefined) throw new TaskError("an empty context needs a BOS or EOS token");
    contextIds = Int32Array.of(start);
  }
  return { context: contextIds, continuation: whole.subarray(ctx.length) };
}

export async function evalMultipleChoice(
  m: EvalModel,
  items: MultipleChoiceItem[],
  options: {
    numFewShot: number;
    seed: number;
    batchSize: number;
    progress?: (done: number) => void;
  },
): Promise<TaskOutcome> {
  const acc: number[] = [];
  const accNorm: number[] = [];
  const accPerToken: number[] = [];
  const predictions: TaskOutcome["predictions"] = [];
  for (let start = 0; start < items.length; start += options.batchSize) {
    const batch = items.slice(start, start + options.batchSize);
    const requests = [];
    for (const [b, item] of batch.entries()) {
      const prompt = promptFor(items, start + b, options.numFewShot, options.seed);
      for (const choice of item.choices) {
        const pair = await encodePair(m.tokenizer, prompt, " " + choice);
        if (pair.continuation.length === 0)
          throw new TaskError(`item ${start + b}: choice ${JSON.stringify(choice)} has no tokens`);
        requests.push(pair);
      }
    }
    const scores = await m.inference.score(requests);
    let at = 0;
    for (const item of batch) {
      const scored = item.choices.map(() => scores[at++]!);
      const ll = scored.map((r) => r.logprob);
      const norm = ll.map((x, c) => x / Array.from(item.choices[c]!).length);
      const perToken = scored.map((r) => r.logprob / r.tokens);
      const argmax = (xs: number[]) => xs.reduce((best, x, j) => (x > xs[best]! ? j : best), 0);
      const a = argmax(ll),
        an = argmax(norm),
        ap = argmax(perToken);
      acc.push(a === item.label ? 1 : 0);
      accNorm.push(an === item.label ? 1 : 0);
      accPerToken.push(ap === item.label ? 1 : 0);
      predictions.push({ acc: a, accNorm: an, accPerToken: ap, label: item.label });
    }
    options.progress?.(Math.min(items.length, start + options.batchSize));
  }
  return {
    examples: items.length,
    metrics: [
      { name: "acc", ...meanStderr(acc) },
      { name: "acc_norm", ...meanStderr(accNorm) },
      // normalised by the continuation's token count, as llama.cpp's perplexity tool scores
      { name: "acc_per_token", ...meanStderr(accPerToken) },
    ],
    predictions,
  };
}

export async function evalPerplexity(
  m: EvalModel,
  text: string,
  options: { window?: number; stride?: number },
): Promise<TaskOutcome & { tokens: number; bytes: number; nll: number }> {
  const t = m.tokenizer;
  const bos = t.addBos && t.bosId !== undefined ? [t.bosId] : [];
  const tokens = Int32Array.from([...bos, ...(await t.encode(text))]);
  if (tokens.length < 2) throw new TaskError("perplexity needs a text of at least two tokens");
  const window = Math.min(options.window ?? m.maxSeqLen, m.maxSeqLen);
  const stride = Math.min(options.stride ?? Math.max(1, window >> 1), window);
  const r = await m.inference.perplexity(tokens, window, stride);
  const bytes = Buffer.byteLength(text, "utf8");
  return {
    examples: 1,
    tokens: r.tokens,
    bytes,
    nll: r.nll,
    metrics: [
      { name: "perplexity", value: Math.exp(r.nll / r.tokens) },
      { name: "byte_perplexity", value: Math.exp(r.nll / bytes) },
      { name: "bits_per_byte", value: r.nll / bytes / Math.LN2 },
    ],
  };
}
