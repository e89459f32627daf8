// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: the
// leader renews the Lease every retry period; a standby takes it over once it has seen the
// same Lease unchanged for a whole lease duration (time measured on the standby's own clock,
// so the replicas' clocks need not agree); every write carries the resourceVersion it read,
// so of two replicas racing for an expired Lease exactly one wins. A leader that cannot renew
// within the renew deadline stops leading, before a standby may take over.
import { setTimeout as sleep } from "node:timers/promises";
import {
  ApiException,
  CoordinationV1Api,
  V1MicroTime,
  type KubeConfig,
  type V1Lease,
} from "@kubernetes/client-node";
import type { Logger } from "pino";

export interface LeaderElectionOptions {
  /** Namespace and name of the Lease. */
  namespace: string;
  name: string;
  /** This replica's name in the Lease (holderIdentity): unique per process. */
  identity: string;
  /** How long a standby waits on an unchanged Lease before taking it over. */
  leaseDurationMs?: number;
  /** How long the leader keeps trying to renew before it gives up leading. */
  renewDeadlineMs?: number;
  /** How often the leader renews and a standby looks again. */
  retryPeriodMs?: number;
  logger: Logger;
}

const isStatus = (err: unknown, code: number) => err instanceof ApiException && err.code === code;

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  /** The Lease as last read, and when (on this clock) it last changed. */
  private observed?: V1Lease;
  private observedAt = 0;
  private readonly stopping = new AbortController();
  private leading = false;
  /** The acquire or renew loop running now, so `release` can wait for its last write. */
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    kc: KubeConfig,
    private readonly opts: LeaderElectionOptions,
  ) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (!(this.renewDeadlineMs < this.leaseDurationMs))
      throw new Error(
        `leader election: the renew deadline (${this.renewDeadlineMs} ms) must be shorter than the lease duration (${this.leaseDurationMs} ms)`,
      );
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Waits until this replica holds the Lease; false if `stop` came first. */
  acquire(): Promise<boolean> {
    const loop = this.acquireLoop();
    this.running = loop.catch(() => {});
    return loop;
  }

  private async acquireLoop(): Promise<boolean> {
    let waiting = false;
    while (!this.stopping.signal.aborted) {
      if (await this.tryAcquireOrRenew()) {
        this.leading = true;
        this.opts.logger.info({ lease: this.opts.name, identity: this.opts.identity }, "leading");
        return true;
      }
      if (!waiting) {
        this.opts.logger.info(
          { lease: this.opts.name, holder: this.observed?.spec?.holderIdentity },
          "standing by: another replica leads",
        );
        waiting = true;
      }
      await this.pause();
    }
    return false;
  }

  /**
   * Renews the Lease every retry period while leading; resolves with the reason once this
   * replica has lost the Lease (or `stop` was called).
   */
  keepLeading(): Promise<string> {
    const loop = this.renewLoop();
    this.running = loop.catch(() => {});
    return loop;
  }

  private async renewLoop(): Promise<string> {
    let lastRenew = Date.now();
    while (!this.stopping.signal.aborted) {
      await this.pause();
      if (this.stopping.signal.aborted) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
        continue;
      }
      const holder = this.observed?.spec?.holderIdentity;
      if (holder && holder !== this.opts.identity) {
        this.leading = false;
        return `the lease is held by ${holder}`;
      }
      if (Date.now() - lastRenew > this.renewDeadlineMs) {
        this.leading = false;
        return `could not renew the lease for ${this.renewDeadlineMs} ms`;
      }
    }
    return "stopped";
  }

  /** Stops acquiring or renewing. */
  stop(): void {
    this.stopping.abort();
  }

  /**
   * Gives the Lease up (after the caller has stopped its work), so a standby takes over at
   * once instead of after a lease duration. Best effort: a failure leaves the Lease to expire.
   */
  async release(): Promise<void> {
    this.stop();
    await this.running; // a renew in flight would make our write conflict
    if (!this.leading) return;
    this.leading = false;
    const { name, namespace, identity } = this.opts;
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const lease = attempt === 1 && this.observed ? this.observed : await this.read();
        if (lease?.spec?.holderIdentity !== identity) return; // not ours any more
        await this.api.replaceNamespacedLease({
          name,
          namespace,
          body: {
            ...lease,
            spec: {
              ...lease.spec,
              holderIdentity: "",
              leaseDurationSeconds: 1,
              renewTime: new V1MicroTime(),
            },
          },
        });
        this.opts.logger.info({ lease: name }, "released the lease");
        return;
      } catch (err) {
        if (isStatus(err, 409)) continue; // changed since we read it: read again
        this.opts.logger.warn({ err: String(err) }, "could not release the lease; it will expire");
        return;
      }
    }
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({
        name: this.opts.name,
        namespace: this.opts.namespace,
      });
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  private async pause(): Promise<void> {
    await sleep(this.retryPeriodMs, undefined, { signal: this.stopping.signal }).catch(() => {});
  }

  /** One round: create the Lease, renew ours, or take over an expired one. True if we hold it. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.opts;
    const now = new V1MicroTime();
    const leaseDurationSeconds = Math.ceil(this.leaseDurationMs / 1000);
    let current: V1Lease;
    try {
      current = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isStatus(err, 404)) return this.failed("read", err);
      try {
        this.remember(
          await this.api.createNamespacedLease({
            namespace,
            body: {
              metadata: { name, namespace },
              spec: {
                holderIdentity: identity,
                leaseDurationSeconds,
                acquireTime: now,
                renewTime: now,
                leaseTransitions: 0,
              },
            },
          }),
        );
        return true;
      } catch (e) {
        return isStatus(e, 409) ? false : this.failed("create", e);
      }
    }
    this.remember(current);
    const spec = current.spec ?? {};
    const ours = spec.holderIdentity === identity;
    // The holder's own duration, not ours: a release sets it to one second.
    const duration = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    const expired = !spec.holderIdentity || Date.now() > this.observedAt + duration;
    if (!ours && !expired) return false;
    try {
      this.remember(
        await this.api.replaceNamespacedLease({
          name,
          namespace,
          // metadata carries the resourceVersion just read: a concurrent write fails with 409.
          body: {
            ...current,
            spec: {
              ...spec,
              holderIdentity: identity,
              leaseDurationSeconds,
              renewTime: now,
              ...(!ours && {
                acquireTime: now,
                leaseTransitions: (spec.leaseTransitions ?? 0) + (spec.holderIdentity ? 1 : 0),
              }),
            },
          },
        }),
      );
      return true;
    } catch (err) {
      return isStatus(err, 409) ? false : this.failed("update", err);
    }
  }

  private remember(lease: V1Lease): void {
    if (lease.metadata?.resourceVersion !== this.observed?.metadata?.resourceVersion)
      this.observedAt = Date.now();
    this.observed = lease;
  }

  private failed(what: string, err: unknown): false {
    this.opts.logger.warn(
      { lease: this.opts.name, err: err instanceof Error ? err.message : String(err) },
      `leader election: could not ${what} the lease`,
    );
    return false;
  }
}
