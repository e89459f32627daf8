// The reconcile of one herd object, level-based and idempotent: whatever happened before
// (missed events, a restart, another replica doing the same), it looks at the object as it is
// now and takes the next step towards "exactly one workflow, told about the current spec; on
// deletion, that workflow cancelled and closed before the finalizer goes". Durable state lives
// in Temporal and in the object; what this class remembers is only there to save calls.
import type { Logger } from "pino";
import { describeIssues } from "../crds/manifest.ts";
import { kindInfo, type KindName } from "../crds/kinds.ts";
import {
  maxRecoveries,
  workflowIdOf,
  workflowTypeOf,
  type ObjectRef,
  type SpecChanged,
  type WorkflowInput,
} from "../workflows/types.ts";
import type { OperatorMetrics } from "./metrics.ts";

/** Held on every herd object until its workflow has been cancelled and has closed. */
export const finalizer = "herd.dev/workflow";

export interface HerdObject {
  apiVersion?: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: string | Date;
    finalizers?: string[];
  };
  spec?: Record<string, unknown>;
  status?: { observedGeneration?: number; [k: string]: unknown };
}

/** The work-queue key of an object: <kind>/<namespace>/<name>. */
export interface ObjectKey {
  kind: KindName;
  namespace: string;
  name: string;
}
export const keyString = (k: ObjectKey) => `${k.kind}/${k.namespace}/${k.name}`;
export function parseKey(key: string): ObjectKey {
  const [kind, namespace, name] = key.split("/");
  if (!kind || !namespace || !name) throw new Error(`bad queue key ${key}`);
  return { kind: kind as KindName, namespace, name };
}

/** What reconcile needs from Kubernetes (operator/kube.ts; a fake in tests). */
export interface KubeAccess {
  /** The object as the informer last saw it. */
  get(key: ObjectKey): HerdObject | undefined;
  addFinalizer(obj: HerdObject): Promise<void>;
  removeFinalizer(obj: HerdObject): Promise<void>;
  event(
    obj: HerdObject,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void>;
}

/** A workflow as Temporal has it: running, missing, or closed and how. */
export type WorkflowState =
  "running" | "missing" | "completed" | "canceled" | "terminated" | "failed" | "timedOut";

/** The Recovery reason for each way a workflow can be lost. */
const lostReasons: Partial<Record<WorkflowState, string>> = {
  missing: "WorkflowMissing",
  terminated: "WorkflowTerminated",
  failed: "WorkflowFailed",
  timedOut: "WorkflowTimedOut",
  canceled: "WorkflowCanceled",
};

/** Phases after which an object's workflow has nothing left to do. */
const finalPhases = new Set(["Succeeded", "Failed"]);

/** What reconcile needs from Temporal (operator/temporal.ts; a fake in tests). */
export interface WorkflowAccess {
  /**
   * Starts the workflow unless one with the id exists (running or closed): idempotent. With
   * `replaceClosed`, a closed one with the id does not count: a new run starts beside it.
   */
  start(
    workflowType: string,
    workflowId: string,
    input: WorkflowInput,
    replaceClosed?: boolean,
  ): Promise<"started" | "exists">;
  /** Tells a running workflow about a new spec generation; a closed one is left alone. */
  signalSpec(workflowId: string, update: SpecChanged): Promise<void>;
  /** Requests cancellation; nothing happens if it is closed or missing. */
  cancel(workflowId: string): Promise<void>;
  state(workflowId: string): Promise<WorkflowState>;
}

export interface ReconcileResult {
  /** Run again after this long (waiting for a workflow to close). */
  requeueAfterMs?: number;
}

export class Reconciler {
  /**
   * uid → the generation this replica signalled last, and when. Saves repeat signals only: a
   * generation the status has not caught up with is signalled again after resignalAfterMs,
   * in case the workflow never got it (repeats are harmless to it).
   */
  private readonly signalled = new Map<string, { generation: number; at: number }>();
  /** uid → when this replica last asked Temporal whether the object's workflow still runs. */
  private readonly verified = new Map<string, number>();
  /** uids whose cancellation this replica has requested. */
  private readonly cancelling = new Set<string>();
  /**
   * uids whose workflow this replica knows exists. The id contains the uid and is never
   * reused (REJECT_DUPLICATE), so once it exists no start is needed again; this only saves
   * the start calls that the finalizer and status updates would otherwise repeat.
   */
  private readonly known = new Map<string, true>();

  constructor(
    private readonly kube: KubeAccess,
    private readonly workflows: WorkflowAccess,
    private readonly log: Logger,
    private readonly metrics?: OperatorMetrics,
    readonly cancelPollMs = 250,
    /** How often an object whose phase is not final has its workflow checked in Temporal. */
    readonly verifyEveryMs = 30_000,
    /**
     * How long a signalled generation may stay unreported before it is signalled again. A
     * TrainingJob reports a new generation when its attempt ends, so a long attempt gets a
     * repeat this often: one history event each, which the workflow ignores.
     */
    readonly resignalAfterMs = 5 * 60_000,
  ) {}

  async reconcile(key: ObjectKey): Promise<ReconcileResult> {
    const obj = this.kube.get(key);
    if (!obj) return {}; // gone: its finalizer was already handled
    const ref: ObjectRef = {
      kind: key.kind,
      namespace: key.namespace,
      name: key.name,
      uid: obj.metadata.uid,
    };
    const workflowId = workflowIdOf(ref);
    if (obj.metadata.deletionTimestamp) return this.finalize(obj, workflowId);

    const parsed = kindInfo(key.kind).spec.safeParse(obj.spec);
    if (!parsed.success) {
      // The API server validated it, so this means a schema skew between the CRD and this
      // operator. Say so on the object; a new spec or operator version requeues it.
      await this.kube.event(obj, "Warning", "InvalidSpec", describeIssues(parsed.error));
      return {};
    }
    const generation = obj.metadata.generation ?? 1;
    const input: WorkflowInput = { object: ref, generation, spec: parsed.data };
    const exists = this.known.has(ref.uid) || obj.status?.workflowId === workflowId;
    // The finalizer and the start go out together (a round trip saved per new object). If
    // the object is deleted in between, the patch fails and the workflow's first act, a
    // status write, finds the object gone and ends: every herd workflow starts that way.
    const [finalized, start] = await Promise.allSettled([
      obj.metadata.finalizers?.includes(finalizer) ? undefined : this.kube.addFinalizer(obj),
      exists
        ? ("exists" as const)
        : this.workflows.start(workflowTypeOf[key.kind], workflowId, input),
    ]);
    if (start.status === "rejected") throw start.reason;
    this.known.set(ref.uid, true);
    if (start.value === "started") {
      this.signalled.set(ref.uid, { generation, at: Date.now() });
      this.metrics?.workflowsStarted.inc({ kind: key.kind });
      this.log.info({ workflowId, generation }, "workflow started");
      void this.kube.event(obj, "Normal", "WorkflowStarted", `started workflow ${workflowId}`);
    }
    // A lost finalizer race (409) retries the whole reconcile; the start is known by then.
    if (finalized.status === "rejected") throw finalized.reason;
    if (start.value === "started") return {};
    const again = finalPhases.has(String(obj.status?.phase))
      ? {}
      : { requeueAfterMs: this.verifyEveryMs };
    if (await this.recoverIfLost(key, obj, workflowId, input)) return again;

    // The workflow exists: make sure it knows the current generation.
    const observed = obj.status?.observedGeneration ?? 0;
    const last = this.signalled.get(ref.uid);
    const due =
      !last || last.generation < generation || Date.now() - last.at >= this.resignalAfterMs;
    if (generation > observed && due) {
      await this.workflows.signalSpec(workflowId, { generation, spec: parsed.data });
      this.signalled.set(ref.uid, { generation, at: Date.now() });
      this.log.info({ workflowId, generation, observed }, "spec change signalled");
      await this.kube.event(
        obj,
        "Normal",
        "SpecSignalled",
        `generation ${generation} sent to workflow ${workflowId}`,
      );
    }
    return again;
  }

  /**
   * Status says a workflow drives the object, but is it still running? Temporal may have lost
   * it (a namespace reset, a lost database) or someone ended it (`temporal workflow
   * terminate`, a timeout, a failure), and then the object would stay Running forever with
   * its pods unwatched. Such a workflow is started again, told why and given the object's
   * status to pick up from (TrainingJobs resume from their last durable checkpoint); past
   * maxRecoveries the new workflow ends the object Failed. A workflow that completed is left
   * alone: its final status write may not have reached this replica's cache yet. Checked at
   * most every verifyEveryMs per object.
   */
  private async recoverIfLost(
    key: ObjectKey,
    obj: HerdObject,
    workflowId: string,
    input: WorkflowInput,
  ): Promise<boolean> {
    const uid = obj.metadata.uid;
    if (finalPhases.has(String(obj.status?.phase))) return false;
    const now = Date.now();
    if (now - (this.verified.get(uid) ?? 0) < this.verifyEveryMs) return false;
    this.verified.set(uid, now);
    const state = await this.workflows.state(workflowId);
    const reason = lostReasons[state];
    if (!reason) return false;
    const status = obj.status ?? {};
    const count = (Number(status.recoveries) || 0) + 1;
    const started = await this.workflows.start(
      workflowTypeOf[key.kind],
      workflowId,
      { ...input, recovery: { reason, count, status } },
      true,
    );
    if (started === "started") {
      this.log.warn({ workflowId, state, count }, "workflow lost; started again");
      await this.kube.event(
        obj,
        "Warning",
        reason,
        `workflow ${workflowId} is ${state}; started again from status (recovery ${count} of ${maxRecoveries})`,
      );
    }
    return true;
  }

  /** Forgets objects no longer in the cache (deleted without passing through finalize). */
  prune(liveUids: Set<string>): void {
    for (const m of [this.signalled, this.known, this.verified])
      for (const uid of m.keys()) if (!liveUids.has(uid)) m.delete(uid);
    for (const uid of this.cancelling) if (!liveUids.has(uid)) this.cancelling.delete(uid);
  }

  private async finalize(obj: HerdObject, workflowId: string): Promise<ReconcileResult> {
    if (!obj.metadata.finalizers?.includes(finalizer)) return {};
    const state = await this.workflows.state(workflowId);
    if (state === "running") {
      // Once per replica: a second request (this replica restarted, or another replica
      // asked first) is harmless to Temporal. Then poll until the clean-up has finished.
      if (!this.cancelling.has(obj.metadata.uid)) {
        await this.workflows.cancel(workflowId);
        this.cancelling.add(obj.metadata.uid);
        this.log.info({ workflowId }, "workflow cancellation requested");
        await this.kube.event(obj, "Normal", "Cancelling", `cancelling workflow ${workflowId}`);
      }
      return { requeueAfterMs: this.cancelPollMs };
    }
    await this.kube.removeFinalizer(obj);
    this.cancelling.delete(obj.metadata.uid);
    this.signalled.delete(obj.metadata.uid);
    this.known.delete(obj.metadata.uid);
    this.verified.delete(obj.metadata.uid);
    this.log.info({ workflowId, state }, "workflow closed; finalizer removed");
    return {};
  }
}
