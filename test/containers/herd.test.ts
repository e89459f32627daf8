// herd's own images, built and run: the operator and the worker as containers of herd/herd
// (testcontainers, host network) against the local control plane, the trainer pods as
// containers of herd/trainer-cpu on a docker-runtime node of the node agent. The end-to-end
// flow (apply, preempt, resume, Succeeded) and the OOM outcome go through them. Without a
// Docker engine every test is skipped under a loud banner (provisioning starts one here).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { SchedulingV1Api } from "@kubernetes/client-node";
import { Connection } from "@temporalio/client";
import { msToTs } from "@temporalio/common/lib/time.js";
import { docker, dockerHost, noDockerReason } from "../cluster/docker.ts";
import { cluster, createNamespace, testNode, unique, waitFor } from "../cluster/harness.ts";
import type { Cluster } from "../cluster/harness.ts";
import { applyCrds, createObject } from "../api/helpers.ts";
import { stepName } from "../../workers/trainer/checkpoint.ts";
import { ended, tinyTrainingJob, trainingJobs, type TrainingStatus } from "../e2e/jobs.ts";
import { buildImage, herdImage, localBase, trainerImage } from "./images.ts";
import { shakespeare } from "../data/files.ts";

// testcontainers reads these when it first talks to the engine. Its reaper (Ryuk) is an image
// from Docker Hub, which cannot be pulled here; this suite stops what it starts itself. The
// engine has no bridge network, whose gateway testcontainers would otherwise look up to find
// the containers' host: with host networking that is loopback.
process.env.DOCKER_HOST ??= dockerHost();
process.env.TESTCONTAINERS_RYUK_DISABLED ??= "true";
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= "127.0.0.1";
const { GenericContainer, Wait } = await import("testcontainers");
type Started = Awaited<ReturnType<InstanceType<typeof GenericContainer>["start"]>>;

const corpus = shakespeare;
/** The images' user (images/Dockerfile). */
const imageUser = 65532;

let c: Cluster;
let ns: string;
let node: Awaited<ReturnType<typeof testNode>>;
let work: string;
let temporalNamespace: string;
const started: Started[] = [];
const low = unique("herd-ctr-low");
const high = unique("herd-ctr-high");

/**
 * The admin kubeconfig with its certificates inline, readable by the images' user: the
 * state folder's own names files (mode 600) that the container could not read.
 */
function containerKubeconfig(dir: string): string {
  const cluster = c.kc.getCurrentCluster()!;
  const user = c.kc.getCurrentUser()!;
  const b64 = (file: string | undefined) => readFileSync(file!).toString("base64");
  const yaml = [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: herd-dev`,
    "  cluster:",
    `    server: ${cluster.server}`,
    `    certificate-authority-data: ${b64(cluster.caFile)}`,
    "users:",
    "- name: admin",
    "  user:",
    `    client-certificate-data: ${b64(user.certFile)}`,
    `    client-key-data: ${b64(user.keyFile)}`,
    "contexts:",
    "- name: herd-dev",
    "  context: { cluster: herd-dev, user: admin }",
    "current-context: herd-dev",
    "",
  ].join("\n");
  const file = path.join(dir, "kubeconfig");
  writeFileSync(file, yaml, { mode: 0o600 });
  try {
    chownSync(file, imageUser, imageUser);
  } catch {
    chmodSync(file, 0o644); // not root: a throwaway plane's key, readable in a private folder
  }
  return file;
}

/** A Temporal namespace of the suite's own, so no other worker on the plane takes its tasks. */
async function privateTemporalNamespace(): Promise<string> {
  const name = unique("herd-containers");
  const connection = await Connection.connect({ address: c.temporalAddress });
  try {
    await connection.workflowService.registerNamespace({
      namespace: name,
      workflowExecutionRetentionPeriod: msToTs("1 day"),
    });
    await waitFor(`Temporal namespace ${name}`, async () =>
      (await connection.workflowService.describeNamespace({ namespace: name })) ? true : undefined,
    );
  } finally {
    await connection.close();
  }
  return name;
}

/** herd/herd running one command (`operator`, `worker`) on the host network. */
async function startHerd(command: string[], ready: RegExp, kubeconfig: string): Promise<Started> {
  const output: string[] = [];
  const starting = new GenericContainer(herdImage)
    .withName(`${command[0]}-${randomBytes(3).toString("hex")}`)
    .withNetworkMode("host")
    .withCommand(command)
    .withEnvironment({
      KUBECONFIG: "/etc/herd/kubeconfig",
      TEMPORAL_ADDRESS: c.temporalAddress,
      TEMPORAL_NAMESPACE: temporalNamespace,
    })
    .withBindMounts([
      { source: kubeconfig, target: "/etc/herd/kubeconfig", mode: "ro" },
      // The worker reads local checkpoint folders (latestCheckpoint) where the trainers wrote them.
      { source: work, target: work, mode: "ro" },
    ])
    // exec: the worker's workflow bundler (swc) materialises its native addon under $HOME=/tmp.
    .withTmpFs({ "/tmp": "rw,exec" })
    .withLogConsumer((stream) => stream.on("data", (d) => output.push(String(d))))
    .withWaitStrategy(Wait.forLogMessage(ready))
    .withStartupTimeout(240_000);
  try {
    const container = await starting.start();
    started.push(container);
    return container;
  } catch (err) {
    throw new Error(
      `herd ${command[0]} container: ${String(err)}; its output:\n${output.join("").slice(-3000)}`,
    );
  }
}

/** A tiny TrainingJob on the docker node, in the trainer image. */
function tinyJob(name: string, over: { steps?: number; memory?: string } = {}) {
  // The trainer runs as the image's user and writes here.
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  return tinyTrainingJob(name, {
    steps: over.steps ?? 20,
    checkpoint: { uri: dir, intervalSteps: 5, keep: 2 },
    resources: {
      image: trainerImage,
      cpu: "1",
      memory: over.memory ?? "1Gi",
      priorityClassName: low,
      ...node.placement,
    },
    retry: { failureLimit: 1, backoffSeconds: 1 },
  });
}

const env = () => ({ kubeconfig: c.kc, kubeconfigPath: c.kubeconfig, temporalAddress: "" });
/** The jobs' status, pods and events in this test's namespace (test/e2e/jobs.ts). */
const jobs = () => trainingJobs(env(), c.core, ns);
const until = (name: string, what: string, ok: (s: TrainingStatus) => boolean) =>
  jobs().until(name, what, ok, 300_000);
const podsOf = (name: string) => jobs().podsOf(name);

const skip = await noDockerReason();

before(async () => {
  if (skip) return;
  for (const [target, tag] of [
    ["herd", herdImage],
    ["trainer", trainerImage],
  ] as const) {
    const built = await buildImage(target, tag);
    console.log(`# built ${built.tag} in ${built.seconds.toFixed(0)} s`);
  }
  c = await cluster();
  await applyCrds(env());
  ns = await createNamespace(c, "herd-ctr");
  work = mkdtempSync(path.join(os.tmpdir(), "herd-containers-"));
  chmodSync(work, 0o755);
  node = await testNode(
    c,
    unique("ctr-node"),
    { cpu: "1", memory: "8Gi" },
    { runtime: "docker", hostMounts: [path.dirname(corpus)] },
  );
  const scheduling = c.kc.makeApiClient(SchedulingV1Api);
  await scheduling.createPriorityClass({ body: { metadata: { name: low }, value: 100 } });
  await scheduling.createPriorityClass({ body: { metadata: { name: high }, value: 100000 } });
  temporalNamespace = await privateTemporalNamespace();
  const kubeconfig = containerKubeconfig(work);
  await startHerd(["worker"], /worker started/, kubeconfig);
  await startHerd(["operator", "--namespace", ns, "--port", "0"], /operator started/, kubeconfig);
});

after(async () => {
  for (const container of started)
    await container.stop({ timeout: 10_000, remove: true }).catch(() => {});
  if (c) {
    await c.core
      .deleteCollectionNamespacedPod({ namespace: ns, gracePeriodSeconds: 1 })
      .catch(() => {});
    if (node) await c.removeNode(node.name).catch(() => {});
    const scheduling = c.kc.makeApiClient(SchedulingV1Api);
    for (const name of [low, high]) await scheduling.deletePriorityClass({ name }).catch(() => {});
    // Objects keep their finalizer once the operator is gone; drop them so the namespace goes.
    for (const name of ["preempt", "oom"])
      await c
        .kubectl(
          "patch",
          "-n",
          ns,
          "trainingjob",
          name,
          "--type=merge",
          "-p",
          '{"metadata":{"finalizers":null}}',
        )
        .catch(() => {});
    await c.core.deleteNamespace({ name: ns }).catch(() => {});
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("herd's images", { skip }, () => {
  test("herd/herd runs as a non-root user with a read-only root filesystem", { skip }, async () => {
    const run = (...args: string[]) =>
      docker(["run", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp", ...args]);
    const version = await run(herdImage, "version");
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /^herd \d+\.\d+\.\d+/);
    const id = await run("--entrypoint", "id", herdImage, "-u");
    assert.equal(id.stdout.trim(), String(imageUser));
  });

  test("herd/trainer-cpu loads the engine and carries no compiler", { skip }, async () => {
    const backends = await docker(["run", "--rm", "--read-only", "--tmpfs", "/tmp", trainerImage]);
    assert.equal(backends.code, 0, backends.stderr);
    assert.match(backends.stdout, /cpu/);
    const tools = await docker([
      "run",
      "--rm",
      "--entrypoint",
      "sh",
      trainerImage,
      "-c",
      "command -v cmake g++ c++ ninja || echo none",
    ]);
    assert.equal(tools.stdout.trim(), "none");
  });
});

describe("end to end in containers", { skip }, () => {
  test(
    "apply → preempted mid-run → resumed → Succeeded, every part a container",
    { skip },
    async () => {
      await createObject(env(), ns, tinyJob("preempt", { steps: 200 }));
      await until("preempt", "step ≥ 20", (s) => (s.step ?? 0) >= 20);
      const [victim] = await podsOf("preempt");
      assert.ok(victim, "a trainer pod runs");
      // The trainer is a Docker container of the trainer image, on the docker node.
      const running = await docker([
        "ps",
        "--filter",
        `label=herd.dev/pod-uid=${victim.metadata!.uid}`,
        "--format",
        "{{.Image}}",
      ]);
      assert.equal(running.stdout.trim(), trainerImage);
      assert.equal(victim.spec?.nodeName, node.name);
      const blocker = {
        metadata: { name: unique("blocker") },
        spec: {
          priorityClassName: high,
          ...node.placement,
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: "main",
              image: localBase,
              command: ["sleep", "600"],
              resources: { requests: { cpu: "1" }, limits: { cpu: "1" } },
            },
          ],
        },
      };
      await c.core.createNamespacedPod({ namespace: ns, body: blocker });
      const preempted = await until("preempt", "preemptions 1", (s) => s.preemptions === 1);
      assert.ok((preempted.lastCheckpoint?.step ?? 0) >= 20, JSON.stringify(preempted));
      await c.core.deleteNamespacedPod({
        name: blocker.metadata.name,
        namespace: ns,
        gracePeriodSeconds: 0,
      });
      const s = await until("preempt", "ended", ended);
      assert.equal(s.phase, "Succeeded", s.message);
      assert.deepEqual([s.attempts, s.preemptions, s.failures, s.step], [2, 1, 0, 200]);
      // The resumed attempt started from the SIGTERM checkpoint, not from scratch.
      const logs = await c.kubectl(
        ...["logs", "-n", ns, "--tail=-1", "-l", "herd.dev/trainingjob=preempt,herd.dev/attempt=2"],
      );
      assert.equal(logs.code, 0, logs.stderr);
      const from = path.join(work, "preempt", stepName(preempted.lastCheckpoint!.step));
      assert.ok(logs.stdout.includes(`resumed from ${from}`), logs.stdout.slice(0, 2000));
    },
  );

  test(
    "a memory limit too small → the trainer container is OOMKilled → Failed with OOMKilled, no retry",
    { skip },
    async () => {
      await createObject(env(), ns, tinyJob("oom", { memory: "64Mi" }));
      const s = await until("oom", "ended", ended);
      assert.equal(s.phase, "Failed", s.message);
      assert.ok(
        s.conditions?.some((x) => x.type === "Failed" && x.reason === "OOMKilled"),
        JSON.stringify(s.conditions),
      );
      assert.match(
        s.message ?? "",
        /OOMKilled; lower spec.training.microBatch or raise spec.resources.memory/,
      );
      assert.deepEqual([s.attempts, s.failures], [1, 0]);
      const [pod] = await podsOf("oom");
      const terminated = pod?.status?.containerStatuses?.[0]?.state?.terminated;
      assert.deepEqual([terminated?.reason, terminated?.exitCode], ["OOMKilled", 137]);
    },
  );
});
