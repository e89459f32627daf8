// A week-long training job on Temporal's time-skipping test server (test/workflows/long-run.ts):
// its pods train a step a second for 7 simulated days and report progress, two preemptions
// end attempts, and a spec change arrives in the middle of an attempt. Every run of the
// workflow stays far below Temporal's history limits, the job Succeeds at the last step,
// and the spec change survives the runs that continue as new before it applies.
import assert from "node:assert/strict";
import { test } from "node:test";
import { simulateLongRun } from "./long-run.ts";

const eventLimit = 10_000;
const byteLimit = 10 * 1024 * 1024;

test(
  "a 7-day job: bounded history per run, Succeeded, no signal lost",
  { timeout: 900_000 },
  async () => {
    const r = await simulateLongRun({ days: 7, preemptAtHours: [50, 120], specChangeAtHour: 20 });
    const steps = 7 * 86_400;
    assert.equal(r.state.phase, "Succeeded", JSON.stringify(r.status.message));
    assert.equal(r.status.step, steps);
    assert.deepEqual(
      r.status.lastCheckpoint && (r.status.lastCheckpoint as { step: number }).step,
      steps,
    );
    assert.equal(r.attempts, 3);
    assert.equal(r.status.preemptions, 2);
    // The spec change of hour 20 applied when the attempt it arrived in ended (hour 50), runs later.
    assert.equal(r.state.observedGeneration, 2);
    // Many runs, each bounded: the job continued as new inside its attempts.
    assert.ok(r.runs.length > r.attempts, `${r.runs.length} runs for ${r.attempts} attempts`);
    for (const run of r.runs) {
      assert.ok(run.events < eventLimit, `run ${run.runId}: ${run.events} events`);
      assert.ok(run.bytes < byteLimit, `run ${run.runId}: ${run.bytes} bytes`);
    }
    // Progress reached status at a bounded rate: at most one write a minute after the first.
    assert.ok(r.statusWrites < (7 * 86_400) / 60 + 500, `${r.statusWrites} status writes`);
  },
);
