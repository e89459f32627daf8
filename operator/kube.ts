// The operator's view of Kubernetes: one informer per herd kind (list, then watch from the
// list's resourceVersion; relist after 410 Gone; re-watch when a watch times out; restart with
// back-off after any other error), finalizer patches with optimistic concurrency, and Events.
import os from "node:os";
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  makeInformer,
  setHeaderOptions,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { group, version } from "../crds/common.ts";
import { kinds, kindInfo, type KindName } from "../crds/kinds.ts";
import type { OperatorMetrics } from "./metrics.ts";
import { isConflict, isNotFound } from "../workers/kube-errors.ts";
import { finalizer, type HerdObject, type KubeAccess, type ObjectKey } from "./reconcile.ts";

type HerdInformer = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

export class Conflict extends Error {
  override name = "Conflict";
}

export interface KubeObjectsOptions {
  /** Called with the key of every object added, changed or deleted (and on resync). */
  onChange: (key: ObjectKey) => void;
  logger: Logger;
  metrics?: OperatorMetrics;
  /** Watch only this namespace (all namespaces when undefined). */
  namespace?: string;
  /** Longest wait before restarting a failed informer. */
  maxRestartDelayMs?: number;
}

export class KubeObjects implements KubeAccess {
  private readonly informers = new Map<KindName, HerdInformer>();
  private readonly listedKinds = new Set<KindName>();
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private readonly failures = new Map<KindName, number>();
  private stopped = false;
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

  constructor(
    private readonly kc: KubeConfig,
    private readonly opts: KubeObjectsOptions,
  ) {
    // One client per API; client-node opens a fresh connection per request. (A shared
    // keep-alive agent would save the TLS handshakes, but node-fetch 2, client-node's
    // transport, then fails responses with false "Premature close" errors: node-fetch#1767.)
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  /** Starts every informer; resolves at once (see `synced`). */
  start(): void {
    for (const info of kinds) {
      const namespace = this.opts.namespace;
      const list = async () => {
        const result = (await (namespace
          ? this.custom.listNamespacedCustomObject({
              group,
              version,
              namespace,
              plural: info.plural,
            })
          : this.custom.listClusterCustomObject({
              group,
              version,
              plural: info.plural,
            }))) as KubernetesListObject<KubernetesObject>;
        this.listedKinds.add(info.kind);
        this.failures.delete(info.kind);
        return result;
      };
      const informer = makeInformer(
        this.kc,
        namespace
          ? `/apis/${group}/${version}/namespaces/${namespace}/${info.plural}`
          : `/apis/${group}/${version}/${info.plural}`,
        list,
      );
      const enqueue = (obj: KubernetesObject) =>
        this.opts.onChange({
          kind: info.kind,
          namespace: obj.metadata?.namespace ?? "default",
          name: obj.metadata?.name ?? "",
        });
      informer.on("add", enqueue);
      informer.on("update", enqueue);
      informer.on("delete", enqueue);
      informer.on("error", (err: unknown) => this.restartLater(info.kind, informer, err));
      this.informers.set(info.kind, informer);
      informer.start().catch((err: unknown) => this.restartLater(info.kind, informer, err));
    }
  }

  /** After an error the informer has stopped: start it again, backing off 0.5 s … 30 s. */
  private restartLater(kind: KindName, informer: HerdInformer, err: unknown): void {
    if (this.stopped) return;
    const n = this.failures.get(kind) ?? 0;
    this.failures.set(kind, n + 1);
    const delay = Math.min(500 * 2 ** n, this.opts.maxRestartDelayMs ?? 30_000);
    this.opts.metrics?.watchRestarts.inc({ kind });
    this.opts.logger.warn(
      { kind, delayMs: delay, err: err instanceof Error ? err.message : String(err) },
      "watch failed; restarting",
    );
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      if (!this.stopped)
        informer.start().catch((e: unknown) => this.restartLater(kind, informer, e));
    }, delay);
    this.restartTimers.add(timer);
  }

  /** True once every kind has been listed at least once. */
  get synced(): boolean {
    return this.listedKinds.size === kinds.length;
  }

  /** The uids of every object the informers hold. */
  uids(): Set<string> {
    const out = new Set<string>();
    for (const informer of this.informers.values())
      for (const obj of informer.list()) if (obj.metadata?.uid) out.add(obj.metadata.uid);
    return out;
  }

  /** Every object the informers hold, for the periodic resync. */
  keys(): ObjectKey[] {
    const out: ObjectKey[] = [];
    for (const [kind, informer] of this.informers)
      for (const obj of informer.list())
        out.push({
          kind,
          namespace: obj.metadata?.namespace ?? "default",
          name: obj.metadata?.name ?? "",
        });
    return out;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.restartTimers) clearTimeout(t);
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }

  get(key: ObjectKey): HerdObject | undefined {
    return this.informers.get(key.kind)?.get(key.name, key.namespace) as HerdObject | undefined;
  }

  private target(obj: HerdObject) {
    return {
      group,
      version,
      namespace: obj.metadata.namespace ?? "default",
      plural: kindInfo(obj.kind as KindName).plural,
      name: obj.metadata.name,
    };
  }

  /**
   * Changes the finalizer list with a merge patch that carries resourceVersion (optimistic
   * concurrency: a concurrent change fails it with 409). The informer's copy is often behind
   * the workflow's status writes, so on a conflict it reads the object afresh and tries again
   * at once, rather than waiting for the watch to catch up through the queue's back-off.
   * `change` returns the new list, or undefined when there is nothing to do.
   */
  private async updateFinalizers(
    obj: HerdObject,
    change: (finalizers: string[]) => string[] | undefined,
  ): Promise<void> {
    let current = obj;
    for (let attempt = 1; ; attempt++) {
      const finalizers = change(current.metadata.finalizers ?? []);
      if (!finalizers) return;
      try {
        await this.custom.patchNamespacedCustomObject(
          {
            ...this.target(current),
            body: { metadata: { resourceVersion: current.metadata.resourceVersion, finalizers } },
            fieldManager: "herd-operator",
          },
          this.mergePatch,
        );
        return;
      } catch (err) {
        if (isNotFound(err)) return; // already gone
        if (!isConflict(err)) throw err;
        if (attempt >= 5)
          throw new Conflict(`${obj.kind} ${obj.metadata.name} keeps changing; will retry`);
      }
      const fresh = await this.read(obj);
      if (!fresh || fresh.metadata.uid !== obj.metadata.uid) return; // gone or replaced
      current = fresh;
    }
  }

  /** The object as the API server has it now (not the informer's copy); undefined if gone. */
  private async read(obj: HerdObject): Promise<HerdObject | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject(this.target(obj))) as HerdObject;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  addFinalizer(obj: HerdObject): Promise<void> {
    return this.updateFinalizers(obj, (fs) =>
      fs.includes(finalizer) ? undefined : [...fs, finalizer],
    );
  }

  removeFinalizer(obj: HerdObject): Promise<void> {
    return this.updateFinalizers(obj, (fs) =>
      fs.includes(finalizer) ? fs.filter((f) => f !== finalizer) : undefined,
    );
  }

  /** Records a core/v1 Event on the object; best effort (a failure is logged, not raised). */
  async event(
    obj: HerdObject,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void> {
    const namespace = obj.metadata.namespace ?? "default";
    const now = new Date();
    try {
      await this.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${obj.metadata.name}.`, namespace },
          involvedObject: {
            apiVersion: obj.apiVersion ?? `${group}/${version}`,
            kind: obj.kind,
            name: obj.metadata.name,
            namespace,
            uid: obj.metadata.uid,
            resourceVersion: obj.metadata.resourceVersion,
          },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: "herd-operator", host: os.hostname() },
          reportingComponent: "herd.dev/operator",
          reportingInstance: os.hostname(),
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (err) {
      this.opts.logger.debug(
        { reason, err: err instanceof Error ? err.message : String(err) },
        "could not record event",
      );
    }
  }
}
