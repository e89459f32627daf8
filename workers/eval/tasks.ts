// Evaluation tasks on a loaded model, as in the LLaMA paper's zero- and few-shot evaluations
// and lm-evaluation-harness's conventions: what every task shares (few-shot draws, means with
// standard errors and group averages, the context/continuation split), and perplexity.
// Reading rows is documents.ts; multiple-choice scoring, choices.ts; generation,
// generation.ts; the registry's tasks, registry.ts.
//
// perplexity (a text file): rolling windows over its tokens; per-token perplexity, and the
//   same likelihood per UTF-8 byte (byte perplexity, bits per byte), which compares models
//   with different tokenizers.
import type { MetricName } from "../../crds/evaltask.ts";
import type { Inference } from "../../native/inference.ts";
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
  name: MetricName;
  value: number;
  stderr?: number;
}

export interface GroupResult {
  group: string;
  examples: number;
  metrics: Metric[];
}

export interface TaskOutcome {
  examples: number;
  metrics: Metric[];
}

/** Mean and its standard error (sample standard deviation / √n), as lm-evaluation-harness. */
export function meanStderr(xs: number[]): { value: number; stderr: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { value: mean, stderr: 0 };
  const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1);
  return { value: mean, stderr: Math.sqrt(variance / n) };
}

/**
 * k distinct indices below n, never `exclude`, drawn by (seed, stream) alone: item i's
 * few-shot examples are fewShotIndices(n, i, k, seed).
 */
export function fewShotIndices(
  n: number,
  exclude: number,
  k: number,
  seed: number,
  stream = exclude,
): number[] {
  if (k === 0) return [];
  const available = exclude >= 0 && exclude < n ? n - 1 : n;
  if (k > available) throw new TaskError(`numFewShot ${k} needs more than ${n} items`);
  const rng = new Rng(seed * 1_000_003 + stream);
  const picked = new Set<number>();
  while (picked.size < k) {
    const j = rng.below(n);
    if (j !== exclude) picked.add(j);
  }
  return [...picked];
}

/** Where few-shot examples come from (default: the task's other items) and how they are picked. */
export interface FewShotSource<T> {
  pool?: T[];
  sampler: "random" | "first";
  sameGroup: boolean;
}

/** A definition's few-shot settings; `pool` holds its few-shot file's items, if it has one. */
export function fewShotSourceOf<T>(
  fewShot: { sampler: "random" | "first"; sameGroup: boolean } | undefined,
  pool?: T[],
): FewShotSource<T> {
  return {
    ...(pool && { pool }),
    sampler: fewShot?.sampler ?? "random",
    sameGroup: fewShot?.sameGroup ?? false,
  };
}

/** The few-shot examples of items[i]: from the pool (or the other items), by (seed, i). */
export function shotsFor<T extends { group?: string }>(
  items: T[],
  i: number,
  k: number,
  seed: number,
  { pool, sampler, sameGroup }: FewShotSource<T>,
): T[] {
  if (k === 0) return [];
  if (!pool && !sameGroup && sampler === "random")
    return fewShotIndices(items.length, i, k, seed).map((j) => items[j]!);
  const candidates = (pool ?? items).filter(
    (x) => x !== items[i] && (!sameGroup || x.group === items[i]!.group),
  );
  if (candidates.length < k)
    throw new TaskError(
      `numFewShot ${k}: only ${candidates.length} examples${sameGroup ? ` in group ${items[i]!.group}` : ""}`,
    );
  if (sampler === "first") return candidates.slice(0, k);
  return fewShotIndices(candidates.length, -1, k, seed, i).map((j) => candidates[j]!);
}

/** Means of per-item values: over all items, or the macro average of per-group means. */
export function aggregate<M extends MetricName>(
  names: M[],
  values: Record<M, number>[],
  groups: (string | undefined)[],
  average: "groups" | "items",
): { metrics: Metric[]; groups?: GroupResult[] } {
  const metricsOf = (rows: Record<M, number>[]): Metric[] =>
    names.map((name) => ({ name, ...meanStderr(rows.map((r) => r[name])) }));
  if (groups.every((g) => g === undefined)) return { metrics: metricsOf(values) };
  const byGroup = new Map<string, Record<M, number>[]>();
  for (const [i, g] of groups.entries()) {
    const key = g ?? "";
    if (!byGroup.has(key)) byGroup.set(key, []);
    byGroup.get(key)!.push(values[i]!);
  }
  const perGroup = [...byGroup.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([group, rows]) => ({ group, examples: rows.length, metrics: metricsOf(rows) }));
  if (average === "items") return { metrics: metricsOf(values), groups: perGroup };
  // The macro average, and its standard error as the mean of independent group means.
  const macro = names.map((name, m) => {
    const ms = perGroup.map((g) => g.metrics[m]!);
    const value = ms.reduce((a, x) => a + x.value, 0) / ms.length;
    const stderr = Math.sqrt(ms.reduce((a, x) => a + (x.stderr ?? 0) ** 2, 0)) / ms.length;
    return { name, value, stderr };
  });
  return { metrics: macro, groups: perGroup };
}

export interface EvalModel {
  inference: Inference;
  tokenizer: TextTokenizer;
  maxSeqLen: number;
}

/**
 * lm-evaluation-harness's split: trailing spaces of the context move to the continuation;
 * the continuation's tokens are what encode(context + continuation) has beyond
 * encode(context)'s length.
 */
export async function encodePair(t: TextTokenizer, context: string, continuation: string) {
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

/**
 * A continuation longer than the model's window keeps its last maxSeqLen − 1 tokens, as
 * lm-evaluation-harness does; the tokens dropped become context (the engine then drops
 * context on the left to fit).
 */
export function fitWindow(
  pair: { context: Int32Array; continuation: Int32Array },
  maxSeqLen: number,
) {
  const drop = pair.continuation.length - (maxSeqLen - 1);
  if (drop <= 0) return pair;
  return {
    context: Int32Array.from([...pair.context, ...pair.continuation.subarray(0, drop)]),
    continuation: pair.continuation.subarray(drop),
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
