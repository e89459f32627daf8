// Pods on the node agent against the real control plane: exit codes, logs, env and volumes.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
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
import type { V1Pod } from "@kubernetes/client-node";

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

test("herd's own image runs from the checkout through agent.yaml's mapping", async () => {
  const name = "herd-image";
  await c.core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name },
      spec: {
        ...node.placement,
        restartPolicy: "Never",
        containers: [
          {
            name: "herd",
            image: "ghcr.io/example/herd:dev",
            command: ["node", "/app/bin/herd.mjs", "version"],
          },
        ],
      },
    },
  });
  const pod = await finished(name);
  assert.equal(pod.status?.phase, "Succeeded");
  const logs = await c.kubectl("logs", "-n", ns, name);
  assert.match(logs.stdout, /^herd \d+\.\d+\.\d+/);
});

test("OnFailure restarts a failed container; a PVC folder outlives the attempt", async () => {
  const name = "retries";
  const claim = unique("claim");
  await c.core.createNamespacedPersistentVolumeClaim({
    namespace: ns,
    body: {
      metadata: { name: claim },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
    },
  });
  // The first attempt leaves a mark on the claim and fails; the second sees it and succeeds.
  const script = "if [ -f /data/tried ]; then echo second; exit 0; fi; touch /data/tried; exit 1";
  await c.core.createNamespacedPod({
    namespace: ns,
    body: shellPod(name, script, {
      ...node.placement,
      restartPolicy: "OnFailure",
      volumes: [{ name: "data", persistentVolumeClaim: { claimName: claim } }],
      containers: [
        {
          name: "main",
          image: "busybox",
          command: ["sh", "-c", script],
          volumeMounts: [{ name: "data", mountPath: "/data" }],
        },
      ],
    }),
  });
  const pod = await finished(name);
  assert.equal(pod.status?.phase, "Succeeded");
  const status = pod.status?.containerStatuses?.[0];
  assert.equal(status?.restartCount, 1);
  assert.equal(status?.lastState?.terminated?.exitCode, 1);
  assert.equal(status?.state?.terminated?.exitCode, 0);
});

test("a process that ignores SIGTERM is killed when the grace period ends, not before", async () => {
  const name = "stubborn";
  // $$$$ is the shell's $$: Kubernetes expands $$ in a command to $.
  const script = "trap '' TERM; echo $$$$ > /tmp-pid/pid; while :; do sleep 0.1; done";
  const pidDir = mkdtempSync(path.join(os.tmpdir(), "herd-pid-"));
  await c.core.createNamespacedPod({
    namespace: ns,
    body: shellPod(name, script, {
      ...node.placement,
      terminationGracePeriodSeconds: 4,
      volumes: [{ name: "pid", hostPath: { path: pidDir } }],
      containers: [
        {
          name: "main",
          image: "busybox",
          command: ["sh", "-c", script],
          volumeMounts: [{ name: "pid", mountPath: "/tmp-pid" }],
        },
      ],
    }),
  });
  const pid = await waitFor("the pod's pid file", async () => {
    const text = readFileSync(`${pidDir}/pid`, "utf8").trim();
    return text ? Number(text) : undefined;
  });
  const alive = (p: number) => {
    try {
      process.kill(p, 0);
      return true;
    } catch {
      return false;
    }
  };
  assert.ok(alive(pid));
  await c.core.deleteNamespacedPod({ name, namespace: ns });
  // Within the grace period the pod is Terminating and its process, deaf to SIGTERM, lives.
  await new Promise((r) => setTimeout(r, 1000));
  const terminating = await c.core.readNamespacedPod({ name, namespace: ns });
  assert.ok(terminating.metadata?.deletionTimestamp);
  assert.ok(alive(pid), "the process lives until the grace period ends");
  await waitFor("pod gone", async () => {
    try {
      await c.core.readNamespacedPod({ name, namespace: ns });
      return undefined;
    } catch (err) {
      return (err as { code?: number }).code === 404 ? true : undefined;
    }
  });
  assert.equal(alive(pid), false, "the process was killed before the pod went away");
  rmSync(pidDir, { recursive: true, force: true });
});

test("nvidia.com/gpu is scheduled against node capacity and each pod sees its own devices", async () => {
  const gpuNode = await testNode(c, unique("gpu-node"), {
    cpu: "4",
    memory: "4Gi",
    "nvidia.com/gpu": "2",
  });
  try {
    const gpuPod = (name: string): V1Pod =>
      shellPod(name, 'echo "devices=$CUDA_VISIBLE_DEVICES"; sleep 30', {
        ...gpuNode.placement,
        containers: [
          {
            name: "main",
            image: "busybox",
            command: ["sh", "-c", 'echo "devices=$CUDA_VISIBLE_DEVICES"; sleep 30'],
            resources: { limits: { "nvidia.com/gpu": "1" } },
          },
        ],
      });
    // The third pod only once the first two are bound: a node just added may still carry
    // its not-ready taint, and pods the scheduler retries later could lose to a newer one.
    for (const name of ["gpu-a", "gpu-b"])
      await c.core.createNamespacedPod({ namespace: ns, body: gpuPod(name) });
    await waitFor("the first two GPU pods bound", async () => {
      const pods = await Promise.all(
        ["gpu-a", "gpu-b"].map((name) => c.core.readNamespacedPod({ name, namespace: ns })),
      );
      return pods.every((p) => p.spec?.nodeName) ? true : undefined;
    });
    await c.core.createNamespacedPod({ namespace: ns, body: gpuPod("gpu-c") });
    const devices = await waitFor("two GPU pods printing their devices", async () => {
      const out = await Promise.all(["gpu-a", "gpu-b"].map((n) => c.kubectl("logs", "-n", ns, n)));
      const found = out.map((o) => /devices=(\S*)/.exec(o.stdout)?.[1]);
      return found.every((d) => d !== undefined) ? found : undefined;
    });
    assert.deepEqual([...devices].sort(), ["0", "1"]);
    const third = await waitFor("the third GPU pod to be found unschedulable", async () => {
      const pod = await c.core.readNamespacedPod({ name: "gpu-c", namespace: ns });
      const cond = pod.status?.conditions?.find((x) => x.type === "PodScheduled");
      return cond?.status === "False" ? cond : undefined;
    });
    assert.match(third.message ?? "", /Insufficient nvidia.com\/gpu/);
  } finally {
    for (const name of ["gpu-a", "gpu-b", "gpu-c"]) {
      await c.core
        .deleteNamespacedPod({ name, namespace: ns, gracePeriodSeconds: 0 })
        .catch(() => {});
    }
    await c.removeNode(gpuNode.name);
  }
});

test("a pod talks to the API as its service account through the KUBECONFIG it is given", async () => {
  const name = "whoami";
  await c.core.createNamespacedPod({
    namespace: ns,
    body: shellPod(
      name,
      "kubectl auth whoami -o jsonpath='{.status.userInfo.username}'",
      node.placement,
    ),
  });
  const pod = await finished(name);
  const logs = await c.kubectl("logs", "-n", ns, name);
  assert.equal(pod.status?.phase, "Succeeded", logs.stdout);
  assert.equal(logs.stdout.trim(), `system:serviceaccount:${ns}:default`);
});
