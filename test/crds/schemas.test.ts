// The zod schemas reject every invalid manifest of the shared list, naming the field, and
// accept the valid ones with defaults filled: the same list the API server must reject.
import { test } from "node:test";
import assert from "node:assert/strict";
import { describeIssues, parseHerdObject } from "../../crds/manifest.ts";
import { kindInfo, type KindName } from "../../crds/kinds.ts";
import { cronPattern, durationSeconds } from "../../crds/schedule.ts";
import { evalJob } from "../../crds/evaljob.ts";
import { evalSweep } from "../../crds/evalsweep.ts";
import { evalJobObject, evalSweepObject, invalidCases, trainingJobObject } from "./cases.ts";

test("the valid objects of each kind parse, with defaults filled", () => {
  const ej = evalJob.parse(evalJobObject());
  assert.equal(ej.spec.checkpoint.format, "herd");
  assert.equal(ej.spec.tasks[0]!.seed, 1234);
  assert.equal(ej.spec.tasks[0]!.numFewShot, undefined, "the task's own default applies");
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

test("parseHerdObject picks the schema by kind and names an unknown kind", () => {
  const yaml = (o: unknown) => JSON.stringify(o); // JSON is YAML
  assert.equal(parseHerdObject(yaml(evalSweepObject()), "s.yaml").kind, "EvalSweep");
  assert.equal(parseHerdObject(yaml(evalJobObject()), "e.yaml").kind, "EvalJob");
  assert.equal(parseHerdObject(yaml(trainingJobObject()), "t.yaml").kind, "TrainingJob");
  assert.throws(
    () => parseHerdObject(yaml({ ...evalJobObject(), kind: "Pod" }), "p.yaml"),
    /p\.yaml: kind must be TrainingJob, EvalJob or EvalSweep, got "Pod"/,
  );
  const bad = evalSweepObject();
  (bad.spec.schedule as { cron: string }).cron = "61 * * * *";
  assert.throws(
    () => parseHerdObject(yaml(bad), "bad.yaml"),
    /bad\.yaml: invalid manifest\nspec\.schedule\.cron/,
  );
});

test("a field the schema does not know is reported by its path, and nothing else is", () => {
  const job = trainingJobObject() as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  job.spec.retry = { preemptionLimit: 100 }; // the field is preemptionBudget
  job.spec.data.sources[0].wieght = 2;
  job.metadata.labels = { team: "ml" }; // metadata keeps what Kubernetes has
  const heard: string[] = [];
  const o = parseHerdObject(JSON.stringify(job), "t.yaml", (m) => heard.push(m));
  assert.equal(o.kind, "TrainingJob");
  assert.deepEqual(heard, [
    "t.yaml: unknown field spec.data.sources[0].wieght is ignored (docs/api.md lists the fields)",
    "t.yaml: unknown field spec.retry.preemptionLimit is ignored (docs/api.md lists the fields)",
  ]);
  heard.length = 0;
  parseHerdObject(JSON.stringify(trainingJobObject()), "t.yaml", (m) => heard.push(m));
  assert.deepEqual(heard, []);
});
