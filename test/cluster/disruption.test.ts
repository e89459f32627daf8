// The three real ways a pod is taken away, each from the component that does it in a real
// cluster: the scheduler preempting for a higher priority, `kubectl drain` through the
// Eviction API, and the controller manager's taint eviction on a NotReady node. In each the
// pod's process gets SIGTERM (its trap writes a marker file) before the pod goes away.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { SchedulingV1Api } from "@kubernetes/client-node";
import type { V1Pod } from "@kubernetes/client-node";
import {
  cleanup,
  cluster,
  createNamespace,
  recordPods,
  shellPod,
  testNode,
  unique,
  waitFor,
} from "./harness.ts";
import type { Cluster } from "./harness.ts";

let c: Cluster;
let ns: string;
let markers: string;
const nodes: string[] = [];
const priorityClasses: string[] = [];

before(async () => {
  c = await cluster();
  ns = await createNamespace(c, "disruption");
  markers = mkdtempSync(path.join(os.tmpdir(), "herd-markers-"));
});
after(async () => {
  await cleanup(c, ns, nodes);
  const scheduling = c.kc.makeApiClient(SchedulingV1Api);
  for (const name of priorityClasses)
    await scheduling.deletePriorityClass({ name }).catch(() => {});
  rmSync(markers, { recursive: true, force: true });
});

async function node(prefix: string, capacity: Record<string, string>) {
  const n = await testNode(c, unique(prefix), capacity);
  nodes.push(n.name);
  return n;
}

/** A pod whose process writes /markers/<name> when it gets SIGTERM, then exits 143. */
function trappingPod(name: string, spec: Partial<V1Pod["spec"]>): V1Pod {
  const script = `trap 'echo SIGTERM > /markers/${name}; exit 143' TERM; while :; do sleep 0.1; done`;
  const pod = shellPod(name, script, {
    volumes: [{ name: "markers", hostPath: { path: markers } }],
    ...spec,
  });
  pod.spec!.containers[0]!.volumeMounts = [{ name: "markers", mountPath: "/markers" }];
  return pod;
}

const running = (name: string) =>
  waitFor(`pod ${name} running`, async () => {
    const pod = await c.core.readNamespacedPod({ name, namespace: ns });
    return pod.status?.phase === "Running" ? pod : undefined;
  });

const gone = (name: string) =>
  waitFor(`pod ${name} gone`, async () => {
    try {
      await c.core.readNamespacedPod({ name, namespace: ns });
      return undefined;
    } catch (err) {
      return (err as { code?: number }).code === 404 ? true : undefined;
    }
  });

const marker = (name: string) => readFileSync(path.join(markers, name), "utf8").trim();

function disruptionReasons(versions: V1Pod[]): string[] {
  return versions.flatMap((p) =>
    (p.status?.conditions ?? [])
      .filter((cond) => cond.type === "DisruptionTarget" && cond.status === "True")
      .map((cond) => cond.reason ?? ""),
  );
}

test("a higher-priority pod makes the scheduler preempt a lower one", async () => {
  const scheduling = c.kc.makeApiClient(SchedulingV1Api);
  const low = unique("low");
  const high = unique("high");
  for (const [name, value] of [
    [low, 100],
    [high, 1000],
  ] as const) {
    await scheduling.createPriorityClass({ body: { metadata: { name }, value } });
    priorityClasses.push(name);
  }
  const n = await node("preempt", { cpu: "1", memory: "1Gi" });
  const requests = { resources: { requests: { cpu: "600m" } } };
  const victim = trappingPod("victim", { ...n.placement, priorityClassName: low });
  Object.assign(victim.spec!.containers[0]!, requests);
  await c.core.createNamespacedPod({ namespace: ns, body: victim });
  await running("victim");

  const record = await recordPods(c, ns);
  const preemptor = shellPod("preemptor", "sleep 300", { ...n.placement, priorityClassName: high });
  Object.assign(preemptor.spec!.containers[0]!, requests);
  await c.core.createNamespacedPod({ namespace: ns, body: preemptor });
  const winner = await running("preemptor");
  await gone("victim");
  await record.deleted("victim");
  record.stop();

  assert.equal(winner.spec?.nodeName, n.name);
  assert.ok(
    disruptionReasons(record.versions("victim")).includes("PreemptionByScheduler"),
    "the victim carried DisruptionTarget with reason PreemptionByScheduler",
  );
  assert.equal(marker("victim"), "SIGTERM");
});

test("kubectl drain evicts a node's pods through the Eviction API", async () => {
  const n = await node("drain", { cpu: "2", memory: "1Gi" });
  await c.core.createNamespacedPod({ namespace: ns, body: trappingPod("drained", n.placement) });
  await running("drained");
  const record = await recordPods(c, ns);
  const drain = await c.kubectl("drain", n.name, "--force", "--ignore-daemonsets", "--timeout=60s");
  assert.equal(drain.code, 0, drain.stderr);
  assert.match(drain.stdout, /evicting pod .*drained/);
  await gone("drained");
  await record.deleted("drained");
  record.stop();
  assert.ok(
    disruptionReasons(record.versions("drained")).includes("EvictionByEvictionAPI"),
    "the pod carried DisruptionTarget with reason EvictionByEvictionAPI",
  );
  assert.equal(marker("drained"), "SIGTERM");
  const cordoned = await c.core.readNode({ name: n.name });
  assert.equal(cordoned.spec?.unschedulable, true);
});

test("a NotReady node loses its pods through the controller manager's taint eviction", async () => {
  const n = await node("notready", { cpu: "2", memory: "1Gi" });
  const tolerations = [
    ...n.placement.tolerations,
    ...["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"].map((key) => ({
      key,
      operator: "Exists",
      effect: "NoExecute",
      tolerationSeconds: 2,
    })),
  ];
  await c.core.createNamespacedPod({
    namespace: ns,
    body: trappingPod("stranded", { ...n.placement, tolerations }),
  });
  await running("stranded");
  const record = await recordPods(c, ns);
  await c.setNodeReady(n.name, false);
  await gone("stranded");
  await record.deleted("stranded");
  record.stop();

  // not-ready, or unreachable once the node has also missed its heartbeats for the node
  // monitor's grace period (20 s), which a slow eviction can outlast.
  const tainted = await c.core.readNode({ name: n.name });
  assert.ok(
    tainted.spec?.taints?.some(
      (t) =>
        ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"].includes(t.key) &&
        t.effect === "NoExecute",
    ),
    `node carries the not-ready (or unreachable) NoExecute taint: ${JSON.stringify(tainted.spec?.taints)}`,
  );
  assert.ok(
    disruptionReasons(record.versions("stranded")).includes("DeletionByTaintManager"),
    `the pod carried DisruptionTarget with reason DeletionByTaintManager: ${JSON.stringify(record.versions("stranded").map((p) => [p.metadata?.deletionTimestamp, p.status?.conditions?.map((x) => [x.type, x.status, x.reason])]))}`,
  );
  assert.equal(marker("stranded"), "SIGTERM");
});
