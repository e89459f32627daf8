// Pods on the node agent against the real control plane: exit codes, logs, env and volumes.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import {
  cleanup,
  cluster,
  createNamespace,
  shellPod,
  testNode,
  unique,
  waitFor,
} from "./harness.ts";
import type { Cluster } from "./harness.ts";

let c: Cluster;
let ns: string;
let node: Awaited<ReturnType<typeof testNode>>;

before(async () => {
  c = await cluster();
  ns = await createNamespace(c, "pods");
  node = await testNode(c, unique("pods-node"), { cpu: "4", memory: "4Gi" });
});
after(async () => cleanup(c, ns, [node.name]));

const finished = (name: string) =>
  waitFor(`pod ${name} to finish`, async () => {
    const pod = await c.core.readNamespacedPod({ name, namespace: ns });
    const phase = pod.status?.phase;
    return phase === "Succeeded" || phase === "Failed" ? pod : undefined;
  });

test("a pod that exits 3 ends Failed with exit code 3, and kubectl logs shows its output", async () => {
  const name = "exits-3";
  const script = 'echo "hello from $POD_NAME on $NODE_NAME"; echo to-stderr >&2; exit 3';
  await c.core.createNamespacedPod({
    namespace: ns,
    body: shellPod(name, script, {
      ...node.placement,
      containers: [
        {
          name: "main",
          image: "busybox",
          command: ["sh", "-c", script],
          env: [
            { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
          ],
        },
      ],
    }),
  });
  const pod = await finished(name);
  assert.equal(pod.status?.phase, "Failed");
  const terminated = pod.status?.containerStatuses?.[0]?.state?.terminated;
  assert.equal(terminated?.exitCode, 3);
  assert.equal(terminated?.reason, "Error");

  const logs = await c.kubectl("logs", "-n", ns, name);
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, new RegExp(`hello from ${name} on ${node.name}`));
  assert.match(logs.stdout, /to-stderr/);
  const tail = await c.kubectl("logs", "-n", ns, name, "--tail=1");
  assert.equal(tail.stdout.trim(), "to-stderr");
});

test("a pod that exits 0 Succeeds; ConfigMap, Secret and emptyDir volumes are folders", async () => {
  await c.core.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: "settings" }, data: { "greeting.txt": "hi from a configmap" } },
  });
  await c.core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: "token" }, stringData: { value: "s3cr3t" } },
  });
  const name = "reads-volumes";
  const script =
    "cat /etc/settings/greeting.txt; echo; cat /etc/token/value; echo; " +
    "echo scratch > /scratch/f && cat /scratch/f; echo cwd=$(pwd)";
  await c.core.createNamespacedPod({
    namespace: ns,
    body: shellPod(name, script, {
      ...node.placement,
      volumes: [
        { name: "settings", configMap: { name: "settings" } },
        { name: "token", secret: { secretName: "token" } },
        { name: "scratch", emptyDir: {} },
      ],
      containers: [
        {
          name: "main",
          image: "busybox",
          command: ["sh", "-c", script],
          workingDir: "/scratch",
          volumeMounts: [
            { name: "settings", mountPath: "/etc/settings" },
            { name: "token", mountPath: "/etc/token" },
            { name: "scratch", mountPath: "/scratch" },
          ],
        },
      ],
    }),
  });
  const pod = await finished(name);
  assert.equal(pod.status?.phase, "Succeeded");
  assert.equal(pod.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 0);
  const logs = await c.kubectl("logs", "-n", ns, name);
  assert.match(logs.stdout, /hi from a configmap\ns3cr3t\nscratch\ncwd=.*scratch/);
});
