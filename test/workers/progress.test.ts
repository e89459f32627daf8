// Progress from a trainer's JSON log (workers/activities/progress.ts): what the watch hands
// the workflow.
import assert from "node:assert/strict";
import { test } from "node:test";
import { isNewer, progressOfLog } from "../../workers/activities/progress.ts";

const line = (o: Record<string, unknown>) => JSON.stringify({ time: "t", ...o });

test("the newest step and checkpoint of a log, with the oldest step's time; other output ignored", () => {
  const log = [
    "herd train: starting",
    line({ event: "step", step: 1, loss: 10.4, lr: 0.001, tokensPerSecond: 900, time: "t0" }),
    line({
      event: "checkpoint",
      msg: "checkpoint written",
      step: 1,
      path: "s3://b/j/step-1",
      time: "t1",
    }),
    "{ not json",
    line({ event: "step", step: 2, loss: 9.9, lr: 0.002, tokensPerSecond: 1000, time: "t2" }),
    line({ event: "info", msg: "eval", step: 2 }),
    "",
  ].join("\n");
  assert.deepEqual(progressOfLog(log), {
    first: { step: 1, time: "t0" },
    step: 2,
    time: "t2",
    loss: 9.9,
    learningRate: 0.002,
    tokensPerSecond: 1000,
    checkpoint: { step: 1, uri: "s3://b/j/step-1", time: "t1" },
  });
});

test("a log with no step says nothing; a checkpoint alone gives its step", () => {
  assert.equal(progressOfLog("herd trainer pod: HERD_TRAINING_JOB is not set\n"), undefined);
  assert.deepEqual(progressOfLog(line({ event: "checkpoint", step: 40, path: "/c", time: "t" })), {
    step: 40,
    checkpoint: { step: 40, uri: "/c", time: "t" },
  });
});

test("newer means a later step or a later checkpoint", () => {
  const told = { step: 10, checkpoint: { step: 5, uri: "u", time: "t" } };
  assert.equal(isNewer({ step: 10, checkpoint: told.checkpoint }, told), false);
  assert.equal(isNewer({ step: 11 }, told), true);
  assert.equal(isNewer({ step: 10, checkpoint: { step: 10, uri: "u", time: "t" } }, told), true);
  assert.equal(isNewer({ step: 3 }, undefined), true);
});
