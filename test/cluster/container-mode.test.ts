// The node agent's docker runtime against the real control plane and a real Docker engine:
// pods run as containers of their image (herd/base:bookworm, which provisioning builds),
// with their command, env, volumes and memory limit; logs, deletion and OOM as the kubelet
// reports them. Without an engine every test is skipped under a loud banner (provisioning
// makes one here).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { V1Container, V1Pod, V1Volume } from "@kubernetes/client-node";
import { docker, noDockerReason } from "./docker.ts";
import { cleanup, cluster, createNamespace, testNode, unique, waitFor } from "./harness.ts";
import type { Cluster } from "./harness.ts";

const image = "herd/base:bookworm";
let c: Cluster;
let ns: string;
let node: Awaited<ReturnType<typeof testNode>>;
let shared: string;

const skip = await noDockerReason();

before(async () => {
  if (skip) return;
  c = await cluster();
  ns = await createNamespace(c, "containers");
  // A folder every container of the node sees read-only, as a node's shared filesystem.
  shared = mkdtempSync(path.join(os.tmpdir(), "herd-node-shared-"));
  node = await testNode(
    c,
    unique("docker-node"),
    { cpu: "4", memory: "4Gi" },
    { runtime: "docker", hostMounts: [shared] },
  );
});
after(async () => {
  if (c)
    await cleanup(
      c,
      ns,
      [node?.name].filter((n): n is string => !!n),
    );
  if (shared) rmSync(shared, { recursive: true, force: true });
});

/** A pod of one container "main" of the base image, on the docker node. */
const pod = (name: string, container: Partial<V1Container>, volumes: V1Volume[] = []): V1Pod => ({
  metadata: { name },
  spec: {
    restartPolicy: "Never",
    terminationGracePeriodSeconds: 10,
    ...node.placement,
    containers: [{ name: "main", image, ...container }],
    volumes,
  },
});

const finished = (name: string, timeoutMs = 60_000) =>
  waitFor(
    `pod ${name} to finish`,
    async () => {
      const p = await c.core.readNamespacedPod({ name, namespace: ns });
      const phase = p.status?.phase;
      return phase === "Succeeded" || phase === "Failed" ? p : undefined;
    },
    timeoutMs,
  );

const containersOf = async (uid: string) =>
  (await docker(["ps", "-aq", "--filter", `label=herd.dev/pod-uid=${uid}`])).stdout.trim();

test("the node reports the Docker engine as its container runtime", { skip }, async () => {
  const n = await c.core.readNode({ name: node.name });
  assert.match(n.status?.nodeInfo?.containerRuntimeVersion ?? "", /^docker:\/\/\d+\./);
});

test(
  "a pod runs in its image: command, env, working dir, volumes and host network; kubectl logs shows it",
  { skip },
  async () => {
    await c.core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "settings" }, data: { "greeting.txt": "hi from a configmap" } },
    });
    const name = "in-image";
    const script = [
      '. /etc/os-release; echo "os=$VERSION_CODENAME"',
      'echo "in-docker=$(test -f /.dockerenv && echo yes)"',
      'echo "pod=$POD_NAME greeting=$GREETING cwd=$(pwd)"',
      'echo "configmap=$(cat /etc/settings/greeting.txt)"',
      'echo "shared=$(cat ' + shared + '/note.txt)"',
      'echo scratch >/scratch/file && echo "scratch=$(cat /scratch/file)"',
      // Host networking: the apiserver's loopback port answers from inside.
      "exec 3<>/dev/tcp/127.0.0.1/$KUBERNETES_SERVICE_PORT && echo apiserver=reachable",
      "echo to-stderr >&2",
    ].join("; ");
    writeFileSync(path.join(shared, "note.txt"), "seen by every container");
    const created = await c.core.createNamespacedPod({
      namespace: ns,
      body: pod(
        name,
        {
          command: ["bash", "-c", script],
          workingDir: "/etc",
          env: [
            { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "GREETING", value: "hello $(POD_NAME)" },
          ],
          volumeMounts: [
            { name: "settings", mountPath: "/etc/settings", readOnly: true },
            { name: "scratch", mountPath: "/scratch" },
          ],
        },
        [
          { name: "settings", configMap: { name: "settings" } },
          { name: "scratch", emptyDir: {} },
        ],
      ),
    });
    const done = await finished(name);
    const terminated = done.status?.containerStatuses?.[0]?.state?.terminated;
    assert.equal(done.status?.phase, "Succeeded", JSON.stringify(terminated));
    assert.equal(terminated?.reason, "Completed");
    const logs = await c.kubectl("logs", "-n", ns, name);
    assert.equal(logs.code, 0, logs.stderr);
    for (const line of [
      "os=bookworm",
      "in-docker=yes",
      `pod=${name} greeting=hello ${name} cwd=/etc`,
      "configmap=hi from a configmap",
      "shared=seen by every container",
      "scratch=scratch",
      "apiserver=reachable",
      "to-stderr",
    ])
      assert.ok(logs.stdout.includes(line), `"${line}" not in the log:\n${logs.stdout}`);
    // The container is gone once its status is recorded.
    await waitFor("the container removed", async () =>
      (await containersOf(created.metadata!.uid!)) === "" ? true : undefined,
    );
  },
);

test(
  "a container over its memory limit is OOMKilled with exit code 137, as the kubelet reports it",
  { skip },
  async () => {
    const name = "memory-hog";
    const hog = "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1));";
    await c.core.createNamespacedPod({
      namespace: ns,
      body: pod(name, {
        command: ["node", "-e", hog],
        resources: { limits: { memory: "64Mi" }, requests: { memory: "64Mi" } },
      }),
    });
    const done = await finished(name);
    assert.equal(done.status?.phase, "Failed");
    const terminated = done.status?.containerStatuses?.[0]?.state?.terminated;
    assert.equal(terminated?.reason, "OOMKilled", JSON.stringify(terminated));
    assert.equal(terminated?.exitCode, 137);
  },
);

test(
  "deletion: SIGTERM reaches the container, which ends within its grace; the container is removed",
  { skip },
  async () => {
    const out = mkdtempSync(path.join(os.tmpdir(), "herd-sigterm-"));
    chmodSync(out, 0o777);
    const name = "traps-term";
    const script =
      "trap 'echo got-sigterm >/out/term; exit 0' TERM; echo started >/out/up; sleep 600 & wait";
    const created = await c.core.createNamespacedPod({
      namespace: ns,
      body: pod(
        name,
        { command: ["bash", "-c", script], volumeMounts: [{ name: "out", mountPath: "/out" }] },
        [{ name: "out", hostPath: { path: out } }],
      ),
    });
    await waitFor("the container to start", async () =>
      existsSync(path.join(out, "up")) ? true : undefined,
    );
    await c.core.deleteNamespacedPod({ name, namespace: ns, gracePeriodSeconds: 10 });
    await waitFor("the pod to go", async () => {
      const left = await c.core.listNamespacedPod({
        namespace: ns,
        fieldSelector: `metadata.name=${name}`,
      });
      return left.items.length === 0 ? true : undefined;
    });
    assert.equal(readFileSync(path.join(out, "term"), "utf8").trim(), "got-sigterm");
    assert.equal(await containersOf(created.metadata!.uid!), "");
    rmSync(out, { recursive: true, force: true });
  },
);

test(
  "an image the node does not have leaves the pod waiting with ErrImageNeverPull",
  { skip },
  async () => {
    const name = "no-image";
    const missing = `herd/no-such-image:${unique("t")}`;
    await c.core.createNamespacedPod({
      namespace: ns,
      body: pod(name, { image: missing, command: ["true"] }),
    });
    const waiting = await waitFor("ErrImageNeverPull", async () => {
      const p = await c.core.readNamespacedPod({ name, namespace: ns });
      const w = p.status?.containerStatuses?.[0]?.state?.waiting;
      return w?.reason === "ErrImageNeverPull" ? w : undefined;
    });
    assert.match(
      waiting.message ?? "",
      new RegExp(missing.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")),
    );
  },
);

test(
  "a node whose runtime is not process or docker is refused, naming the field",
  { skip },
  async () => {
    await assert.rejects(
      c.addNode({
        name: unique("bad-node"),
        capacity: { cpu: "1" },
        runtime: "podman" as "docker",
      }),
      /node\.runtime: .*podman.* is not one of process, docker/,
    );
  },
);
