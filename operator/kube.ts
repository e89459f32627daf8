// The operator's view of Kubernetes: one informer per herd kind (list, then watch from the
// list's resourceVersion; relist after 410 Gone; re-watch when a watch times out; restart with
// back-off after any other error), finalizer patches with optimistic concurrency, and Events.
import os from "node:os";
import {
  ApiException,
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

  /** A merge patch carrying resourceVersion: it fails with 409 if the object moved on. */
  private async patchFinalizers(obj: HerdObject, finalizers: string[]): Promise<void> {
    try {
      await this.custom.patchNamespacedCustomObject(
        {
          group,
          version,
          namespace: obj.metadata.namespace ?? "default",
          plural: kindInfo(obj.kind as KindName).plural,
          name: obj.metadata.name,
          body: { metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers } },
          fieldManager: "herd-operator",
        },
        this.mergePatch,
      );
    } catch (err) {
      if (err instanceof ApiException && err.code === 409)
        throw new Conflict(`${obj.kind} ${obj.metadata.name} changed meanwhile; will retry`);
      if (err instanceof ApiException && err.code === 404) return; // already gone
      throw err;
    }
  }

  addFinalizer(obj: HerdObject): Promise<void> {
    return this.patchFinalizers(obj, [...(obj.metadata.finalizers ?? []), finalizer]);
  }

  removeFinalizer(obj: HerdObject): Promise<void> {
    return this.patchFinalizers(
      obj,
      (obj.metadata.finalizers ?? []).filter((f) => f !== finalizer),
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
