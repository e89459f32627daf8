// Fine-tuning end to end on the local control plane: SmolLM2-135M instruction-tuned on
// oasst1 through the real operator, workflow and trainer pod, preempted mid-run (Eviction
// API) and resumed exactly; EvalJobs before (the GGUF) and after (the TrainingJob's
// checkpoint, its tokenizer taken from the job) score the held-out replies and an ARC-Easy
// slice in evaluator pods. Skipped when SmolLM2 is not provisioned.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { cluster, testNode, unique, type Cluster } from "../cluster/harness.ts";
import { createObject, getObject, harness, waitFor, type Harness } from "../api/helpers.ts";
import { readHerd } from "../../workers/model/formats.ts";
import { smollm2Path } from "../../workers/model/smollm2.ts";
import { createS3Secret, objectStorageOf, trainingJobs } from "./jobs.ts";
import { dataDir } from "../data/files.ts";
import { herdBin } from "../engine/fixtures.ts";

const smol = smollm2Path();
let c: Cluster;
let h: Harness;
let node: Awaited<ReturnType<typeof testNode>>;
let work = "",
  base = "",
  shards = "";
let { until, podsOf } = {} as ReturnType<typeof trainingJobs>;

const steps = 8;

const run = (args: string[]) =>
  new Promise<{ code: number; stderr: string }>((resolve) =>
    execFile(process.execPath, [herdBin, ...args], { maxBuffer: 64 << 20 }, (err, _out, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
    ),
  );

/** The fine-tuning job: 8 steps of 2 × 256 tokens, a checkpoint every 2, 2 threads. */
function finetuneJob(name: string, checkpoint: string) {
  return {
    apiVersion: "herd.dev/v1alpha1",
    kind: "TrainingJob",
    metadata: { name },
    spec: {
      model: { from: { uri: base } },
      data: { sources: [{ name: "oasst1", uri: shards, format: "examples" }], seqLen: 256 },
      training: {
        steps,
        globalBatchTokens: 512,
        microBatch: 1,
        optimizer: { peakLr: 1e-4, warmupSteps: 2 },
        seed: 3,
      },
      checkpoint: { uri: checkpoint, intervalSteps: 2, keep: 2 },
      resources: { image: "herd/herd:dev", cpu: "2", memory: "5Gi", ...node.placement },
      retry: { failureLimit: 1, backoffSeconds: 1 },
    },
  };
}

function evalJob(name: string, checkpoint: Record<string, unknown>) {
  return {
    apiVersion: "herd.dev/v1alpha1",
    kind: "EvalJob",
    metadata: { name },
    spec: {
      checkpoint,
      tasks: [
        { name: "heldout", type: "chat", uri: path.join(shards, "heldout.jsonl"), limit: 6 },
        { name: "arc_easy", limit: 20 },
      ],
      resources: { image: "herd/herd:dev", cpu: "2", memory: "3Gi", ...node.placement },
    },
  };
}

type EvalStatus = {
  phase?: string;
  message?: string;
  results?: { task: string; examples: number; metrics: { name: string; value: number }[] }[];
};
const evalEnded = (name: string) =>
  waitFor(
    `EvalJob ${name} ended`,
    async () => {
      const s = ((await getObject(h.env, "EvalJob", h.namespace, name))?.status ??
        {}) as EvalStatus;
      return s.phase === "Succeeded" || s.phase === "Failed" ? s : undefined;
    },
    600_000,
  );
const metric = (s: EvalStatus, task: string, name: string) =>
  s.results?.find((r) => r.task === task)?.metrics.find((m) => m.name === name)?.value;

before(async () => {
  if (!smol) return;
  c = await cluster();
  h = await harness(
    {
      kubeconfig: c.kc,
      kubeconfigPath: c.kubeconfig,
      temporalAddress: c.temporalAddress,
      s3: objectStorageOf(c),
    },
    "finetune",
  );
  ({ until, podsOf } = trainingJobs(h.env, c.core, h.namespace));
  await createS3Secret(c, h.namespace);
  node = await testNode(c, unique("finetune-node"), { cpu: "2", memory: "8Gi" });
  work = mkdtempSync(path.join(os.tmpdir(), "herd-finetune-e2e-"));
  // The base model in its own folder: an EvalJob writes its results beside the checkpoint.
  base = path.join(work, "base", "smollm2.gguf");
  mkdirSync(path.dirname(base));
  copyFileSync(smol, base);
  shards = path.join(work, "oasst1");
  const p = await run([
    ...["data", "prepare", "--instruct", "--tokenizer", base, "--out", shards, "--holdout", "0.1"],
    ...["--input", path.join(dataDir, "instruct/oasst1-en-validation.jsonl.gz")],
  ]);
  assert.equal(p.code, 0, p.stderr);
  await h.newOperator();
});

after(async () => {
  await h?.close();
  await c?.removeNode(node.name).catch(() => {});
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("fine-tuning end to end", { skip: smol ? false : "SmolLM2 not provisioned" }, () => {
  test("EvalJob before, fine-tune preempted and resumed exactly, EvalJob after: held-out loss falls", async () => {
    // Before: the pretrained GGUF, which carries its tokenizer and chat template.
    await createObject(h.env, h.namespace, evalJob("before", { uri: base, format: "gguf" }));
    const before = await evalEnded("before");
    assert.equal(before.phase, "Succeeded", before.message);

    // Fine-tune; evict the trainer after its first checkpoint; it resumes from it.
    const name = "smollm2-oasst1";
    await createObject(h.env, h.namespace, finetuneJob(name, path.join(work, name)));
    const running = await until(
      name,
      "a checkpoint",
      (s) => (s.lastCheckpoint?.step ?? 0) >= 2,
      600_000,
    );
    assert.ok(
      (running.loss ?? 99) < Math.log(49152) / 2,
      `step loss ${running.loss}: not a pretrained model's`,
    );
    const [pod] = await podsOf(name);
    assert.ok(pod, "a trainer pod runs");
    await c.core.createNamespacedPodEviction({
      name: pod.metadata!.name!,
      namespace: h.namespace,
      body: { metadata: { name: pod.metadata!.name!, namespace: h.namespace } },
    });
    const done = await until(
      name,
      "ended",
      (s) => s.phase === "Succeeded" || s.phase === "Failed",
      900_000,
    );
    assert.equal(done.phase, "Succeeded", done.message);
    assert.equal(done.step, steps);
    assert.deepEqual([done.attempts, done.preemptions], [2, 1]);

    // Exactly the weights of the same job trained here without interruption (2 threads, as
    // the pod's 2 CPUs give it).
    const manifest = path.join(work, "whole.json");
    writeFileSync(manifest, JSON.stringify(finetuneJob("whole", path.join(work, "whole"))));
    const whole = await run([
      "train",
      "--local",
      "-f",
      manifest,
      "--threads",
      "2",
      "--log",
      "json",
    ]);
    assert.equal(whole.code, 0, whole.stderr);
    const a = readHerd(path.join(work, "whole")),
      b = readHerd(path.join(work, name));
    assert.equal(b.step, steps);
    for (const [t, data] of Object.entries(a.tensors))
      assert.deepEqual(
        b.tensors[t],
        data,
        `${t}: the resumed run differs from the uninterrupted one`,
      );

    // After: the TrainingJob's last checkpoint, evaluated with the job's tokenizer (the GGUF's).
    await createObject(h.env, h.namespace, evalJob("after", { trainingJob: { name } }));
    const later = await evalEnded("after");
    assert.equal(later.phase, "Succeeded", later.message);
    const pplBefore = metric(before, "heldout", "perplexity")!;
    const pplAfter = metric(later, "heldout", "perplexity")!;
    assert.ok(pplBefore > 1 && pplAfter > 1, `perplexities ${pplBefore}, ${pplAfter}`);
    assert.ok(pplAfter < pplBefore, `held-out perplexity ${pplBefore} → ${pplAfter}: did not fall`);
    for (const s of [before, later]) {
      const acc = metric(s, "arc_easy", "acc");
      assert.ok(acc !== undefined && acc > 0.25, `ARC-Easy acc ${acc}`);
    }
  });
});
