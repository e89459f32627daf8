// The reconcile of one herd object, level-based and idempotent: whatever happened before
// (missed events, a restart, another replica doing the same), it looks at the object as it is
// now and takes the next step towards "exactly one workflow, told about the current spec; on
// deletion, that workflow cancelled and closed before the finalizer goes". Durable state lives
// in Temporal and in the object; what this class remembers is only there to save calls.
import type { Logger } from "pino";
import { describeIssues } from "../crds/manifest.ts";
import { kindInfo, type KindName } from "../crds/kinds.ts";
import {
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

export type WorkflowState = "running" | "closed" | "missing";

/** What reconcile needs from Temporal (operator/temporal.ts; a fake in tests). */
export interface WorkflowAccess {
  /** Starts the workflow unless one with the id exists (running or closed): idempotent. */
  start(
    workflowType: string,
    workflowId: string,
    input: WorkflowInput,
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
  /** uid → generation this replica has already signalled (saves repeat signals only). */
  private readonly signalled = new Map<string, number>();
  /** uids whose cancellation this replica has requested. */
  private readonly cancelling = new Set<string>();

  constructor(
    private readonly kube: KubeAccess,
    private readonly workflows: WorkflowAccess,
    private readonly log: Logger,
    private readonly metrics?: OperatorMetrics,
    readonly cancelPollMs = 250,
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

    if (!obj.metadata.finalizers?.includes(finalizer)) await this.kube.addFinalizer(obj);

    const parsed = kindInfo(key.kind).spec.safeParse(obj.spec);
    if (!parsed.success) {
      // The API server validated it, so this means a schema skew between the CRD and this
      // operator. Say so on the object; a new spec or operator version requeues it.
      await this.kube.event(obj, "Warning", "InvalidSpec", describeIssues(parsed.error));
      return {};
    }
    const generation = obj.metadata.generation ?? 1;
    const input: WorkflowInput = { object: ref, generation, spec: parsed.data };
    const started = await this.workflows.start(workflowTypeOf[key.kind], workflowId, input);
    if (started === "started") {
      this.signalled.set(ref.uid, generation);
      this.metrics?.workflowsStarted.inc({ kind: key.kind });
      this.log.info({ workflowId, generation }, "workflow started");
      await this.kube.event(obj, "Normal", "WorkflowStarted", `started workflow ${workflowId}`);
      return {};
    }

    // The workflow exists: make sure it knows the current generation.
    const observed = obj.status?.observedGeneration ?? 0;
    if (generation > observed && (this.signalled.get(ref.uid) ?? 0) < generation) {
      await this.workflows.signalSpec(workflowId, { generation, spec: parsed.data });
      this.signalled.set(ref.uid, generation);
      this.log.info({ workflowId, generation, observed }, "spec change signalled");
      await this.kube.event(
        obj,
        "Normal",
        "SpecSignalled",
        `generation ${generation} sent to workflow ${workflowId}`,
      );
    }
    return {};
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
    this.log.info({ workflowId, state }, "workflow closed; finalizer removed");
    return {};
  }
}
