// What an evaluation reads from checkpoint storage (workers/eval/checkpoints.ts) and the
// pieces of the sweep that need no cluster: which checkpoints are durable, which step an
// EvalJob gets, the results-file record, the bounded history and the schedule's timing.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { saveCheckpoint, stepName } from "../../workers/trainer/checkpoint.ts";
import {
  durableCheckpoints,
  hasResults,
  resolveTrainingCheckpoint,
  resultsUriOf,
} from "../../workers/eval/checkpoints.ts";
import { scheduleSpecOf } from "../../workers/activities/sweep.ts";
import { relativePaths, unknownTasks } from "../../workers/activities/eval.ts";
import { evalJobSpec } from "../../crds/evaljob.ts";
import { mergeHistory } from "../../workflows/evalsweep.ts";
import { evalSweepSpec } from "../../crds/evalsweep.ts";
import type { SweepHistoryEntry } from "../../workflows/eval-types.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "herd-eval-ckpt-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Checkpoints 5, 10 and 15 published; 20 renamed into place but LATEST never moved. */
function layout(name: string): string {
  const d = path.join(dir, name);
  for (const step of [5, 10, 15]) saveCheckpoint(d, step, { "trainer.json": "{}" }, 10);
  mkdirSync(path.join(d, stepName(20)));
  writeFileSync(path.join(d, stepName(20), "manifest.json"), "{}");
  return d;
}

test("durable checkpoints: those LATEST published, oldest first; none without LATEST", async () => {
  const d = layout("durable");
  assert.deepEqual(
    (await durableCheckpoints(d)).map((c) => [c.step, c.uri]),
    [5, 10, 15].map((s) => [s, path.join(d, stepName(s))]),
  );
  assert.deepEqual(await durableCheckpoints(`file://${d}`).then((c) => c.length), 3);
  assert.deepEqual(await durableCheckpoints(path.join(dir, "nothing-here")), []);
});

test("resolving a TrainingJob's checkpoint: latest, a given step, or an error naming it", async () => {
  const d = layout("resolve");
  assert.equal((await resolveTrainingCheckpoint("tj", d)).step, 15);
  assert.equal((await resolveTrainingCheckpoint("tj", d, 10)).uri, path.join(d, stepName(10)));
  await assert.rejects(
    resolveTrainingCheckpoint("tj", d, 20),
    /step 20: TrainingJob tj has no durable checkpoint of that step in .* \(steps there: 5, 10, 15\)/,
  );
  await assert.rejects(
    resolveTrainingCheckpoint("tj", path.join(dir, "empty")),
    /TrainingJob tj has no durable checkpoint yet/,
  );
  await assert.rejects(
    resolveTrainingCheckpoint("tj", "s3://bucket/x"),
    /s3:\/\/bucket\/x: no S3 endpoint and credentials are configured/,
  );
});

test("the results file beside a checkpoint is the record that it was evaluated", async () => {
  const d = layout("results");
  const ckpt = path.join(d, stepName(10));
  assert.equal(resultsUriOf(ckpt + "/", "job"), `${ckpt}.eval-job.json`);
  assert.equal(await hasResults(ckpt, "job"), false);
  writeFileSync(resultsUriOf(ckpt, "job"), "{}");
  assert.equal(await hasResults(ckpt, "job"), true);
  assert.equal(await hasResults(ckpt, "another-job"), false);
});

const entry = (step: number, evalJob = `s-${step}`): SweepHistoryEntry => ({
  step,
  evalJob,
  time: "2026-01-01T00:00:00Z",
  metrics: [],
});

test("sweep history: by step, oldest first, the newest result of a step, at most the limit", () => {
  const h = mergeHistory([entry(10), entry(30)], [entry(20), entry(10, "again")], 10);
  assert.deepEqual(
    h.map((e) => [e.step, e.evalJob]),
    [
      [10, "again"],
      [20, "s-20"],
      [30, "s-30"],
    ],
  );
  assert.deepEqual(
    mergeHistory(h, [entry(40)], 2).map((e) => e.step),
    [30, 40],
  );
});

test("the schedule fires on the spec's cron expression or interval", () => {
  const sweep = (schedule: object) =>
    evalSweepSpec.parse({
      trainingJob: { name: "tj" },
      schedule,
      template: { spec: { tasks: [{ name: "t", type: "perplexity", uri: "/x.txt" }] } },
    });
  assert.deepEqual(scheduleSpecOf(sweep({ cron: "*/30 * * * *" })), {
    cronExpressions: ["*/30 * * * *"],
  });
  assert.deepEqual(scheduleSpecOf(sweep({ interval: "1m30s" })), {
    intervals: [{ every: 90_000 }],
  });
});

test("on the cluster an EvalJob's paths must be absolute: each relative one is named", () => {
  const spec = (checkpoint: string, task: string) =>
    evalJobSpec.parse({
      checkpoint: { uri: checkpoint, format: "gguf" },
      tasks: [{ name: "t", type: "perplexity", uri: task }],
    });
  assert.equal(relativePaths(spec("/m.gguf", "file:///t.txt")), undefined);
  assert.equal(relativePaths(spec("s3://b/m.gguf", "/t.txt")), undefined);
  assert.equal(
    relativePaths(spec("m.gguf", "data/t.txt")),
    "spec.checkpoint.uri: m.gguf, spec.tasks[0].uri: data/t.txt: a relative path; " +
      "on the cluster give an absolute path, file:///… or s3://…",
  );
});

test("an EvalJob naming no data and no registry task fails before any pod, with the registry's names", () => {
  const spec = (tasks: object[]) =>
    evalJobSpec.parse({ checkpoint: { uri: "/m.gguf", format: "gguf" }, tasks });
  assert.equal(
    unknownTasks(
      spec([
        { name: "llama-paper", limit: 10 },
        { name: "wiki", type: "perplexity", uri: "/w.txt" },
      ]),
    ),
    undefined,
  );
  assert.match(
    unknownTasks(spec([{ name: "arc_challenge" }]))!,
    /^spec\.tasks: task arc_challenge: no uri, and herd's registry has no such task or group \(tasks: .*arc_easy.*; groups: .*llama-paper/,
  );
  assert.match(
    unknownTasks(spec([{ name: "common-sense" }, { name: "boolq" }]))!,
    /boolq is listed twice/,
  );
});
