// The reconcile logic against in-memory Kubernetes and Temporal: one workflow per object
// however often or by however many replicas it runs, spec changes signalled once per
// generation, deletion waits for the workflow's clean-up before the finalizer goes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { pino } from "pino";
import {
  Reconciler,
  finalizer,
  type HerdObject,
  type ObjectKey,
} from "../../operator/reconcile.ts";
import { operatorMetrics } from "../../operator/metrics.ts";
import { workflowIdOf } from "../../workflows/types.ts";
import { trainingJobObject, evalSweepObject } from "../crds/cases.ts";
import { FakeKube, FakeTemporal } from "./fakes.ts";

const log = pino({ level: "silent" });

function setup() {
  const kube = new FakeKube();
  const temporal = new FakeTemporal();
  const metrics = operatorMetrics(() => 0);
  const reconciler = new Reconciler(kube, temporal, log, metrics, 0);
  return { kube, temporal, metrics, reconciler };
}

function stored(o: Record<string, unknown>, uid: string, generation = 1): HerdObject {
  const obj = structuredClone(o) as unknown as HerdObject;
  obj.metadata = { ...obj.metadata, namespace: "ns", uid, generation };
  return obj;
}

const key = (kind: ObjectKey["kind"], name: string): ObjectKey => ({ kind, namespace: "ns", name });

test("a new object gets a finalizer and exactly one workflow, with the documented id", async () => {
  const { kube, temporal, reconciler, metrics } = setup();
  kube.put(stored(trainingJobObject("a"), "uid-a"));
  await reconciler.reconcile(key("TrainingJob", "a"));
  await reconciler.reconcile(key("TrainingJob", "a")); // replayed event
  const id = "herd/TrainingJob/ns/a/uid-a";
  assert.equal(workflowIdOf({ kind: "TrainingJob", namespace: "ns", name: "a", uid: "uid-a" }), id);
  assert.deepEqual([...temporal.workflows.keys()], [id]);
  assert.equal(temporal.workflows.get(id)!.type, "trainingJobWorkflow");
  assert.equal(temporal.workflows.get(id)!.input.generation, 1);
  // defaults were applied by the schema before the workflow saw the spec
  const spec = temporal.workflows.get(id)!.input.spec as { retry: { failureLimit: number } };
  assert.equal(spec.retry.failureLimit, 3);
  assert.deepEqual(kube.get(key("TrainingJob", "a"))!.metadata.finalizers, [finalizer]);
  assert.equal(kube.events.filter((e) => e.reason === "WorkflowStarted").length, 1);
  assert.equal(metrics.workflowsStarted.get({ kind: "TrainingJob" }), 1);
});

test("two replicas reconciling the same objects start one workflow each", async () => {
  const kube = new FakeKube();
  const temporal = new FakeTemporal();
  const replicas = [0, 1].map(() => new Reconciler(kube, temporal, log, undefined, 0));
  for (let i = 0; i < 5; i++) kube.put(stored(trainingJobObject(`j${i}`), `u${i}`));
  const runs: Promise<unknown>[] = [];
  for (let i = 0; i < 5; i++)
    for (const r of replicas)
      runs.push(r.reconcile(key("TrainingJob", `j${i}`)).catch((e: Error) => e.message));
  await Promise.all(runs);
  // a replica whose finalizer patch lost the race retries, as the work queue would
  for (let i = 0; i < 5; i++)
    for (const r of replicas) await r.reconcile(key("TrainingJob", `j${i}`));
  assert.equal(temporal.workflows.size, 5);
  assert.ok(temporal.startCalls >= 10);
  assert.equal(kube.events.filter((e) => e.reason === "WorkflowStarted").length, 5);
});

test("a new generation is signalled once; a status that caught up stops the signals", async () => {
  const { kube, temporal, reconciler } = setup();
  const obj = kube.put(stored(evalSweepObject("s"), "uid-s"));
  await reconciler.reconcile(key("EvalSweep", "s"));
  const current = kube.get(key("EvalSweep", "s"))!;
  (current.spec as { suspend: boolean }).suspend = true;
  current.metadata.generation = 2;
  current.status = { observedGeneration: 1 };
  kube.put(current);
  await reconciler.reconcile(key("EvalSweep", "s"));
  await reconciler.reconcile(key("EvalSweep", "s"));
  const wf = temporal.workflows.get(
    workflowIdOf({ kind: "EvalSweep", namespace: "ns", name: "s", uid: obj.metadata.uid }),
  )!;
  assert.equal(wf.signals.length, 1);
  assert.equal(wf.signals[0]!.generation, 2);
  assert.equal((wf.signals[0]!.spec as { suspend: boolean }).suspend, true);
  // a restarted operator (fresh memory) sees observedGeneration 2 and signals nothing
  const fresh = new Reconciler(kube, temporal, log, undefined, 0);
  const caughtUp = kube.get(key("EvalSweep", "s"))!;
  caughtUp.status = { observedGeneration: 2 };
  kube.put(caughtUp);
  await fresh.reconcile(key("EvalSweep", "s"));
  assert.equal(wf.signals.length, 1);
});

test("deletion cancels the workflow, waits for its clean-up, then removes the finalizer", async () => {
  const { kube, temporal, reconciler } = setup();
  kube.put(stored(trainingJobObject("d"), "uid-d"));
  await reconciler.reconcile(key("TrainingJob", "d"));
  kube.delete(key("TrainingJob", "d"));
  assert.ok(kube.get(key("TrainingJob", "d")), "the finalizer holds the object");
  let result = await reconciler.reconcile(key("TrainingJob", "d"));
  const wf = temporal.workflows.get("herd/TrainingJob/ns/d/uid-d")!;
  assert.equal(wf.cancelRequests, 1);
  assert.ok(result.requeueAfterMs !== undefined, "waits for the workflow to close");
  let rounds = 0;
  while (result.requeueAfterMs !== undefined && rounds++ < 10) {
    assert.ok(kube.get(key("TrainingJob", "d")), "finalizer kept while the workflow runs");
    result = await reconciler.reconcile(key("TrainingJob", "d"));
  }
  assert.equal(wf.state, "canceled");
  assert.equal(wf.cancelRequests, 1, "cancelled once");
  assert.equal(kube.get(key("TrainingJob", "d")), undefined, "object gone");
});

test("an object deleted before its workflow started loses its finalizer without one", async () => {
  const { kube, temporal, reconciler } = setup();
  const o = stored(trainingJobObject("e"), "uid-e");
  o.metadata.finalizers = [finalizer];
  kube.put(o);
  kube.delete(key("TrainingJob", "e"));
  assert.deepEqual(await reconciler.reconcile(key("TrainingJob", "e")), {});
  assert.equal(temporal.workflows.size, 0);
  assert.equal(kube.get(key("TrainingJob", "e")), undefined);
});

test("a recreated object of the same name gets its own workflow", async () => {
  const { kube, temporal, reconciler } = setup();
  kube.put(stored(trainingJobObject("r"), "uid-1"));
  await reconciler.reconcile(key("TrainingJob", "r"));
  kube.objects.clear();
  kube.put(stored(trainingJobObject("r"), "uid-2"));
  await reconciler.reconcile(key("TrainingJob", "r"));
  assert.deepEqual([...temporal.workflows.keys()].sort(), [
    "herd/TrainingJob/ns/r/uid-1",
    "herd/TrainingJob/ns/r/uid-2",
  ]);
});

test("a spec the operator's schema rejects gets a Warning event and no workflow", async () => {
  const { kube, temporal, reconciler } = setup();
  const o = stored(trainingJobObject("bad"), "uid-bad");
  (o.spec as { training: { globalBatchTokens: number } }).training.globalBatchTokens = 1000;
  kube.put(o);
  await reconciler.reconcile(key("TrainingJob", "bad"));
  assert.equal(temporal.workflows.size, 0);
  assert.deepEqual(
    kube.events.map((e) => [e.type, e.reason]),
    [["Warning", "InvalidSpec"]],
  );
});

test("known workflows skip the start call until pruned", async () => {
  const { kube, temporal, reconciler } = setup();
  kube.put(stored(trainingJobObject("p"), "uid-p"));
  await reconciler.reconcile(key("TrainingJob", "p"));
  await reconciler.reconcile(key("TrainingJob", "p"));
  assert.equal(temporal.startCalls, 1, "the second reconcile knew the workflow");
  reconciler.prune(new Set());
  await reconciler.reconcile(key("TrainingJob", "p"));
  assert.equal(temporal.startCalls, 2, "after pruning it asks Temporal again");
  assert.equal(temporal.workflows.size, 1);
});

test("a workflow Temporal lost or that was ended outside herd is started again, with the status", async () => {
  const { kube, temporal } = setup();
  const reconciler = new Reconciler(kube, temporal, log, undefined, 0, 0);
  const id = workflowIdOf({ kind: "TrainingJob", namespace: "ns", name: "t", uid: "uid-t" });
  const obj = stored(trainingJobObject("t"), "uid-t");
  kube.put(obj);
  await reconciler.reconcile(key("TrainingJob", "t"));
  const running = { phase: "Running", workflowId: id, attempts: 2, step: 40 };
  kube.put({ ...kube.get(key("TrainingJob", "t"))!, status: running });

  // Running: nothing to do but come back later.
  assert.deepEqual(await reconciler.reconcile(key("TrainingJob", "t")), { requeueAfterMs: 0 });
  assert.equal(temporal.startCalls, 1);

  // Terminated by hand: a new run of the same id, told why, from the status.
  temporal.workflows.get(id)!.state = "terminated";
  await reconciler.reconcile(key("TrainingJob", "t"));
  const again = temporal.workflows.get(id)!;
  assert.equal(again.state, "running");
  assert.deepEqual(again.input.recovery, {
    reason: "WorkflowTerminated",
    count: 1,
    status: running,
  });
  assert.deepEqual(
    kube.events.filter((e) => e.type === "Warning").map((e) => e.reason),
    ["WorkflowTerminated"],
  );

  // Missing from Temporal altogether: the count goes on from status.recoveries.
  kube.put({ ...kube.get(key("TrainingJob", "t"))!, status: { ...running, recoveries: 1 } });
  temporal.workflows.delete(id);
  await reconciler.reconcile(key("TrainingJob", "t"));
  assert.equal(temporal.workflows.get(id)!.input.recovery?.reason, "WorkflowMissing");
  assert.equal(temporal.workflows.get(id)!.input.recovery?.count, 2);

  // Completed (its final status may still be on its way) or final phase: left alone.
  temporal.workflows.get(id)!.state = "completed";
  await reconciler.reconcile(key("TrainingJob", "t"));
  assert.equal(temporal.workflows.get(id)!.state, "completed");
  kube.put({ ...kube.get(key("TrainingJob", "t"))!, status: { ...running, phase: "Failed" } });
  temporal.workflows.get(id)!.state = "terminated";
  assert.deepEqual(await reconciler.reconcile(key("TrainingJob", "t")), {});
  assert.equal(temporal.workflows.get(id)!.state, "terminated");
});

test("the check against Temporal runs at most every verifyEveryMs per object", async () => {
  const { kube, temporal } = setup();
  const reconciler = new Reconciler(kube, temporal, log, undefined, 0, 60_000);
  const id = workflowIdOf({ kind: "TrainingJob", namespace: "ns", name: "v", uid: "uid-v" });
  kube.put(stored(trainingJobObject("v"), "uid-v"));
  await reconciler.reconcile(key("TrainingJob", "v"));
  kube.put({ ...kube.get(key("TrainingJob", "v"))!, status: { phase: "Running", workflowId: id } });
  await reconciler.reconcile(key("TrainingJob", "v")); // checks: running
  temporal.workflows.get(id)!.state = "terminated";
  await reconciler.reconcile(key("TrainingJob", "v")); // within the minute: no check
  assert.equal(temporal.workflows.get(id)!.state, "terminated");
});

test("a generation the status has not reported is signalled again after resignalAfterMs", async () => {
  const { kube, temporal } = setup();
  const reconciler = new Reconciler(kube, temporal, log, undefined, 0, 60_000, 0);
  const obj = kube.put(stored(evalSweepObject("g"), "uid-g"));
  await reconciler.reconcile(key("EvalSweep", "g"));
  const current = kube.get(key("EvalSweep", "g"))!;
  current.metadata.generation = 2;
  current.status = { observedGeneration: 1 };
  kube.put(current);
  await reconciler.reconcile(key("EvalSweep", "g"));
  await reconciler.reconcile(key("EvalSweep", "g")); // lost? say it again
  const wf = temporal.workflows.get(
    workflowIdOf({ kind: "EvalSweep", namespace: "ns", name: "g", uid: obj.metadata.uid }),
  )!;
  assert.deepEqual(
    wf.signals.map((s) => s.generation),
    [2, 2],
  );
});
