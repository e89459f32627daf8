// The operator and the minimal workflows against the real kube-apiserver and Temporal dev
// server: apply → workflow → status; spec changes as signals; a restart and a second replica
// start nothing twice; deletion cancels the workflow and waits for its clean-up.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { WorkflowNotFoundError } from "@temporalio/client";
import { evalJobObject, evalSweepObject } from "../crds/cases.ts";
import { clusterEnv } from "./env.ts";
import {
  createObject,
  deleteObject,
  executionsOf,
  getObject,
  harness,
  parkedTrainingJob,
  patchObject,
  sleep,
  waitFor,
  type Harness,
} from "./helpers.ts";
import { finalizer } from "../../operator/reconcile.ts";
import type { Operator } from "../../operator/operator.ts";
import { workflowIdOf, type HerdKind, type WorkflowState } from "../../workflows/types.ts";

const env = await clusterEnv();
let h: Harness;

before(async () => {
  h = await harness(env, "op");
});
after(async () => {
  await h.close();
});

const idOf = (kind: HerdKind, name: string, uid: string) =>
  workflowIdOf({ kind, namespace: h.namespace, name, uid });

/** Waits until the object's status reflects `generation` (written by its workflow). */
function statusAt(kind: HerdKind, name: string, generation: number, phase?: string) {
  return waitFor(`${kind} ${name} status at generation ${generation}`, async () => {
    const o = await getObject(env, kind, h.namespace, name);
    if (o?.status?.observedGeneration !== generation) return undefined;
    if (phase && o.status.phase !== phase) return undefined;
    return o;
  });
}

const started = (ops: Operator[]) =>
  ops.reduce(
    (n, op) =>
      n +
      ["TrainingJob", "EvalJob", "EvalSweep"].reduce(
        (m, kind) => m + op.metrics.workflowsStarted.get({ kind }),
        0,
      ),
    0,
  );

test("apply → workflow started → status written with observedGeneration", async () => {
  const op = await h.newOperator();
  try {
    const objs = [
      parkedTrainingJob("apply-tj"),
      evalJobObject("apply-ej"),
      evalSweepObject("apply-es"),
    ];
    const created = await Promise.all(objs.map((o) => createObject(env, h.namespace, o)));
    for (const [i, c] of created.entries()) {
      const kind = c.kind as HerdKind;
      const name = c.metadata.name!;
      // The EvalJob names its task files by relative paths, which a pod cannot resolve: its
      // workflow fails it at once, naming them.
      const phase = { TrainingJob: "Running", EvalJob: "Failed", EvalSweep: "Active" }[kind];
      const o = await statusAt(kind, name, 1, phase);
      if (kind === "EvalJob")
        assert.match(String(o.status!.message), /spec\.tasks\[0\]\.uri: tasks\/hellaswag\.jsonl/);
      assert.equal(o.status!.workflowId, idOf(kind, name, c.metadata.uid));
      assert.deepEqual(o.metadata.finalizers, [finalizer]);
      const handle = h.client.workflow.getHandle(idOf(kind, name, c.metadata.uid));
      // The EvalJob's workflow writes its Failed status, then completes: wait for the second.
      const d =
        kind === "EvalJob"
          ? await waitFor("the EvalJob's workflow completed", async () => {
              const d = await handle.describe();
              return d.status.name === "RUNNING" ? undefined : d;
            })
          : await handle.describe();
      assert.equal(d.status.name, kind === "EvalJob" ? "COMPLETED" : "RUNNING");
      assert.equal(d.taskQueue, h.taskQueue);
      assert.equal(d.type, ["trainingJobWorkflow", "evalJobWorkflow", "evalSweepWorkflow"][i]);
    }
    const events = await waitFor("WorkflowStarted event", async () => {
      const list = await h.core.listNamespacedEvent({
        namespace: h.namespace,
        fieldSelector: "involvedObject.name=apply-tj",
      });
      return list.items.some((e) => e.reason === "WorkflowStarted") ? list.items : undefined;
    });
    assert.ok(events.every((e) => e.involvedObject.kind === "TrainingJob"));
    const metrics = await (await fetch(`${op.httpAddress}/metrics`)).text();
    assert.match(metrics, /herd_operator_workflows_started_total\{kind="TrainingJob"\} [1-9]/);
    assert.match(
      metrics,
      /herd_operator_reconcile_duration_seconds_count\{kind="EvalSweep"\} [1-9]/,
    );
    assert.equal((await fetch(`${op.httpAddress}/readyz`)).status, 200);
    assert.equal((await fetch(`${op.httpAddress}/healthz`)).status, 200);
  } finally {
    await op.stop();
  }
});

test("suspend, resume and a retry budget change reach the workflow as signals", async () => {
  const op = await h.newOperator();
  try {
    const c = await createObject(env, h.namespace, parkedTrainingJob("signals"));
    await statusAt("TrainingJob", "signals", 1, "Running");
    await patchObject(env, "TrainingJob", h.namespace, "signals", { spec: { suspend: true } });
    const suspended = await statusAt("TrainingJob", "signals", 2, "Suspended");
    const cond = (suspended.status!.conditions as { reason: string }[])[0]!;
    assert.equal(cond.reason, "Suspended");
    await patchObject(env, "TrainingJob", h.namespace, "signals", {
      spec: { suspend: false, retry: { failureLimit: 7 } },
    });
    await statusAt("TrainingJob", "signals", 3, "Running");
    const state = await h.client.workflow
      .getHandle(idOf("TrainingJob", "signals", c.metadata.uid))
      .query<WorkflowState>("state");
    assert.equal(state.observedGeneration, 3);
    assert.deepEqual([...state.applied].sort(), ["retry", "suspend"]);
  } finally {
    await op.stop();
  }
});

test("an operator restarted in the middle starts no second workflow", async () => {
  const first = await h.newOperator();
  const names = Array.from({ length: 8 }, (_, i) => `restart-${i}`);
  const created = await Promise.all(
    names.map((n) => createObject(env, h.namespace, parkedTrainingJob(n))),
  );
  // stop as soon as the first workflow is started: the rest are mid-way or not begun
  await waitFor("a first start", async () => (started([first]) > 0 ? true : undefined));
  // a rolling restart: the new replica starts while the old one is still finishing
  const stopping = first.stop();
  const second = await h.newOperator();
  await stopping;
  try {
    for (const n of names) await statusAt("TrainingJob", n, 1, "Running");
    assert.equal(
      started([first, second]),
      names.length,
      "each workflow started by exactly one start",
    );
    for (const c of created)
      assert.equal(
        await executionsOf(h.client, idOf("TrainingJob", c.metadata.name!, c.metadata.uid)),
        1,
      );
  } finally {
    await second.stop();
  }
});

test("two operator replicas start one workflow per object", async () => {
  const replicas = [await h.newOperator(), await h.newOperator()];
  try {
    await waitFor("replicas ready", async () =>
      replicas.every((r) => r.ready) ? true : undefined,
    );
    const names = Array.from({ length: 12 }, (_, i) => `replica-${i}`);
    const created = await Promise.all(
      names.map((n) => createObject(env, h.namespace, parkedTrainingJob(n))),
    );
    for (const n of names) await statusAt("TrainingJob", n, 1, "Running");
    assert.equal(started(replicas), names.length);
    for (const c of created)
      assert.equal(
        await executionsOf(h.client, idOf("TrainingJob", c.metadata.name!, c.metadata.uid)),
        1,
      );
    // Events are recorded best effort, after the start: wait until each object has one.
    const startedEvents = (
      items: { involvedObject: { name?: string }; reason?: string }[],
      n: string,
    ) => items.filter((e) => e.involvedObject.name === n && e.reason === "WorkflowStarted").length;
    await waitFor("a WorkflowStarted event per object", async () => {
      const list = await h.core.listNamespacedEvent({ namespace: h.namespace });
      return names.every((n) => startedEvents(list.items, n) > 0) ? list : undefined;
    });
    await sleep(500); // a duplicate, if there were one, would have landed by now
    const again = await h.core.listNamespacedEvent({ namespace: h.namespace });
    for (const n of names) assert.equal(startedEvents(again.items, n), 1, n);
  } finally {
    await Promise.all(replicas.map((r) => r.stop()));
  }
});

test("delete → workflow cancelled after its clean-up, finalizer removed, object gone", async () => {
  const op = await h.newOperator();
  try {
    const c = await createObject(env, h.namespace, parkedTrainingJob("doomed"));
    await statusAt("TrainingJob", "doomed", 1, "Running");
    const handle = h.client.workflow.getHandle(idOf("TrainingJob", "doomed", c.metadata.uid));
    await deleteObject(env, "TrainingJob", h.namespace, "doomed");
    await waitFor("object gone", async () =>
      (await getObject(env, "TrainingJob", h.namespace, "doomed")) ? undefined : true,
    );
    const d = await handle.describe();
    assert.equal(d.status.name, "CANCELLED");
    // the clean-up activity ran before the workflow closed (and so before the finalizer went)
    const history = await handle.fetchHistory();
    const activities = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter(Boolean);
    assert.ok(activities.includes("cleanUp"), activities.join(","));
    assert.ok(history.events!.some((e) => e.workflowExecutionCancelRequestedEventAttributes));
  } finally {
    await op.stop();
  }
});

test("a recreated object of the same name gets a new workflow; the old id is not reused", async () => {
  const op = await h.newOperator();
  try {
    const a = await createObject(env, h.namespace, parkedTrainingJob("again"));
    await statusAt("TrainingJob", "again", 1, "Running");
    await deleteObject(env, "TrainingJob", h.namespace, "again");
    await waitFor("gone", async () =>
      (await getObject(env, "TrainingJob", h.namespace, "again")) ? undefined : true,
    );
    const b = await createObject(env, h.namespace, parkedTrainingJob("again"));
    const o = await statusAt("TrainingJob", "again", 1, "Running");
    assert.notEqual(a.metadata.uid, b.metadata.uid);
    assert.equal(o.status!.workflowId, idOf("TrainingJob", "again", b.metadata.uid));
    await assert.rejects(
      h.client.workflow.getHandle(idOf("TrainingJob", "again", "no-such-uid")).describe(),
      WorkflowNotFoundError,
    );
  } finally {
    await op.stop();
  }
});
