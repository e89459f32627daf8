// Training end to end on the local control plane: a TrainingJob applied → operator → the
// training workflow → trainer pods run by the node agent from this checkout → status. Each
// test asserts status, pods and checkpoints.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { PatchStrategy, SchedulingV1Api, setHeaderOptions } from "@kubernetes/client-node";
import { cluster, shellPod, testNode, unique, type Cluster } from "../cluster/harness.ts";
import {
  createObject,
  deleteObject,
  getObject,
  harness,
  patchObject,
  waitFor,
  type Harness,
} from "../api/helpers.ts";
import { readLatest, stepName } from "../../workers/trainer/checkpoint.ts";
import {
  createS3Secret,
  ended,
  objectStorageOf,
  s3SecretName,
  tinyTrainingJob,
  trainingJobs,
} from "./jobs.ts";
import { llamaModel, shakespeare } from "../data/files.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const herdBin = path.join(root, "bin/herd.mjs");
const corpus = shakespeare;

let c: Cluster;
let h: Harness;
let node: Awaited<ReturnType<typeof testNode>>;
let work: string;
let { until, podsOf, eventsOf } = {} as ReturnType<typeof trainingJobs>;
const low = unique("herd-e2e-low");
const high = unique("herd-e2e-high");

/** A tiny TrainingJob (llama-tiny, byte tokens) placed on the test's node. */
function tinyJob(
  name: string,
  over: {
    steps?: number;
    data?: string;
    retry?: object;
    checkpoint?: string;
    ephemeralStorage?: string;
    placement?: { nodeSelector: Record<string, string>; tolerations: object[] };
  } = {},
) {
  return tinyTrainingJob(name, {
    steps: over.steps ?? 20,
    ...(over.data && { data: over.data }),
    checkpoint: { uri: over.checkpoint ?? path.join(work, name), intervalSteps: 5, keep: 2 },
    resources: {
      image: "herd/herd:dev",
      cpu: "1",
      memory: "1Gi",
      priorityClassName: low,
      ...(over.ephemeralStorage && { ephemeralStorage: over.ephemeralStorage }),
      ...(over.placement ?? node.placement),
    },
    retry: { failureLimit: 3, backoffSeconds: 1, ...over.retry },
  });
}

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

let uninterrupted: Promise<string> | undefined;
/** The 400-step tiny job trained once, uninterrupted, with `herd train --local`; its folder. */
function uninterrupted400(): Promise<string> {
  return (uninterrupted ??= (async () => {
    const local = path.join(work, "uninterrupted-local");
    const manifest = path.join(work, "uninterrupted-local.json");
    writeFileSync(manifest, JSON.stringify(tinyJob("uninterrupted", { steps: 400 })));
    mkdirSync(local, { recursive: true });
    const args = ["train", "--local", "-f", manifest, "--out", local, "--threads", "1"];
    const code = await new Promise<number>((resolve) =>
      execFile(
        process.execPath,
        [herdBin, ...args],
        { env: { ...process.env }, maxBuffer: 64 << 20 },
        (err) => resolve(err ? Number((err as { code?: number }).code ?? 1) : 0),
      ),
    );
    assert.equal(code, 0, "the uninterrupted run succeeds");
    return local;
  })());
}

/** The trainer pods run herd's image from the checkout the node agent runs: it must be this one. */
function assertAgentRunsThisCheckout(stateDir: string): void {
  const pid = readFileSync(path.join(stateDir, "run", "node-agent.pid"), "utf8").trim();
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  const agent = path.join(root, "test/cluster/node-agent.ts");
  if (!cmdline.includes(agent))
    throw new Error(
      `the control plane in ${stateDir} runs another checkout's node agent (${cmdline.join(" ")}); ` +
        `run \`herd dev down\` there or set HERD_STATE to a folder of this checkout's own`,
    );
}

before(async () => {
  c = await cluster();
  assertAgentRunsThisCheckout(c.stateDir);
  h = await harness(
    {
      kubeconfig: c.kc,
      kubeconfigPath: c.kubeconfig,
      temporalAddress: c.temporalAddress,
      s3: objectStorageOf(c),
    },
    "e2e",
  );
  ({ until, podsOf, eventsOf } = trainingJobs(h.env, c.core, h.namespace));
  await createS3Secret(c, h.namespace);
  node = await testNode(c, unique("e2e-node"), { cpu: "1", memory: "8Gi" });
  const scheduling = c.kc.makeApiClient(SchedulingV1Api);
  await scheduling.createPriorityClass({ body: { metadata: { name: low }, value: 100 } });
  await scheduling.createPriorityClass({ body: { metadata: { name: high }, value: 100000 } });
  work = mkdtempSync(path.join(os.tmpdir(), "herd-e2e-"));
  await h.newOperator();
});

after(async () => {
  await h?.close();
  await c?.removeNode(node.name).catch(() => {});
  const scheduling = c?.kc.makeApiClient(SchedulingV1Api);
  for (const name of [low, high]) await scheduling?.deletePriorityClass({ name }).catch(() => {});
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("training end to end", () => {
  test("apply → Succeeded, with step, loss and checkpoint in status", async () => {
    await createObject(h.env, h.namespace, tinyJob("plain"));
    const s = await until(
      "plain",
      "Succeeded",
      (s) => s.phase === "Succeeded" || s.phase === "Failed",
    );
    assert.equal(s.phase, "Succeeded", s.message);
    assert.equal(s.step, 20);
    assert.ok(typeof s.loss === "number" && s.loss > 0 && s.loss < Math.log(256), `loss ${s.loss}`);
    assert.equal(s.lastCheckpoint?.step, 20);
    assert.equal(s.lastCheckpoint?.uri, path.join(work, "plain", stepName(20)));
    assert.equal(readLatest(path.join(work, "plain")), 20);
    assert.deepEqual([s.attempts, s.preemptions, s.failures], [1, 0, 0]);
    assert.ok(s.conditions?.some((x) => x.type === "Succeeded" && x.status === "True"));
    // The last attempt's pod stays, ended, for its logs.
    const pods = await podsOf("plain");
    assert.deepEqual(
      pods.map((p) => [p.metadata?.labels?.["herd.dev/attempt"], p.status?.phase]),
      [["1", "Succeeded"]],
    );
  });

  test("preempted mid-run by a higher-priority pod → resumes, bit-identical to an uninterrupted run", async () => {
    await createObject(h.env, h.namespace, tinyJob("preempt", { steps: 400 }));
    // Mid-run: a step beyond the first checkpoint.
    await until("preempt", "step ≥ 20", (s) => (s.step ?? 0) >= 20);
    const [victim] = await podsOf("preempt");
    assert.ok(victim, "a trainer pod runs");
    const blocker = shellPod(unique("blocker"), "sleep 600", {
      priorityClassName: high,
      ...node.placement,
      containers: [
        {
          name: "main",
          image: "busybox",
          command: ["sh", "-c", "sleep 600"],
          resources: { requests: { cpu: "1" }, limits: { cpu: "1" } },
        },
      ],
    });
    await c.core.createNamespacedPod({ namespace: h.namespace, body: blocker });
    const preempted = await until("preempt", "preemptions 1", (s) => s.preemptions === 1);
    assert.equal(preempted.failures, 0);
    // The SIGTERM checkpoint is durable and known before the next attempt starts.
    assert.ok((preempted.lastCheckpoint?.step ?? 0) >= 20, JSON.stringify(preempted));
    // The blocker goes; the next attempt is scheduled and resumes from the SIGTERM checkpoint.
    await c.core.deleteNamespacedPod({
      name: blocker.metadata!.name!,
      namespace: h.namespace,
      gracePeriodSeconds: 0,
    });
    const s = await until(
      "preempt",
      "Succeeded",
      (s) => s.phase === "Succeeded" || s.phase === "Failed",
    );
    assert.equal(s.phase, "Succeeded", s.message);
    assert.deepEqual([s.attempts, s.preemptions, s.failures], [2, 1, 0]);
    assert.equal(s.step, 400);
    const events = await eventsOf("preempt");
    assert.ok(
      events.some((e) => e.reason === "PreemptionByScheduler"),
      `events: ${events.map((e) => `${e.reason}: ${e.message}`).join("; ")}`,
    );
    // Goodput: the preempted attempt lost no step (its SIGTERM checkpoint kept them all) and
    // says how long that checkpoint took; the next says how long training took to resume.
    const [first, second] = s.attemptHistory ?? [];
    const history = JSON.stringify(s.attemptHistory);
    assert.deepEqual(
      [first?.outcome, first?.reason, first?.stepsLost, second?.outcome, second?.toStep],
      ["preempted", "PreemptionByScheduler", 0, "succeeded", 400],
      history,
    );
    assert.equal(second!.fromStep, first!.toStep, history);
    assert.ok(first!.checkpointSeconds! >= 0 && first!.checkpointSeconds! < 30, history);
    assert.ok(second!.resumeSeconds! > 0 && second!.resumeSeconds! < 60, history);
    const g = s.goodput!;
    assert.ok(g.ratio > 0 && g.ratio <= 1 && g.stepsLost === 0, JSON.stringify(g));
    assert.ok(
      Math.abs(first!.productiveSeconds + second!.productiveSeconds - g.productiveSeconds) < 0.01,
    );
    const local = await uninterrupted400();
    for (const f of ["model.safetensors", "optimizer.safetensors"])
      assert.equal(
        sha256(path.join(work, "preempt", stepName(400), f)),
        sha256(path.join(local, stepName(400), f)),
        `${f} differs from the uninterrupted run`,
      );
  });

  test("evicted through the Eviction API → resumes; counted as a preemption", async () => {
    await createObject(h.env, h.namespace, tinyJob("evict", { steps: 400 }));
    await until("evict", "step ≥ 20", (s) => (s.step ?? 0) >= 20);
    const [pod] = await podsOf("evict");
    assert.ok(pod, "a trainer pod runs");
    await c.core.createNamespacedPodEviction({
      name: pod.metadata!.name!,
      namespace: h.namespace,
      body: { metadata: { name: pod.metadata!.name!, namespace: h.namespace } },
    });
    const s = await until(
      "evict",
      "Succeeded",
      (s) => s.phase === "Succeeded" || s.phase === "Failed",
    );
    assert.equal(s.phase, "Succeeded", s.message);
    assert.deepEqual([s.attempts, s.preemptions, s.failures], [2, 1, 0]);
    assert.equal(s.step, 400);
    const events = await eventsOf("evict");
    assert.ok(
      events.some((e) => e.reason === "EvictionByEvictionAPI"),
      `events: ${events.map((e) => `${e.reason}: ${e.message}`).join("; ")}`,
    );
  });

  test("suspend → pods gone, checkpoint kept; resume → continues from it", async () => {
    await createObject(h.env, h.namespace, tinyJob("pause", { steps: 400 }));
    await until("pause", "step ≥ 20", (s) => (s.step ?? 0) >= 20);
    await patchObject(h.env, "TrainingJob", h.namespace, "pause", { spec: { suspend: true } });
    const paused = await until("pause", "Suspended", (s) => s.phase === "Suspended");
    assert.deepEqual(await podsOf("pause"), []);
    const kept = readLatest(path.join(work, "pause"));
    assert.ok(kept !== undefined && kept >= 20 && kept < 400, `LATEST ${kept}`);
    assert.equal(paused.lastCheckpoint?.step, kept);
    await patchObject(h.env, "TrainingJob", h.namespace, "pause", { spec: { suspend: false } });
    const s = await until(
      "pause",
      "Succeeded",
      (s) => s.phase === "Succeeded" || s.phase === "Failed",
    );
    assert.equal(s.phase, "Succeeded", s.message);
    assert.deepEqual([s.attempts, s.preemptions, s.failures], [2, 0, 0]);
    assert.equal(s.step, 400);
  });

  test("delete → pods and workflow cleaned up, checkpoints kept", async () => {
    const created = await createObject(h.env, h.namespace, tinyJob("doomed", { steps: 400 }));
    await until("doomed", "step ≥ 20", (s) => (s.step ?? 0) >= 20);
    await deleteObject(h.env, "TrainingJob", h.namespace, "doomed");
    await waitFor("doomed gone", async () =>
      (await getObject(h.env, "TrainingJob", h.namespace, "doomed")) ? undefined : true,
    );
    assert.deepEqual(await podsOf("doomed"), []);
    const d = await h.client.workflow
      .getHandle(`herd/TrainingJob/${h.namespace}/doomed/${created.metadata.uid}`)
      .describe();
    assert.equal(d.status.name, "CANCELLED");
    const kept = readLatest(path.join(work, "doomed"));
    assert.ok(kept !== undefined && kept >= 20, `LATEST ${kept}`);
  });

  test("a data URI that does not exist → Failed at once, naming it, no retries", async () => {
    const missing = path.join(work, "no-such-corpus.txt");
    await createObject(h.env, h.namespace, tinyJob("nodata", { data: missing }));
    const s = await until(
      "nodata",
      "Failed",
      (s) => s.phase === "Failed" || s.phase === "Succeeded",
    );
    assert.equal(s.phase, "Failed");
    assert.match(s.message ?? "", new RegExp(missing.replaceAll(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    assert.deepEqual([s.attempts, s.failures], [1, 0]);
    assert.ok(s.conditions?.some((x) => x.type === "Failed" && x.reason === "UserError"));
  });

  test("a trainer that crashes (exit 1) → retried with back-off, Failed after the limit", async () => {
    // A checkpoint folder whose only checkpoint is broken: the trainer exits 1 every time.
    const dir = path.join(work, "crash", stepName(5));
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "manifest.json"), "{broken");
    writeFileSync(path.join(work, "crash", "LATEST"), `${stepName(5)}\n`);
    await createObject(h.env, h.namespace, tinyJob("crash", { retry: { failureLimit: 2 } }));
    const s = await until(
      "crash",
      "Failed",
      (s) => s.phase === "Failed" || s.phase === "Succeeded",
    );
    assert.equal(s.phase, "Failed");
    assert.deepEqual([s.attempts, s.failures, s.preemptions], [3, 3, 0]);
    assert.match(s.message ?? "", /no usable checkpoint/);
    assert.ok(
      s.conditions?.some((x) => x.type === "Failed" && x.reason === "FailureLimitExceeded"),
    );
    const backoffs = (await eventsOf("crash")).filter((e) => e.reason === "TrainerFailed");
    assert.equal(backoffs.length, 3);
  });

  test("checkpoints in the S3 store: evicted → resumes from S3, bit-identical to an uninterrupted run", async () => {
    const uri = `s3://${c.s3.bucket}/${h.namespace}/ins3`;
    const s3 = c.s3Client();
    await createObject(h.env, h.namespace, tinyJob("ins3", { steps: 400, checkpoint: uri }));
    const mid = await until(
      "ins3",
      "a checkpoint in S3",
      (s) => (s.lastCheckpoint?.step ?? 0) >= 20,
    );
    assert.match(mid.lastCheckpoint!.uri, new RegExp(`^${uri}/step-\\d{9}$`));
    const [pod] = await podsOf("ins3");
    assert.ok(pod, "a trainer pod runs");
    // The credentials come from the Secret, not from the pod spec.
    const env = pod.spec!.containers[0]!.env!;
    assert.deepEqual(
      { ...env.find((e) => e.name === "AWS_SECRET_ACCESS_KEY")?.valueFrom?.secretKeyRef },
      {
        name: s3SecretName,
        key: "AWS_SECRET_ACCESS_KEY",
      },
    );
    // Evicted: the next pod starts with an empty scratch folder, so it resumes from S3.
    await c.core.createNamespacedPodEviction({
      name: pod.metadata!.name!,
      namespace: h.namespace,
      body: { metadata: { name: pod.metadata!.name!, namespace: h.namespace } },
    });
    const s = await until(
      "ins3",
      "Succeeded",
      (s) => s.phase === "Succeeded" || s.phase === "Failed",
    );
    assert.equal(s.phase, "Succeeded", s.message);
    assert.deepEqual([s.attempts, s.preemptions, s.failures], [2, 1, 0]);
    assert.equal(s.lastCheckpoint?.uri, `${uri}/${stepName(400)}`);
    const prefix = `${h.namespace}/ins3/`;
    assert.equal((await s3.get(prefix + "LATEST")).toString(), `${stepName(400)}\n`);
    const steps = new Set(
      (await s3.list(prefix)).map((o) => /^(step-\d{9})\//.exec(o.key.slice(prefix.length))?.[1]),
    );
    steps.delete(undefined);
    assert.equal(steps.size, 2, `keep: 2 leaves two checkpoints: ${[...steps].join(", ")}`);
    // The loss history travelled with the checkpoints: every step once, despite the resume.
    const history = (await s3.get(prefix + "metrics.jsonl")).toString().trim().split("\n");
    assert.deepEqual(
      history.map((l) => (JSON.parse(l) as { step: number }).step),
      Array.from({ length: 400 }, (_, i) => i + 1),
    );
    const logs = await c.kubectl(
      ...[
        "logs",
        "-n",
        h.namespace,
        "--tail=-1",
        "-l",
        "herd.dev/trainingjob=ins3,herd.dev/attempt=2",
      ],
    );
    assert.match(logs.stdout, /resumed from/, "the second attempt resumed");
    const local = await uninterrupted400();
    const fromS3 = path.join(work, "ins3-model.safetensors");
    writeFileSync(fromS3, await s3.get(`${prefix}${stepName(400)}/model.safetensors`));
    assert.equal(
      sha256(fromS3),
      sha256(path.join(local, stepName(400), "model.safetensors")),
      "the weights in S3 differ from the uninterrupted run",
    );
    for (const o of await s3.list(prefix)) await s3.delete(o.key);
  });

  test("scratch space past spec.resources.ephemeralStorage → evicted by the kubelet, Failed at once naming the field", async () => {
    // S3 checkpoints are staged in the scratch space: the first one (~1.7 MB) outgrows 1Mi.
    const uri = `s3://${c.s3.bucket}/${h.namespace}/disk`;
    await createObject(
      h.env,
      h.namespace,
      tinyJob("disk", { steps: 400, checkpoint: uri, ephemeralStorage: "1Mi" }),
    );
    const s = await until("disk", "Failed", ended);
    assert.equal(s.phase, "Failed", s.message);
    assert.match(
      s.message ?? "",
      /pod disk-[0-9a-f]{8}-a1-r0 was evicted: Usage of EmptyDir volume "scratch" exceeds the limit "1Mi"\. Raise spec\.resources\.ephemeralStorage/,
    );
    assert.deepEqual([s.attempts, s.preemptions, s.failures], [1, 0, 0]);
    assert.ok(
      s.conditions?.some((x) => x.type === "Failed" && x.reason === "EphemeralStorageExceeded"),
      JSON.stringify(s.conditions),
    );
    const s3 = c.s3Client();
    for (const o of await s3.list(`${h.namespace}/disk/`)) await s3.delete(o.key);
  });

  test("LLaMA's tokenizer and token shards in S3 → the trainer pod reads them and Succeeds", async () => {
    // Shards made here by `herd data prepare`, uploaded as a cluster's data would be.
    const local = path.join(work, "sp-shards");
    const tokenizer = llamaModel;
    await new Promise<void>((resolve, reject) =>
      execFile(
        process.execPath,
        [herdBin, "data", "prepare", "--input", corpus, "--tokenizer", tokenizer, "--out", local],
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    const s3 = c.s3Client();
    const prefix = `${h.namespace}/data/shakespeare/`;
    for (const f of readdirSync(local)) await s3.putFile(prefix + f, path.join(local, f));
    const job = tinyJob("sp", { steps: 6 });
    Object.assign(job.spec, {
      tokenizer: { type: "sentencepiece", uri: tokenizer },
      data: {
        sources: [{ name: "shakespeare", uri: `s3://${c.s3.bucket}/${prefix}`, format: "shards" }],
        seqLen: 64,
      },
    });
    await createObject(h.env, h.namespace, job);
    const st = await until("sp", "ended", (x) => x.phase === "Succeeded" || x.phase === "Failed");
    assert.equal(st.phase, "Succeeded", st.message);
    assert.equal(st.step, 6);
    // A 32000-token model: its loss starts near ln(32000), far above a byte model's.
    assert.ok((st.loss ?? 0) > 6 && (st.loss ?? 99) < Math.log(32000) + 0.5, `loss ${st.loss}`);
    const state = JSON.parse(
      readFileSync(path.join(work, "sp", stepName(6), "trainer.json"), "utf8"),
    ) as { model: { vocabSize: number }; dataSource: string };
    assert.equal(state.model.vocabSize, 32000);
    assert.match(state.dataSource, /^herd-mixture-state 1\n/);
    for (const o of await s3.list(prefix)) await s3.delete(o.key);
  });

  test("pods Pod Security refuses → Failed at once with the API server's message, no attempt", async () => {
    // The restricted level forbids the hostPath volume of a local checkpoint folder.
    const enforce = "pod-security.kubernetes.io/enforce";
    const label = (value: string | null) =>
      c.core.patchNamespace(
        { name: h.namespace, body: { metadata: { labels: { [enforce]: value } } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    await label("restricted");
    try {
      await createObject(h.env, h.namespace, tinyJob("refused"));
      const s = await until("refused", "ended", ended, 60_000);
      assert.equal(s.phase, "Failed", s.message);
      assert.equal(s.attempts, 0);
      const failed = s.conditions?.find((x) => x.type === "Failed");
      assert.equal(failed?.reason, "PodSecurityViolation");
      assert.match(failed?.message ?? "", /violates PodSecurity "restricted:latest".*hostPath/);
      // The event follows the status write.
      await waitFor("the PodSecurityViolation event", async () =>
        (await eventsOf("refused")).some(
          (e) => e.reason === "PodSecurityViolation" && /hostPath/.test(e.message ?? ""),
        )
          ? true
          : undefined,
      );
      assert.deepEqual(await podsOf("refused"), []);
    } finally {
      await label(null);
    }
  });

  test("pods a ResourceQuota refuses → Pending and Stuck (QuotaExceeded); once it frees → Succeeded", async () => {
    const quota = unique("no-pods");
    await c.core.createNamespacedResourceQuota({
      namespace: h.namespace,
      body: { metadata: { name: quota }, spec: { hard: { pods: "0" } } },
    });
    try {
      // Until the controller has counted the quota's usage, it refuses as "status unknown".
      await waitFor("the quota counted", async () => {
        const q = await c.core.readNamespacedResourceQuota({ name: quota, namespace: h.namespace });
        return q.status?.hard?.pods ? true : undefined;
      });
      await createObject(h.env, h.namespace, tinyJob("quota"));
      const stuck = await until("quota", "Stuck", (s) =>
        Boolean(s.conditions?.some((x) => x.type === "Stuck" && x.status === "True")),
      );
      assert.equal(stuck.phase, "Pending");
      assert.equal(stuck.attempts, 0);
      const condition = stuck.conditions!.find((x) => x.type === "Stuck")!;
      assert.equal(condition.reason, "QuotaExceeded");
      assert.match(condition.message, new RegExp(`exceeded quota: ${quota}.*trying again in 10 s`));
      await waitFor("the QuotaExceeded event", async () =>
        (await eventsOf("quota")).some((e) => e.reason === "QuotaExceeded") ? true : undefined,
      );
    } finally {
      await c.core.deleteNamespacedResourceQuota({ name: quota, namespace: h.namespace });
    }
    const s = await until("quota", "ended", ended);
    assert.equal(s.phase, "Succeeded", s.message);
    assert.deepEqual([s.attempts, s.failures], [1, 0]);
    const cleared = s.conditions?.find((x) => x.type === "Stuck");
    assert.deepEqual([cleared?.status, cleared?.reason], ["False", "Created"]);
  });

  test("node NotReady → its pod is evicted and replaced on another node, resuming", async () => {
    const group = unique("e2e-pair");
    const names = [`${group}-a`, `${group}-b`];
    const taint = { key: "herd.dev/test-node", value: group, effect: "NoSchedule" as const };
    for (const name of names)
      await c.addNode({
        name,
        capacity: { pods: "20", cpu: "1", memory: "8Gi" },
        labels: { "herd.dev/test-group": group },
        taints: [taint],
      });
    let lost: string | undefined;
    try {
      const placement = {
        nodeSelector: { "herd.dev/test-group": group },
        tolerations: [
          { key: taint.key, operator: "Equal", value: group, effect: taint.effect },
          // Give a lost node 2 s instead of the default 300 s before its pods are evicted.
          ...["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"].map((key) => ({
            key,
            operator: "Exists",
            effect: "NoExecute",
            tolerationSeconds: 2,
          })),
        ],
      };
      // Unlike preemption and eviction, a lost node takes seconds to act on (the node monitor's
      // period, then the toleration): 2,000 steps keep the first attempt running that long.
      await createObject(h.env, h.namespace, tinyJob("lost", { steps: 2000, placement }));
      await until("lost", "step ≥ 20", (s) => (s.step ?? 0) >= 20);
      const [first] = await podsOf("lost");
      lost = first?.spec?.nodeName;
      assert.ok(lost && names.includes(lost), `the pod runs on a node of the pair: ${lost}`);
      await c.setNodeReady(lost, false);
      const s = await until(
        "lost",
        "Succeeded",
        (s) => s.phase === "Succeeded" || s.phase === "Failed",
        180_000,
      );
      assert.equal(s.phase, "Succeeded", s.message);
      assert.deepEqual([s.attempts, s.preemptions, s.failures], [2, 1, 0]);
      assert.equal(s.step, 2000);
      const pods = await podsOf("lost");
      assert.deepEqual(
        pods.map((p) => [p.metadata?.labels?.["herd.dev/attempt"], p.spec?.nodeName]),
        [["2", names.find((n) => n !== lost)]],
      );
      const events = await eventsOf("lost");
      assert.ok(
        events.some((e) => e.reason === "DeletionByTaintManager"),
        `events: ${events.map((e) => `${e.reason}: ${e.message}`).join("; ")}`,
      );
    } finally {
      if (lost) await c.setNodeReady(lost, true).catch(() => {});
      for (const name of names) await c.removeNode(name).catch(() => {});
    }
  });
});
