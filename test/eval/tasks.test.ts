// Tasks and the local runner on a tiny random model with the bytes tokenizer: metrics against
// their definitions, batching against one-at-a-time scoring, the results file, and the CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ModelConfig } from "../../crds/model.ts";
import { randomMatrix } from "../../native/reference.ts";
import { tensorShapes, writeHerd } from "../../workers/model/formats.ts";
import { openModel } from "../../workers/eval/open.ts";
import { runEvalLocal, type ResultsFile } from "../../workers/eval/run.ts";
import { evalPerplexity, fewShotIndices, meanStderr, TaskError } from "../../workers/eval/tasks.ts";
import { evalMultipleChoice, promptFor } from "../../workers/eval/choices.ts";
import { readMultipleChoice } from "../../workers/eval/documents.ts";
import { registry } from "../../workers/eval/registry.ts";

const root = path.resolve(import.meta.dirname, "../..");
const config: ModelConfig = {
  dim: 32,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  ffnHidden: 64,
  vocabSize: 256,
  maxSeqLen: 128,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedEmbeddings: true,
};

function tinyCheckpoint(dir: string): string {
  const tensors: Record<string, Float32Array> = {};
  let seed = 3;
  for (const t of tensorShapes(config)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    tensors[t.name] =
      t.shape.length === 1
        ? new Float32Array(n).fill(1)
        : randomMatrix(n, seed++).map((x) => x * 0.3);
  }
  writeHerd(path.join(dir, "run"), { config, tensors, format: "herd", step: 12, tokensSeen: 3456 });
  return path.join(dir, "run");
}

const items = [
  {
    context: "The cat sat on the",
    choices: ["mat", "moon", "a very long answer indeed"],
    label: 0,
  },
  { context: "Question: what is 2+2?\nAnswer:", choices: ["4", "five"], label: 0 },
  { context: "Roses are", choices: ["red", "blue"], label: 1 },
  { context: "Once upon a", choices: ["time", "hill", "tree"], label: 0 },
  { context: "ends with space ", choices: ["x", "yy"], label: 1 },
];

test("mean and standard error are lm-evaluation-harness's (sample std / √n)", () => {
  const xs = [1, 0, 1, 1, 0, 1];
  const mean = 4 / 6;
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / 5);
  const r = meanStderr(xs);
  assert.ok(Math.abs(r.value - mean) < 1e-12);
  assert.ok(Math.abs(r.stderr - sd / Math.sqrt(6)) < 1e-12);
});

test("few-shot examples: fixed by (seed, item), never the item itself, joined by blank lines", () => {
  const a = fewShotIndices(10, 3, 4, 7);
  assert.deepEqual(a, fewShotIndices(10, 3, 4, 7));
  assert.notDeepEqual(a, fewShotIndices(10, 3, 4, 8));
  assert.equal(new Set(a).size, 4);
  assert.ok(!a.includes(3));
  const p = promptFor(items, 2, 2, 1);
  const shots = fewShotIndices(items.length, 2, 2, 1).map(
    (j) => items[j]!.context + " " + items[j]!.choices[items[j]!.label],
  );
  assert.equal(p, [...shots, "Roses are"].join("\n\n"));
  assert.throws(() => fewShotIndices(3, 0, 3, 1), TaskError);
});

test("multiple choice: batched scoring equals one-at-a-time; acc and acc_norm follow their definitions", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-tasks-"));
  try {
    const m = openModel({ path: tinyCheckpoint(dir), tokenizer: { type: "bytes" }, threads: 2 });
    const out = await evalMultipleChoice(m, items, { numFewShot: 0, seed: 1, batchSize: 2 });
    let acc = 0;
    let accNorm = 0;
    for (const [i, item] of items.entries()) {
      const ctx = item.context.trimEnd();
      const trailing = item.context.slice(ctx.length);
      const ll: number[] = [];
      for (const choice of item.choices) {
        const [r] = await m.inference.score([
          {
            context: Int32Array.from(Buffer.from(ctx)),
            continuation: Int32Array.from(Buffer.from(trailing + " " + choice)),
          },
        ]);
        ll.push(r!.logprob);
      }
      const best = ll.indexOf(Math.max(...ll));
      const norm = ll.map((x, c) => x / item.choices[c]!.length);
      const bestNorm = norm.indexOf(Math.max(...norm));
      assert.deepEqual(
        { acc: out.predictions![i]!.acc, accNorm: out.predictions![i]!.accNorm },
        { acc: best, accNorm: bestNorm },
      );
      acc += best === item.label ? 1 : 0;
      accNorm += bestNorm === item.label ? 1 : 0;
    }
    const metric = (n: string) => out.metrics.find((x) => x.name === n)!;
    assert.equal(metric("acc").value, acc / items.length);
    assert.equal(metric("acc_norm").value, accNorm / items.length);
    // perplexity: per-token and per-byte views of one likelihood
    const text = "It was the best of times, it was the worst of times. ".repeat(6);
    const p = await evalPerplexity(m, text, { window: 64, stride: 32 });
    assert.equal(p.tokens, Buffer.byteLength(text) - 1);
    const get = (n: string) => p.metrics.find((x) => x.name === n)!.value;
    assert.ok(Math.abs(Math.log(get("perplexity")) * p.tokens - p.nll) < 1e-6);
    assert.ok(Math.abs(get("bits_per_byte") - p.nll / p.bytes / Math.LN2) < 1e-12);
    assert.ok(Math.abs(Math.log(get("byte_perplexity")) * p.bytes - p.nll) < 1e-6);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("multiple-choice files are checked line by line", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-tasks-"));
  try {
    const f = path.join(dir, "t.jsonl");
    writeFileSync(
      f,
      JSON.stringify(items[0]) +
        "\n" +
        JSON.stringify({ context: "x", choices: ["a", "b"], label: 2 }) +
        "\n",
    );
    assert.throws(() => readMultipleChoice(f), /t.jsonl:2: label must be an index into choices/);
    assert.equal(readMultipleChoice(f, 1).length, 1);
    writeFileSync(f, "{nope\n");
    assert.throws(() => readMultipleChoice(f), /t.jsonl:1: not valid JSON/);
    writeFileSync(f, JSON.stringify({ context: "x", choices: ["a"], label: 0 }));
    assert.throws(() => readMultipleChoice(f), /choices must be an array of at least two strings/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("herd eval --local runs an EvalJob manifest and writes the results file; herd generate prints text", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-evaljob-"));
  try {
    tinyCheckpoint(dir);
    writeFileSync(
      path.join(dir, "mc.jsonl"),
      items.map((x) => JSON.stringify(x)).join("\n") + "\n",
    );
    writeFileSync(path.join(dir, "text.txt"), "line one of some text\nline two\nline three\n");
    writeFileSync(
      path.join(dir, "job.yaml"),
      `apiVersion: herd.dev/v1alpha1
kind: EvalJob
metadata: { name: tiny }
spec:
  checkpoint: { uri: run, format: herd }
  tokenizer: { type: bytes }
  tasks:
    - { name: mc, type: multipleChoice, uri: mc.jsonl, numFewShot: 1 }
    - { name: text, type: perplexity, uri: text.txt, limit: 2 }
  batchSize: 3
`,
    );
    const herd = (...args: string[]) =>
      spawnSync(process.execPath, [path.join(root, "bin/herd.mjs"), ...args], { encoding: "utf8" });
    const r = herd("eval", "--local", "-f", path.join(dir, "job.yaml"), "--threads", "1");
    assert.equal(r.status, 0, r.stderr);
    const results = JSON.parse(
      readFileSync(path.join(dir, "run.eval-tiny.json"), "utf8"),
    ) as ResultsFile;
    assert.equal(results.checkpoint.step, 12);
    assert.equal(results.checkpoint.tokensSeen, 3456);
    assert.deepEqual(
      results.tasks.map((t) => [t.task, t.examples, t.numFewShot]),
      [
        ["mc", 5, 1],
        ["text", 1, 0],
      ],
    );
    assert.deepEqual(
      results.tasks[0]!.metrics.map((x) => x.name),
      ["acc", "acc_norm", "acc_per_token"],
    );
    assert.equal(results.tasks[1]!.bytes, "line one of some text\nline two".length);
    assert.equal(herd("eval", "-f", "x.yaml").status, 64);
    const bad = herd("eval", "--local", "-f", path.join(dir, "missing.yaml"));
    assert.equal(bad.status, 64);
    assert.match(bad.stderr, /missing.yaml/);
    const g = herd(
      "generate",
      "--checkpoint",
      path.join(dir, "run"),
      "--tokenizer",
      "bytes",
      "--prompt",
      "Once",
      "--max-tokens",
      "5",
      "--threads",
      "1",
    );
    assert.equal(g.status, 0, g.stderr);
    assert.ok(g.stdout.startsWith("Once"));
    assert.match(g.stderr, /5 tokens in/);
    const c = herd(
      "convert",
      "--from",
      path.join(dir, "run"),
      "--to",
      path.join(dir, "m.bin"),
      "--to-format",
      "llama2c",
    );
    assert.equal(c.status, 0, c.stderr);
    const g2 = herd(
      "generate",
      "--checkpoint",
      path.join(dir, "m.bin"),
      "--tokenizer",
      "bytes",
      "--prompt",
      "Once",
      "--max-tokens",
      "5",
      "--threads",
      "1",
    );
    assert.equal(g2.stdout, g.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("runEvalLocal rejects a TrainingJob reference with a clear message", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-evaljob-"));
  try {
    writeFileSync(
      path.join(dir, "job.yaml"),
      `apiVersion: herd.dev/v1alpha1
kind: EvalJob
metadata: { name: tj }
spec:
  checkpoint: { trainingJob: { name: foo } }
  tasks: [{ name: mc, type: multipleChoice, uri: mc.jsonl }]
`,
    );
    await assert.rejects(
      runEvalLocal({ manifest: path.join(dir, "job.yaml") }),
      /for --local give spec.checkpoint.uri/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("runEvalLocal: registry tasks and groups need no uri; custom tasks come inline or from a file", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-evaljob-"));
  try {
    tinyCheckpoint(dir);
    const rows = [
      { q: "Sky is", opts: ["blue", "green"], gold: "A", kind: "x" },
      { q: "Grass is", opts: ["red", "green"], gold: "B", kind: "y" },
      { q: "Snow is", opts: ["white", "black"], gold: "A", kind: "x" },
    ];
    writeFileSync(path.join(dir, "rows.jsonl"), rows.map((r) => JSON.stringify(r)).join("\n"));
    writeFileSync(
      path.join(dir, "colors.yaml"),
      "data: rows.jsonl\ncontext: 'Q: {{q}}\\nA:'\nchoices: ['{{opts}}']\nlabel: '{{gold}}'\nlabelIn: [A, B]\ngroup: '{{kind}}'\nmetrics: [acc]\n",
    );
    writeFileSync(
      path.join(dir, "job.yaml"),
      `apiVersion: herd.dev/v1alpha1
kind: EvalJob
metadata: { name: suite }
spec:
  checkpoint: { uri: run, format: herd }
  tokenizer: { type: bytes }
  tasks:
    - { name: common-sense, limit: 2 }
    - { name: mmlu, limit: 1, numFewShot: 1 }
    - name: inline
      uri: rows.jsonl
      numFewShot: 1
      definition: { context: "{{q}}", choices: ["{{opts}}"], label: "{{gold}}", labelIn: [A, B] }
    - { name: fromfile, definitionUri: colors.yaml }
    - name: qa
      uri: rows.jsonl
      definition:
        { scoring: generate, context: "{{q}}", answers: "{{opts}}", maxNewTokens: 4, until: ["."], metrics: [exact_match, f1] }
  batchSize: 4
`,
    );
    const r = await runEvalLocal({ manifest: path.join(dir, "job.yaml"), threads: 1 });
    const byName = Object.fromEntries(r.tasks.map((t) => [t.task, t]));
    assert.deepEqual(Object.keys(byName), [
      ...registry().groups["common-sense"]!,
      "mmlu",
      "inline",
      "fromfile",
      "qa",
    ]);
    // a generate task on the engine: an output per question, at most one character per token
    const qa = byName.qa!;
    assert.deepEqual(
      qa.metrics.map((x) => x.name),
      ["exact_match", "f1"],
    );
    assert.equal(qa.generations!.length, 3);
    for (const g of qa.generations!)
      assert.ok(Array.from(g.output).length <= 4 && !g.output.includes("."), g.output);
    assert.deepEqual(
      byName.boolq!.metrics.map((m) => m.name),
      ["acc", "acc_uncond"],
    );
    assert.equal(byName.piqa!.examples, 2);
    assert.equal(byName.mmlu!.examples, 57);
    assert.equal(byName.mmlu!.groups!.length, 57);
    assert.equal(byName.mmlu!.numFewShot, 1);
    // the macro average is the mean of the subjects' accuracies
    const mean = byName.mmlu!.groups!.reduce((a, g) => a + g.metrics[0]!.value, 0) / 57;
    assert.ok(Math.abs(byName.mmlu!.metrics[0]!.value - mean) < 1e-12);
    assert.deepEqual(
      [byName.inline!.examples, byName.inline!.metrics.map((m) => m.name)],
      [3, ["acc", "acc_norm"]],
    );
    assert.deepEqual(
      byName.fromfile!.groups!.map((g) => [g.group, g.examples]),
      [
        ["x", 2],
        ["y", 1],
      ],
    );
    assert.ok(byName.arc_easy!.uri.endsWith("data/eval/arc-easy-test.jsonl.gz"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
