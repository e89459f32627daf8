// The control worker's metrics: every activity call counted by result and timed, the end of
// each watched attempt counted by kind, outcome and reason, and the HTTP endpoints.
import assert from "node:assert/strict";
import { test } from "node:test";
import { instrument, serveWorkerHttp, workerMetrics } from "../../workers/metrics.ts";

test("activity calls are counted by result and timed; watches count how attempts ended", async () => {
  const m = workerMetrics();
  const a = instrument(
    {
      createAttempt: async (n: number) => `pod-${n}`,
      deleteAttempt: async () => {
        throw new Error("API server gone");
      },
      watchAttempt: async () => ({
        kind: "preempted",
        reason: "EvictionByEvictionAPI",
        message: "",
      }),
      watchEvaluator: async () => ({ kind: "succeeded", reason: "Completed", message: "" }),
    },
    m,
  );
  assert.equal(await a.createAttempt(3), "pod-3", "results pass through");
  await a.createAttempt(4);
  await assert.rejects(a.deleteAttempt(), /API server gone/, "errors pass through");
  await a.watchAttempt();
  await a.watchEvaluator();
  const text = m.registry.render();
  for (const line of [
    'herd_worker_activities_total{activity="createAttempt",result="ok"} 2',
    'herd_worker_activities_total{activity="deleteAttempt",result="error"} 1',
    'herd_worker_attempt_outcomes_total{kind="TrainingJob",outcome="preempted",reason="EvictionByEvictionAPI"} 1',
    'herd_worker_attempt_outcomes_total{kind="EvalJob",outcome="succeeded",reason="Completed"} 1',
    'herd_worker_activity_duration_seconds_count{activity="createAttempt"} 2',
    "herd_worker_activities_in_flight 0",
  ])
    assert.ok(text.split("\n").includes(line), `${line}\n---\n${text}`);
});

test("/metrics, and /healthz and /readyz that follow the worker's state", async () => {
  const m = workerMetrics();
  let running = true;
  const server = await serveWorkerHttp(0, m, () => running, "127.0.0.1");
  try {
    const url = (p: string) => `http://127.0.0.1:${server.port}${p}`;
    const metrics = await fetch(url("/metrics"));
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type") ?? "", /version=0\.0\.4/);
    assert.match(await metrics.text(), /# TYPE herd_worker_activities_total counter/);
    assert.equal((await fetch(url("/healthz"))).status, 200);
    running = false;
    assert.equal((await fetch(url("/healthz"))).status, 503);
    assert.equal((await fetch(url("/readyz"))).status, 503);
    assert.equal((await fetch(url("/nothing"))).status, 404);
  } finally {
    server.close();
  }
});

test("a watch's progress report is not an outcome (and /metrics still renders)", async () => {
  const m = workerMetrics();
  const a = instrument(
    { watchAttempt: async () => ({ kind: "progress", progress: { step: 7 } }) },
    m,
  );
  assert.deepEqual(await a.watchAttempt(), { kind: "progress", progress: { step: 7 } });
  const text = m.registry.render();
  assert.ok(text.includes('herd_worker_activities_total{activity="watchAttempt",result="ok"} 1'));
  assert.doesNotMatch(text, /herd_worker_attempt_outcomes_total\{/);
});
