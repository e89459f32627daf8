// Every workflow type replays the history recorded from a real run of it
// (test/workflows/histories/, made by record-histories.ts): a change to workflow code that
// would break workflows already running (another command, order or activity where the
// history has one) fails here, before it reaches a cluster. Such a change needs `patched()`
// or a new worker version (docs/operations.md, "Upgrading herd while jobs run").
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { DeterminismViolationError } from "@temporalio/workflow";
import { Worker } from "@temporalio/worker";
import { workflowsPath } from "../../workers/main.ts";
import * as workflows from "../../workflows/index.ts";

const dir = path.join(import.meta.dirname, "histories");
const recorded = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .map((f) => ({
    file: f,
    type: f.slice(0, f.indexOf(".")), // <type>.<day recorded>.json
    history: JSON.parse(readFileSync(path.join(dir, f), "utf8")),
  }));

test("every workflow type has a recorded history", () => {
  assert.deepEqual([...new Set(recorded.map((r) => r.type))].sort(), Object.keys(workflows).sort());
  for (const r of recorded)
    assert.ok(
      (r.history as { events: unknown[] }).events.length > 10,
      `${r.file}: a short history`,
    );
});

test("the workflows replay every recorded history", async () => {
  const histories = recorded.map((r) => ({ workflowId: r.file, history: r.history }));
  const results = Worker.runReplayHistories(
    { workflowsPath, bundlerOptions: { ignoreModules: [] } },
    histories,
  );
  let replayed = 0;
  for await (const r of results) {
    assert.equal(r.error, undefined, `${r.workflowId}: ${String(r.error)}`);
    replayed++;
  }
  assert.equal(replayed, recorded.length);
});

test("a workflow that issues other commands fails the replay", async () => {
  const training = recorded.find((r) => r.type === "trainingJobWorkflow")!;
  await assert.rejects(
    Worker.runReplayHistory(
      { workflowsPath: path.join(import.meta.dirname, "changed-workflow.ts") },
      training.history,
      "replay-changed",
    ),
    DeterminismViolationError,
  );
});
