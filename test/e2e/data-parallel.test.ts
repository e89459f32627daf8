// Data parallelism end to end on the local control plane: a TrainingJob with
// spec.parallelism.workers 2 → two trainer pods that find each other through the job's
// headless Service name (the node agent's pod IPs and HERD_DEV_HOSTS stand in for CNI and
// cluster DNS), average gradients over Gloo and finish with one checkpoint series; a rank
// that dies fails the attempt, which is retried from the last checkpoint.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { cluster, testNode, unique, type Cluster } from "../cluster/harness.ts";
import { createObject, harness, type Harness } from "../api/helpers.ts";
import { readLatest, stepName } from "../../workers/trainer/checkpoint.ts";
import { rankGroup } from "../engine/ranks.ts";
import { ended, trainingJobs } from "./jobs.ts";
import { shakespeare } from "../data/files.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const corpus = shakespeare;

let c: Cluster;
let h: Harness;
let node: Awaited<ReturnType<typeof testNode>>;
let gpuNode: Awaited<ReturnType<typeof testNode>>;
let work: string;
let { until, podsOf } = {} as ReturnType<typeof trainingJobs>;

/**
 * llama-tiny on byte tokens, 8 sequences of 64 per step, on two ranks of 1 cpu each: two
 * worker pods, or one pod with two GPUs (on the node with simulated ones).
 */
function job(name: string, steps: number, gpus = false) {
  const spec = {
    model: { preset: "llama-tiny" },
    tokenizer: { type: "bytes" },
    data: { sources: [{ name: "shakespeare", uri: corpus, format: "text" }], seqLen: 64 },
    training: {
      steps,
      globalBatchTokens: 512,
      microBatch: 2,
      optimizer: { warmupSteps: 5 },
      seed: 7,
    },
    parallelism: gpus ? { workers: 1, gpusPerWorker: 2 } : { workers: 2 },
    checkpoint: { uri: path.join(work, name), intervalSteps: 5, keep: 2 },
    resources: gpus
      ? { image: "herd/herd:dev", cpu: "2", memory: "2Gi", ...gpuNode.placement }
      : { image: "herd/herd:dev", cpu: "1", memory: "1Gi", ...node.placement },
    retry: { failureLimit: 3, backoffSeconds: 1 },
  };
  return { apiVersion: "herd.dev/v1alpha1", kind: "TrainingJob", metadata: { name }, spec };
}

const logOf = (pod: string) =>
  c.core.readNamespacedPodLog({ name: pod, namespace: h.namespace, container: "trainer" });

before(async () => {
  c = await cluster();
  h = await harness(
    { kubeconfig: c.kc, kubeconfigPath: c.kubeconfig, temporalAddress: c.temporalAddress },
    "e2e-dp",
  );
  node = await testNode(c, unique("dp-node"), { cpu: "2", memory: "8Gi" });
  // Two GPUs served by the CPU stand-in of libherd_cuda.so (the dev plane's GPU node too).
  gpuNode = await testNode(
    c,
    unique("dp-gpu-node"),
    { cpu: "2", memory: "8Gi", "nvidia.com/gpu": "2" },
    { cudaLibrary: path.join(root, "native/build/libherd_cuda_standin.so") },
  );
  work = mkdtempSync(path.join(os.tmpdir(), "herd-e2e-dp-"));
  ({ until, podsOf } = trainingJobs(h.env, c.core, h.namespace));
  await h.newOperator();
});

after(async () => {
  await h?.close();
  await c?.removeNode(node.name).catch(() => {});
  await c?.removeNode(gpuNode.name).catch(() => {});
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("data parallelism end to end", () => {
  test("workers: 2 → Succeeded; both ranks ran, one checkpoint series, the loss of one rank alone", async () => {
    const manifest = job("pair", 20);
    await createObject(h.env, h.namespace, manifest);
    const s = await until(
      "pair",
      "Succeeded",
      (s) => s.phase === "Succeeded" || s.phase === "Failed",
    );
    assert.equal(s.phase, "Succeeded", s.message);
    assert.equal(s.step, 20);
    assert.deepEqual([s.attempts, s.preemptions, s.failures], [1, 0, 0]);
    assert.equal(s.lastCheckpoint?.step, 20);

    // Both ranks ran, each on an address of its own, and found rank 0 by its Service name.
    const pods = await podsOf("pair");
    assert.deepEqual(
      pods.map((p) => [p.metadata?.labels?.["herd.dev/rank"], p.status?.phase]),
      [
        ["0", "Succeeded"],
        ["1", "Succeeded"],
      ],
    );
    const ips = pods.map((p) => p.status?.podIP);
    assert.equal(new Set(ips).size, 2, `pod IPs ${ips}`);
    for (const ip of ips) assert.match(ip ?? "", /^127\.\d+\.\d+\.\d+$/);
    assert.notEqual(ips[0], "127.0.0.1");
    const [log0, log1] = await Promise.all(pods.map((p) => logOf(p.metadata!.name!)));
    assert.match(
      log1!,
      /rank 1 of 2: joining the group at pair-[0-9a-f]{8}-a1-r0\.pair-[0-9a-f]{8}-workers\..*\.svc:29500/,
    );
    assert.match(log1!, /rank 1 of 2: joined/);
    assert.match(log0!, /"event":"checkpoint"/);
    assert.doesNotMatch(log1!, /"event":"checkpoint"/, "rank 1 writes no checkpoint");

    // One checkpoint series: rank 0's, kept by policy.
    const dir = path.join(work, "pair");
    assert.equal(readLatest(dir), 20);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith("step-")),
      [stepName(15), stepName(20)],
    );

    // The loss in status is the global batch's: the same job trained by one process alone
    // (herd train --local) ends at the same loss within float tolerance.
    const file = path.join(work, "pair-local.json");
    writeFileSync(file, JSON.stringify(manifest));
    const local = spawnSync(
      process.execPath,
      [
        path.join(root, "bin/herd.mjs"),
        "train",
        "--local",
        "-f",
        file,
        "--out",
        path.join(work, "pair-local"),
        "--threads",
        "1",
        "--log",
        "json",
      ],
      { encoding: "utf8", env: { ...process.env, HERD_WORLD_SIZE: "" } },
    );
    assert.equal(local.status, 0, local.stderr);
    const steps = local.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string; loss: number })
      .filter((e) => e.event === "step");
    const want = steps.at(-1)!.loss;
    assert.ok(
      Math.abs(s.loss! - want) / want < 1e-4,
      `status loss ${s.loss}, one rank alone ${want}`,
    );
  });

  test("a rank that dies → the attempt fails, is retried, and resumes from the last checkpoint", async () => {
    await createObject(h.env, h.namespace, job("crash", 400));
    const running = await until(
      "crash",
      "a checkpoint and step ≥ 12",
      (s) => (s.lastCheckpoint?.step ?? 0) >= 10 && (s.step ?? 0) >= 12,
    );
    // Rank 1's process dies (a crash, not a preemption): kill its process group.
    const rank1 = (await podsOf("crash")).find(
      (p) => p.metadata?.labels?.["herd.dev/rank"] === "1",
    )!;
    const pidFile = path.join(c.stateDir, "agent", "pids", `${rank1.metadata!.uid}-trainer`);
    process.kill(-Number(readFileSync(pidFile, "utf8")), "SIGKILL");
    const s = await until(
      "crash",
      "Succeeded",
      (s) => s.phase === "Succeeded" || s.phase === "Failed",
      300_000,
    );
    assert.equal(s.phase, "Succeeded", s.message);
    // A failure (not a preemption), classified by the rank that failed first, then one retry.
    assert.deepEqual([s.attempts, s.preemptions, s.failures], [2, 0, 1]);
    const events = await c.core.listNamespacedEvent({
      namespace: h.namespace,
      fieldSelector: "involvedObject.name=crash",
    });
    const failed = events.items.find((e) => e.reason === "TrainerFailed");
    assert.ok(failed, JSON.stringify(events.items.map((e) => [e.reason, e.message])));
    assert.match(failed.message ?? "", /pod crash-[0-9a-f]{8}-a1-r1 failed \(exit 137/);
    // The retry resumed from a checkpoint of the first attempt on both ranks.
    const pods = await podsOf("crash");
    assert.deepEqual(
      pods.map((p) => [p.metadata?.labels?.["herd.dev/attempt"], p.status?.phase]),
      [
        ["2", "Succeeded"],
        ["2", "Succeeded"],
      ],
    );
    // The retry resumed both ranks from one checkpoint of the first attempt, not from scratch.
    const resumedAt = await Promise.all(
      pods.map(async (p) =>
        Number(/resumed from .*step-(\d{9})/.exec(await logOf(p.metadata!.name!))?.[1]),
      ),
    );
    assert.equal(resumedAt[0], resumedAt[1]);
    assert.ok(
      resumedAt[0]! >= running.lastCheckpoint!.step && resumedAt[0]! < 400,
      `resumed at ${resumedAt}`,
    );
    assert.equal(readLatest(path.join(work, "crash")), 400);
  });

  test("gpusPerWorker: 2 → one pod, a CUDA rank per GPU, the checkpoint of two CPU ranks", async () => {
    const manifest = job("gpus", 10, true);
    await createObject(h.env, h.namespace, manifest);
    const s = await until("gpus", "Succeeded", ended);
    assert.equal(s.phase, "Succeeded", s.message);
    assert.deepEqual([s.step, s.attempts, s.failures], [10, 1, 0]);
    const pods = await podsOf("gpus");
    assert.equal(pods.length, 1, "one worker pod");
    const log = await logOf(pods[0]!.metadata!.name!);
    for (const device of [0, 1]) assert.match(log, new RegExp(`training on CUDA device ${device}`));
    assert.match(log, /rank 1 of 2: joined/);

    // Two CPU ranks of the same job by hand (herd train --local) write the same bytes.
    const file = path.join(work, "gpus-cpu.json");
    writeFileSync(file, JSON.stringify(manifest));
    const cpuOut = path.join(work, "gpus-cpu");
    const cpu = await Promise.all((await rankGroup(file, cpuOut, 2)).map((r) => r.done));
    for (const r of cpu) assert.equal(r.code, 0, r.stderr);
    for (const name of ["model.safetensors", "optimizer.safetensors"])
      assert.ok(
        readFileSync(path.join(work, "gpus", stepName(10), name)).equals(
          readFileSync(path.join(cpuOut, stepName(10), name)),
        ),
        name,
      );
  });
});
