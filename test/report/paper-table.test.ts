// The LLaMA paper's table: the headline metric per task, paper order, percent ± stderr; from a
// run's eval series (a row per step) and from results files (`herd report --results`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ResultsFile } from "../../workers/eval/run.ts";
import {
  checkpointTable,
  headlineMetric,
  paperTableHtml,
  resultsTable,
} from "../../workers/report/paper-table.ts";

const root = path.resolve(import.meta.dirname, "../..");

function results(job: string, tasks: [string, number, [string, number, number?][]][]): ResultsFile {
  return {
    format: "herd-eval-results",
    version: 1,
    job,
    checkpoint: { uri: `/models/${job}.gguf`, format: "gguf" },
    model: {},
    tokenizer: "bpe",
    tasks: tasks.map(([task, numFewShot, metrics]) => ({
      task,
      type: "multipleChoice",
      uri: `${task}.jsonl`,
      examples: 10,
      numFewShot,
      metrics: metrics.map(([name, value, stderr]) => ({
        name: name as ResultsFile["tasks"][0]["metrics"][0]["name"],
        value,
        ...(stderr !== undefined && { stderr }),
      })),
      seconds: 1,
    })),
    startTime: "",
    completionTime: "",
  };
}

test("the headline metric: the paper's normalisation, else acc_norm, else the first", () => {
  assert.equal(headlineMetric(["acc", "acc_norm", "acc_uncond"]), "acc_uncond");
  assert.equal(headlineMetric(["acc", "acc_norm"]), "acc_norm");
  assert.equal(headlineMetric(["pct_stereotype", "likelihood_diff"]), "pct_stereotype");
});

test("results files side by side: paper order, percent ± stderr, empty where a model lacks a task", () => {
  const a = results("small", [
    ["mmlu", 5, [["acc", 0.3012, 0.0123]]],
    [
      "piqa",
      0,
      [
        ["acc", 0.6, 0.01],
        ["acc_norm", 0.655, 0.011],
      ],
    ],
    ["my_task", 0, [["likelihood_diff", 3.14159]]],
    [
      "boolq",
      0,
      [
        ["acc", 0.5],
        ["acc_uncond", 0.62, 0.008],
      ],
    ],
  ]);
  const b = results("big<1>", [["piqa", 0, [["acc_norm", 0.8]]]]);
  const t = resultsTable([
    { label: "small", results: a },
    { label: "big<1>", results: b },
  ]);
  assert.deepEqual(
    t.columns.map((c) => [c.task, c.metric]),
    [
      ["boolq", "acc_uncond"],
      ["piqa", "acc_norm"],
      ["mmlu", "acc"],
      ["my_task", "likelihood_diff"],
    ],
  );
  const html = paperTableHtml(t);
  assert.match(
    html,
    /<th>small<\/th><td>62\.0 ± 0\.8<\/td><td>65\.5 ± 1\.1<\/td><td>30\.1 ± 1\.2<\/td><td>3\.142<\/td><\/tr>/,
  );
  assert.match(html, /<th>big&lt;1&gt;<\/th><td><\/td><td>80\.0<\/td><td><\/td><td><\/td>/);
  assert.match(html, /mmlu<br><small>acc, 5-shot<\/small>/);
});

test("a run's table: a row per evaluated step", () => {
  const point = (step: number, value: number) => ({
    step,
    tokens: step * 10,
    value,
    examples: 5,
    file: "",
  });
  const t = checkpointTable([
    { task: "hellaswag", numFewShot: 0, metric: "acc", points: [point(10, 0.2)] },
    {
      task: "hellaswag",
      numFewShot: 0,
      metric: "acc_norm",
      points: [point(10, 0.25), point(20, 0.3)],
    },
    { task: "boolq", numFewShot: 0, metric: "acc", points: [point(20, 0.55)] },
  ]);
  assert.deepEqual(
    t.columns.map((c) => `${c.task} ${c.metric}`),
    ["boolq acc", "hellaswag acc_norm"],
  );
  assert.deepEqual(
    t.rows.map((r) => [r.label, r.cells.map((c) => c?.value)]),
    [
      ["step 10", [undefined, 0.25]],
      ["step 20", [0.55, 0.3]],
    ],
  );
});

test("herd report --results writes the table page; a file that is not a results file is refused", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-paper-"));
  try {
    const f = path.join(dir, "a.json");
    writeFileSync(f, JSON.stringify(results("small", [["piqa", 0, [["acc_norm", 0.655, 0.011]]]])));
    const herd = (...args: string[]) =>
      spawnSync(process.execPath, [path.join(root, "bin/herd.mjs"), "report", ...args], {
        encoding: "utf8",
      });
    const out = path.join(dir, "t.html");
    const r = herd("--results", f, "--results", f, "-o", out);
    assert.equal(r.status, 0, r.stderr);
    const page = readFileSync(out, "utf8");
    assert.equal(page.match(/<td>65\.5 ± 1\.1<\/td>/g)?.length, 2);
    writeFileSync(path.join(dir, "b.json"), "{}");
    const bad = herd("--results", path.join(dir, "b.json"));
    assert.equal(bad.status, 64);
    assert.match(bad.stderr, /b\.json is not a herd results file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
