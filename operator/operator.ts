// The operator: informers feed a work queue, N loops run the reconcile, and a small HTTP
// server answers /metrics, /healthz and /readyz. Stateless: any number of replicas may run,
// since starting is idempotent by workflow id and status is written by workflows only.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { KubeObjects } from "./kube.ts";
import { operatorMetrics, type OperatorMetrics } from "./metrics.ts";
import { WorkQueue } from "./queue.ts";
import { Reconciler, keyString, parseKey, type WorkflowAccess } from "./reconcile.ts";

export interface OperatorOptions {
  kubeconfig: KubeConfig;
  workflows: WorkflowAccess;
  logger: Logger;
  /** Watch only this namespace (all when undefined). */
  namespace?: string;
  /** Reconciles run at once (different keys). */
  concurrency?: number;
  /** Port for /metrics, /healthz, /readyz; 0 picks a free one; undefined serves none. */
  httpPort?: number;
  httpHost?: string;
  /** Every this often, every known object is reconciled again (level-based safety net). */
  resyncMs?: number;
  /**
   * Set when replicas elect a leader: until `startReconciling`, this replica is a standby
   * that serves /metrics and /healthz, and /readyz answers 200 "standby".
   */
  standby?: boolean;
}

export class Operator {
  readonly queue = new WorkQueue();
  readonly metrics: OperatorMetrics;
  readonly kube: KubeObjects;
  readonly reconciler: Reconciler;
  private server?: http.Server;
  private loops: Promise<void>[] = [];
  private resyncTimer?: NodeJS.Timeout;
  private readonly log: Logger;
  private reconciling = false;

  constructor(private readonly opts: OperatorOptions) {
    this.log = opts.logger;
    this.metrics = operatorMetrics(
      () => this.queue.depth,
      () => (this.reconciling ? 1 : 0),
    );
    this.kube = new KubeObjects(opts.kubeconfig, {
      onChange: (key) => this.queue.add(keyString(key)),
      logger: this.log,
      metrics: this.metrics,
      namespace: opts.namespace,
    });
    this.reconciler = new Reconciler(this.kube, opts.workflows, this.log, this.metrics);
  }

  /** Ready when every kind has been listed once, so reconciles see the whole picture. */
  get ready(): boolean {
    return this.kube.synced;
  }

  /** The address /metrics is served on, once started. */
  get httpAddress(): string | undefined {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a ? `http://${a.address}:${a.port}` : undefined;
  }

  /** Serves HTTP (when a port is set) and starts reconciling, unless this is a standby. */
  async start(): Promise<void> {
    if (this.opts.httpPort !== undefined) await this.serveHttp(this.opts.httpPort);
    if (!this.opts.standby) this.startReconciling();
  }

  /** Starts the informers, the reconcile loops and the resync: a standby that now leads. */
  startReconciling(): void {
    if (this.reconciling) return;
    this.reconciling = true;
    this.kube.start();
    const n = this.opts.concurrency ?? 64;
    for (let i = 0; i < n; i++) this.loops.push(this.loop());
    const resync = this.opts.resyncMs ?? 300_000;
    this.resyncTimer = setInterval(() => {
      if (this.kube.synced) this.reconciler.prune(this.kube.uids());
      for (const key of this.kube.keys()) this.queue.add(keyString(key));
    }, resync);
    this.resyncTimer.unref();
    this.log.info({ concurrency: n, http: this.httpAddress }, "operator started");
  }

  private async loop(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const { kind } = parseKey(key);
      const t0 = performance.now();
      try {
        const result = await this.reconciler.reconcile(parseKey(key));
        this.queue.forget(key);
        if (result.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
        this.metrics.reconciles.inc({ kind, result: "ok" });
      } catch (err) {
        const delayMs = this.queue.addRateLimited(key);
        this.metrics.reconciles.inc({ kind, result: "error" });
        this.metrics.errors.inc({ kind });
        this.log.warn(
          { key, delayMs, err: err instanceof Error ? err.message : String(err) },
          "reconcile failed; will retry",
        );
      } finally {
        this.metrics.latency.observe((performance.now() - t0) / 1000, { kind });
        this.queue.done(key);
      }
    }
  }

  private serveHttp(port: number): Promise<void> {
    this.server = http.createServer((req, res) => {
      const reply = (code: number, body: string, type = "text/plain; charset=utf-8") => {
        res.writeHead(code, { "content-type": type });
        res.end(body);
      };
      if (req.url === "/metrics")
        reply(200, this.metrics.registry.render(), "text/plain; version=0.0.4; charset=utf-8");
      else if (req.url === "/healthz") reply(200, "ok\n");
      else if (req.url === "/readyz" && !this.reconciling) reply(200, "standby\n");
      else if (req.url === "/readyz")
        reply(this.ready ? 200 : 503, this.ready ? "ok\n" : "informers not synced\n");
      else reply(404, "not found\n");
    });
    return new Promise((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(port, this.opts.httpHost ?? "0.0.0.0", () => resolve());
    });
  }

  /** Graceful stop: no new work, reconciles in flight finish, watches and server close. */
  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    this.queue.shutDown();
    await this.kube.stop();
    await Promise.all(this.loops);
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.log.info("operator stopped");
  }
}
