// The zod schemas reject every invalid manifest of the shared list, naming the field, and
// accept the valid ones with defaults filled: the same list the API server must reject.
import { test } from "node:test";
import assert from "node:assert/strict";
import { describeIssues } from "../../crds/manifest.ts";
import { kindInfo, type KindName } from "../../crds/kinds.ts";
import { cronPattern, durationSeconds } from "../../crds/schedule.ts";
import { evalJob } from "../../crds/evaljob.ts";
import { evalSweep } from "../../crds/evalsweep.ts";
import { evalJobObject, evalSweepObject, invalidCases, trainingJobObject } from "./cases.ts";

test("the valid objects of each kind parse, with defaults filled", () => {
  const ej = evalJob.parse(evalJobObject());
  assert.equal(ej.spec.checkpoint.format, "herd");
  assert.equal(ej.spec.tasks[0]!.numFewShot, 0);
  const es = evalSweep.parse(evalSweepObject());
  assert.deepEqual(
    [es.spec.overlapPolicy, es.spec.catchupWindow, es.spec.historyLimit],
    ["Skip", "10m", 100],
  );
  assert.equal(es.spec.checkpoints, "latest");
  const tj = kindInfo("TrainingJob").schema.safeParse(trainingJobObject());
  assert.ok(tj.success, tj.success ? "" : describeIssues(tj.error));
});

const creationCases = invalidCases.filter((c) => !c.update);

test(`zod rejects all ${creationCases.length} invalid manifests, naming the field`, () => {
  assert.ok(creationCases.length >= 25);
  for (const c of creationCases) {
    const obj = c.make();
    const result = kindInfo(obj.kind as KindName).schema.safeParse(obj);
    assert.equal(result.success, false, `${c.name}: accepted`);
    if (!result.success) assert.match(describeIssues(result.error), c.field, c.name);
  }
});

test("cron expressions: valid ones pass, out-of-range fields fail", () => {
  for (const ok of [
    "0 */6 * * *",
    "@daily",
    "15,45 9-17 * JAN-MAR MON-FRI",
    "0 0 1 1 *",
    "59 23 31 12 7",
  ])
    assert.match(ok, cronPattern, ok);
  for (const bad of [
    "60 * * * *",
    "* 24 * * *",
    "* * 0 * *",
    "* * * 13 *",
    "* * * * 8",
    "*/0 * * * *",
    "@every 5m",
  ])
    assert.doesNotMatch(bad, cronPattern, bad);
});

test("durations parse to seconds", () => {
  assert.equal(durationSeconds("1h30m"), 5400);
  assert.equal(durationSeconds("45s"), 45);
  assert.ok(Number.isNaN(durationSeconds("")));
  assert.ok(Number.isNaN(durationSeconds("1d")));
});
