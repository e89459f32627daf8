// The report's data from a real run: the trainer's metrics.jsonl (exactly once per step across
// a crash and a resume), checkpoint tokens, and eval results placed at their checkpoints'
// tokens. Then the gathering rules on hand-made folders: duplicates, pruned checkpoints,
// torn and malformed lines.
import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ResultsFile } from "../../workers/eval/run.ts";
import { localCheckpointFolder } from "../../workers/checkpoint-folder.ts";
import {
  gatherReport,
  parseMetrics,
  ReportError,
  type CheckpointFiles,
} from "../../workers/report/gather.ts";
import { lossForPage } from "../../workers/report/render.ts";
import { evaluate, tokensPerStep, train, trainingJob } from "./fixture.ts";

const work = mkdtempSync(path.join(tmpdir(), "herd-report-gather-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

test("metrics.jsonl has each step once after a crash and a resume, with the straight run's losses", () => {
  const job = trainingJob(work);
  const straight = train(job, 12, path.join(work, "straight"));
  const run = path.join(work, "run");
  train(job, 8); // checkpoint at step 8
  // What a run killed after step 10 leaves: lines for steps the checkpoint does not hold.
  for (const step of [9, 10])
    appendFileSync(
      path.join(run, "metrics.jsonl"),
      JSON.stringify({
        step,
        tokens: step * tokensPerStep,
        loss: 99,
        lr: 0,
        gradNorm: 0,
        tokensPerSecond: 1,
        time: "",
      }) + "\n",
    );
  train(job, 12); // resumes from step 8
  const lines = readFileSync(path.join(run, "metrics.jsonl"), "utf8").trim().split("\n");
  const rows = lines.map((l) => JSON.parse(l));
  assert.deepEqual(
    rows.map((r) => r.step),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
  );
  assert.deepEqual(
    rows.map((r) => r.tokens),
    rows.map((r) => r.step * tokensPerStep),
  );
  assert.deepEqual(
    rows.map((r) => r.loss),
    straight.map((s) => s.loss),
  );
  for (const r of rows) {
    assert.ok(
      r.lr > 0 && r.tokensPerSecond > 0 && !Number.isNaN(Date.parse(r.time)),
      JSON.stringify(r),
    );
  }
});

test("gatherReport places each eval metric at its checkpoint's tokens", async () => {
  const run = path.join(work, "run");
  const early = await evaluate(run, 4, "early");
  const late = await evaluate(run, 12, "late");
  const data = await gatherReport("report-tiny", localCheckpointFolder(run));
  assert.equal(data.loss.length, 12);
  assert.deepEqual(
    data.checkpoints.map((c) => [c.step, c.tokens]),
    [4, 8, 12].map((s) => [s, s * tokensPerStep]),
  );
  const names = data.evals.map((s) => `${s.task}/${s.metric}`);
  const expected = late.tasks.flatMap((t) => t.metrics.map((m) => `${t.task}/${m.name}`));
  assert.deepEqual(names.sort(), expected.sort());
  assert.ok(names.includes("piqa/acc_norm") && names.includes("tinystories/perplexity"));
  for (const s of data.evals) {
    assert.deepEqual(
      s.points.map((p) => [p.step, p.tokens]),
      [
        [4, 4 * tokensPerStep],
        [12, 12 * tokensPerStep],
      ],
    );
    const value = (r: ResultsFile) =>
      r.tasks.find((t) => t.task === s.task)!.metrics.find((m) => m.name === s.metric)!;
    assert.equal(s.points[0]!.value, value(early).value);
    assert.equal(s.points[1]!.value, value(late).value);
    assert.equal(s.points[1]!.stderr, value(late).stderr);
    assert.equal(s.points[1]!.file, "step-000000012.eval-late.json");
  }
  const acc = data.evals.find((s) => s.task === "piqa" && s.metric === "acc")!;
  assert.equal(typeof acc.points[0]!.stderr, "number");
  assert.equal(acc.points[0]!.examples, 8);
});

// A checkpoint folder in memory: the gathering rules without training.
function memoryFiles(files: Record<string, string>): CheckpointFiles {
  return {
    location: "mem",
    list: async () => [...new Set(Object.keys(files).map((f) => f.split("/")[0]!))],
    read: async (name) => (name in files ? Buffer.from(files[name]!) : undefined),
  };
}

const results = (job: string, step: number, acc: number, completion: string, tokensSeen?: number) =>
  JSON.stringify({
    format: "herd-eval-results",
    version: 1,
    job,
    checkpoint: { uri: `/x/step-${step}`, format: "herd", step, tokensSeen },
    model: {},
    tokenizer: "bytes",
    tasks: [
      {
        task: "piqa",
        type: "multipleChoice",
        uri: "p",
        examples: 4,
        numFewShot: 0,
        metrics: [{ name: "acc", value: acc, stderr: 0.1 }],
        seconds: 1,
      },
    ],
    startTime: completion,
    completionTime: completion,
  });

test("the newest evaluation of a checkpoint counts; pruned checkpoints take tokens from the results or the log", async () => {
  const line = (step: number) =>
    JSON.stringify({ step, tokens: step * 100, loss: 3, lr: 1e-3 }) + "\n";
  const data = await gatherReport(
    "mem",
    memoryFiles({
      "metrics.jsonl": line(1) + line(2) + line(3),
      "step-000000001.eval-a.json": results("a", 1, 0.25, "2026-01-01T00:00:00Z", 111),
      "step-000000002.eval-a.json": results("a", 2, 0.5, "2026-01-02T00:00:00Z"),
      "step-000000002.eval-b.json": results("b", 2, 0.75, "2026-01-03T00:00:00Z"),
      "step-000000003.eval-a.json": results("a", 3, 0.4, "2026-01-05T00:00:00Z"),
      "step-000000003.eval-b.json": results("b", 3, 0.6, "2026-01-04T00:00:00Z"),
      "step-000000005.eval-a.json": results("a", 5, 0.9, "2026-01-06T00:00:00Z"),
    }),
  );
  const [acc] = data.evals;
  assert.deepEqual(
    acc!.points.map((p) => [p.step, p.tokens, p.value]),
    [
      [1, 111, 0.25],
      [2, 200, 0.75],
      [3, 300, 0.4],
    ],
  );
  assert.match(
    data.notes.join("\n"),
    /step-000000005\.eval-a\.json: step 5's token count is unknown/,
  );
});

test("metrics.jsonl: a torn last line is skipped, a bad line is an error naming it", () => {
  const ok = JSON.stringify({ step: 1, tokens: 10, loss: 2, lr: 1 });
  assert.equal(parseMetrics(`${ok}\n{"step": 2, "tok`, "m").length, 1);
  assert.throws(() => parseMetrics(`${ok}\n{"step": 2}\n`, "run/metrics.jsonl"), {
    message: "run/metrics.jsonl:2: tokens must be a non-negative integer",
  });
  assert.throws(() => parseMetrics(`nope\n${ok}\n`, "m"), /^ReportError: m:1: not valid JSON/);
});

test("bad results files and empty folders are errors that name the file", async () => {
  await assert.rejects(
    gatherReport("x", memoryFiles({ "step-000000001.eval-a.json": '{"format": "other"}' })),
    (err: Error) =>
      err instanceof ReportError &&
      err.message === "mem/step-000000001.eval-a.json: not a herd-eval-results version 1 file",
  );
  await assert.rejects(
    gatherReport("x", memoryFiles({ "notes.txt": "hi" })),
    /mem: no checkpoints/,
  );
  await assert.rejects(
    gatherReport("x", localCheckpointFolder(path.join(work, "missing"))),
    new RegExp(`checkpoint folder ${path.join(work, "missing")} does not exist`),
  );
});

test("long loss curves are drawn as means of consecutive steps", () => {
  const loss = Array.from({ length: 10 }, (_, i) => ({
    step: i + 1,
    tokens: (i + 1) * 10,
    loss: i,
    lr: 1,
  }));
  const { points, meanOf } = lossForPage(loss, 4);
  assert.equal(meanOf, 3);
  assert.deepEqual(
    points.map((p) => [p.step, p.loss]),
    [
      [3, 1],
      [6, 4],
      [9, 7],
      [10, 9],
    ],
  );
});
