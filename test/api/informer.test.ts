// The operator's watches survive the API server going away: a TCP proxy between operator
// and API server drops every connection and refuses new ones for a while; objects created
// meanwhile are still reconciled once the informers have restarted and relisted.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { trainingJobObject } from "../crds/cases.ts";
import { clusterEnv, skipReason } from "./env.ts";
import {
  createObject,
  getObject,
  harness,
  silent,
  sleep,
  waitFor,
  type Harness,
} from "./helpers.ts";
import { Operator } from "../../operator/operator.ts";
import { TemporalWorkflows } from "../../operator/temporal.ts";

const env = await clusterEnv();
let h: Harness;

/** A loopback TCP proxy that can drop everything and refuse connections while down. */
class Proxy {
  private readonly sockets = new Set<net.Socket>();
  private down = false;
  private readonly server: net.Server;
  port = 0;
  constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => {
      if (this.down) return client.destroy();
      const upstream = net.connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("error", () => {});
        s.on("close", () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
  }
  listen(): Promise<void> {
    return new Promise((resolve) =>
      this.server.listen(0, "127.0.0.1", () => {
        this.port = (this.server.address() as net.AddressInfo).port;
        resolve();
      }),
    );
  }
  cut(): void {
    this.down = true;
    for (const s of this.sockets) s.destroy();
  }
  restore(): void {
    this.down = false;
  }
  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

before(async () => {
  if (env) h = await harness(env, "informer");
});
after(async () => {
  if (env) await h.close();
});

test(
  "informers restart after the API server connection drops, and catch up",
  { skip: env ? false : skipReason },
  async () => {
    const cluster = env!.kubeconfig.getCurrentCluster()!;
    const target = new URL(cluster.server);
    const proxy = new Proxy({ host: target.hostname, port: Number(target.port) });
    await proxy.listen();
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ ...cluster, server: `https://127.0.0.1:${proxy.port}` }],
      users: [env!.kubeconfig.getCurrentUser()!],
      contexts: [
        { name: "proxied", cluster: cluster.name, user: env!.kubeconfig.getCurrentUser()!.name },
      ],
      currentContext: "proxied",
    });
    const op = new Operator({
      kubeconfig: kc,
      workflows: new TemporalWorkflows(h.client, h.taskQueue),
      logger: silent,
      namespace: h.namespace,
    });
    await op.start();
    try {
      await waitFor("operator ready", async () => (op.ready ? true : undefined));
      await createObject(env!, h.namespace, trainingJobObject("before-cut"));
      await waitFor("first object reconciled", async () =>
        (await getObject(env!, "TrainingJob", h.namespace, "before-cut"))?.status
          ?.observedGeneration === 1
          ? true
          : undefined,
      );
      proxy.cut();
      await createObject(env!, h.namespace, trainingJobObject("during-cut"));
      await sleep(1500);
      const during = await getObject(env!, "TrainingJob", h.namespace, "during-cut");
      assert.equal(during?.metadata.finalizers, undefined, "the operator cannot see it yet");
      proxy.restore();
      await waitFor(
        "object created during the outage reconciled",
        async () =>
          (await getObject(env!, "TrainingJob", h.namespace, "during-cut"))?.status
            ?.observedGeneration === 1
            ? true
            : undefined,
        60_000,
      );
      assert.ok(op.metrics.watchRestarts.get({ kind: "TrainingJob" }) >= 1);
    } finally {
      await op.stop();
      await proxy.close();
    }
  },
);
