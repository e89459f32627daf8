// The EvalSweep workflow's plumbing on a real Temporal dev server, with in-memory activities
// (its Schedule is faked here; test/e2e/eval.test.ts runs the real one): status on start,
// spec generations applied in order (stale and repeated signals ignored), each reaching the
// schedule, cancellation cleans up before the workflow ends cancelled, and a vanished object
// ends it normally.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Client, Connection, WorkflowFailedError } from "@temporalio/client";
import { CancelledFailure } from "@temporalio/common";
import { KubeConfig } from "@kubernetes/client-node";
import { clusterEnv } from "./env.ts";
import { silent, waitFor } from "./helpers.ts";
import { startControlWorker } from "../../workers/main.ts";
import type { SweepActivities } from "../../workflows/eval-types.ts";
import type {
  ControlActivities,
  ObjectRef,
  StatusPatch,
  WorkflowInput,
  WorkflowState,
} from "../../workflows/types.ts";

const env = await clusterEnv();
const taskQueue = `herd-test-wf-${randomBytes(3).toString("hex")}`;
const patches = new Map<string, StatusPatch["status"][]>();
const cleanups: string[] = [];
const goneUids = new Set<string>();
/** uid → the suspend flag of each schedule upsert. */
const upserts = new Map<string, boolean[]>();

const fakes: ControlActivities & Pick<SweepActivities, "upsertSchedule"> = {
  async patchStatus({ object, status }) {
    if (goneUids.has(object.uid)) return "gone";
    patches.set(object.uid, [...(patches.get(object.uid) ?? []), status]);
    return "written";
  },
  async cleanUp(object) {
    cleanups.push(object.uid);
  },
  async upsertSchedule({ object, spec }) {
    upserts.set(object.uid, [...(upserts.get(object.uid) ?? []), spec.suspend === true]);
    return { scheduleId: `schedule-${object.uid}` };
  },
};
let client: Client;
let stopWorker: () => Promise<void>;

before(async () => {
  if (!env) return;
  const { worker, run } = await startControlWorker({
    kubeconfig: new KubeConfig(),
    temporalAddress: env.temporalAddress,
    taskQueue,
    logger: silent,
    activities: fakes,
  });
  const connection = await Connection.connect({ address: env.temporalAddress });
  client = new Client({ connection });
  stopWorker = async () => {
    worker.shutdown();
    await run;
    await connection.close();
  };
});
after(async () => {
  if (env) await stopWorker();
});

function input(uid: string, spec: Record<string, unknown> = { suspend: false }): WorkflowInput {
  const object: ObjectRef = { kind: "EvalSweep", namespace: "ns", name: uid, uid };
  return { object, generation: 1, spec };
}

const start = (uid: string, spec?: Record<string, unknown>) =>
  client.workflow.start("evalSweepWorkflow", {
    taskQueue,
    workflowId: `wf-test-${uid}`,
    args: [input(uid, spec)],
  });

test("status on start, generations applied in order, stale ones ignored", async () => {
  const uid = randomBytes(4).toString("hex");
  const handle = await start(uid);
  await waitFor("first status", async () => (patches.get(uid)?.length ? true : undefined));
  assert.equal(patches.get(uid)![0]!.phase, "Active");
  assert.equal(patches.get(uid)![0]!.observedGeneration, 1);
  await handle.signal("specChanged", { generation: 3, spec: { suspend: true } });
  await handle.signal("specChanged", { generation: 2, spec: { suspend: false } });
  await handle.signal("specChanged", { generation: 3, spec: { suspend: true } });
  // the status write is what the operator sees: wait for it, then ask the workflow
  const last = await waitFor("status at generation 3", async () => {
    const p = patches.get(uid)!.at(-1)!;
    return p.observedGeneration === 3 ? p : undefined;
  });
  assert.equal(last.phase, "Suspended");
  const state = await handle.query<WorkflowState>("state");
  assert.equal(state.observedGeneration, 3);
  assert.equal(state.phase, "Suspended");
  assert.equal(patches.get(uid)!.length, 2, "one write for the start, one for generation 3");
  assert.deepEqual(upserts.get(uid), [false, true], "the schedule: created, then paused");
  assert.equal(last.scheduleId, `schedule-${uid}`);
  await handle.terminate("test done");
});

test("cancellation runs the clean-up, writes a last status, and ends cancelled", async () => {
  const uid = randomBytes(4).toString("hex");
  const handle = await start(uid);
  await waitFor("first status", async () => (patches.get(uid)?.length ? true : undefined));
  await handle.cancel();
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(
    err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure,
    String(err),
  );
  assert.deepEqual(
    cleanups.filter((c) => c === uid),
    [uid],
  );
  const conditions = patches.get(uid)!.at(-1)!.conditions as { reason: string }[];
  assert.equal(conditions[0]!.reason, "Deleting");
});

test("an object that is gone ends its workflow normally", async () => {
  const uid = randomBytes(4).toString("hex");
  goneUids.add(uid);
  const handle = await start(uid);
  const result = (await handle.result()) as WorkflowState;
  assert.equal(result.observedGeneration, 1);
  assert.equal(patches.get(uid), undefined);
  assert.ok(cleanups.includes(uid), "its schedule is deleted all the same");
});
