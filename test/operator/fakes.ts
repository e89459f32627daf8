// In-memory stand-ins for Kubernetes and Temporal, with the semantics reconcile relies on:
// a workflow id can be started once (running or closed, a second start says "exists"),
// cancelling a running workflow closes it after its clean-up, finalizers gate deletion.
import type {
  HerdObject,
  KubeAccess,
  ObjectKey,
  WorkflowAccess,
  WorkflowState,
} from "../../operator/reconcile.ts";
import type { SpecChanged, WorkflowInput } from "../../workflows/types.ts";

export class FakeKube implements KubeAccess {
  readonly objects = new Map<string, HerdObject>();
  readonly events: { reason: string; type: string; name: string }[] = [];
  private rv = 1;

  private k(kind: string, ns: string, name: string) {
    return `${kind}/${ns}/${name}`;
  }
  put(obj: HerdObject): HerdObject {
    obj.metadata.resourceVersion = String(this.rv++);
    this.objects.set(this.k(obj.kind, obj.metadata.namespace ?? "default", obj.metadata.name), obj);
    return obj;
  }
  get(key: ObjectKey): HerdObject | undefined {
    const o = this.objects.get(this.k(key.kind, key.namespace, key.name));
    return o ? structuredClone(o) : undefined;
  }
  /** kubectl delete: with finalizers the object stays, marked; without, it goes. */
  delete(key: ObjectKey): void {
    const k = this.k(key.kind, key.namespace, key.name);
    const o = this.objects.get(k);
    if (!o) return;
    if (o.metadata.finalizers?.length) o.metadata.deletionTimestamp = new Date().toISOString();
    else this.objects.delete(k);
  }
  private stored(obj: HerdObject): HerdObject {
    const o = this.objects.get(
      this.k(obj.kind, obj.metadata.namespace ?? "default", obj.metadata.name),
    );
    if (!o || o.metadata.uid !== obj.metadata.uid) throw new Error("not found");
    if (o.metadata.resourceVersion !== obj.metadata.resourceVersion) throw new Error("conflict");
    return o;
  }
  async addFinalizer(obj: HerdObject): Promise<void> {
    const o = this.stored(obj);
    o.metadata.finalizers = [...(o.metadata.finalizers ?? []), "herd.dev/workflow"];
    this.put(o);
  }
  async removeFinalizer(obj: HerdObject): Promise<void> {
    const o = this.stored(obj);
    o.metadata.finalizers = (o.metadata.finalizers ?? []).filter((f) => f !== "herd.dev/workflow");
    this.put(o);
    if (o.metadata.deletionTimestamp && o.metadata.finalizers.length === 0)
      this.objects.delete(this.k(o.kind, o.metadata.namespace ?? "default", o.metadata.name));
  }
  async event(obj: HerdObject, type: string, reason: string): Promise<void> {
    this.events.push({ reason, type, name: obj.metadata.name });
  }
}

interface FakeWorkflow {
  type: string;
  input: WorkflowInput;
  state: WorkflowState;
  signals: SpecChanged[];
  cancelRequests: number;
}

export class FakeTemporal implements WorkflowAccess {
  readonly workflows = new Map<string, FakeWorkflow>();
  startCalls = 0;
  /** Steps a cancelled workflow takes to finish its clean-up (reconcile must wait). */
  cleanupSteps = 2;
  private cleanupLeft = new Map<string, number>();

  async start(type: string, id: string, input: WorkflowInput, replaceClosed = false) {
    this.startCalls++;
    const old = this.workflows.get(id);
    if (old && (old.state === "running" || !replaceClosed)) return "exists" as const;
    this.workflows.set(id, { type, input, state: "running", signals: [], cancelRequests: 0 });
    return "started" as const;
  }
  async signalSpec(id: string, update: SpecChanged) {
    const w = this.workflows.get(id);
    if (w?.state === "running") w.signals.push(update);
  }
  async cancel(id: string) {
    const w = this.workflows.get(id);
    if (!w || w.state !== "running") return;
    w.cancelRequests++;
    if (!this.cleanupLeft.has(id)) this.cleanupLeft.set(id, this.cleanupSteps);
  }
  async state(id: string): Promise<WorkflowState> {
    const w = this.workflows.get(id);
    if (!w) return "missing";
    const left = this.cleanupLeft.get(id);
    if (left !== undefined && w.state === "running") {
      if (left <= 0) w.state = "canceled";
      else this.cleanupLeft.set(id, left - 1);
    }
    return w.state;
  }
}
