// Evaluation end to end on the local control plane: TrainingJobs train tiny models through
// the real operator, workflows and trainer pods; EvalJobs evaluate their checkpoints in
// evaluator pods run by the node agent from this checkout; an EvalSweep evaluates a running
// TrainingJob on a real Temporal Schedule. Each test asserts status, files and, for the
// sweep, the schedule itself.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { ScheduleNotFoundError } from "@temporalio/client";
import { cluster, testNode, unique, type Cluster } from "../cluster/harness.ts";
import {
  createObject,
  deleteObject,
  executionsOf,
  getObject,
  harness,
  patchObject,
  waitFor,
  type Harness,
} from "../api/helpers.ts";
import type { KindName } from "../../crds/kinds.ts";
import type { Operator } from "../../operator/operator.ts";
import { stepName } from "../../workers/trainer/checkpoint.ts";
import { resultsUriOf } from "../../workers/eval/checkpoints.ts";
import type { ResultsFile } from "../../workers/eval/run.ts";
import {
  scheduleIdOf,
  sweepEvalJobName,
  type SweepHistoryEntry,
} from "../../workflows/eval-types.ts";
import { workflowIdOf } from "../../workflows/types.ts";
import { checkpointFolder } from "../../workers/checkpoint-folder.ts";
import { gatherReport } from "../../workers/report/gather.ts";
import { createS3Secret, objectStorageOf, tinyTrainingJob } from "./jobs.ts";
import { shakespeare } from "../data/files.ts";
import { readTextDecompressed } from "../../workers/compressed.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const corpus = shakespeare;

let c: Cluster;
let h: Harness;
let op: Operator;
let node: Awaited<ReturnType<typeof testNode>>;
let work: string;
let choices: string;
let text: string;

type Status = {
  phase?: string;
  message?: string;
  observedGeneration?: number;
  attempts?: number;
  preemptions?: number;
  checkpoint?: { uri: string; step?: number; tokensSeen?: number };
  results?: { task: string; examples: number; metrics: { name: string; value: number }[] }[];
  headline?: { task: string; metric: string; value: number };
  resultsUri?: string;
  lastCheckpoint?: { step: number };
  scheduleId?: string;
  nextRunTime?: string;
  history?: SweepHistoryEntry[];
  lastEvaluatedStep?: number;
  conditions?: { type: string; reason: string }[];
};

const statusOf = async (kind: KindName, name: string) =>
  ((await getObject(h.env, kind, h.namespace, name))?.status ?? {}) as Status;

const until = (
  kind: KindName,
  name: string,
  what: string,
  ok: (s: Status) => boolean,
  timeoutMs = 180_000,
) =>
  waitFor(
    `${kind} ${name}: ${what}`,
    async () => {
      const s = await statusOf(kind, name);
      return ok(s) ? s : undefined;
    },
    timeoutMs,
  );

const ended = (s: Status) => s.phase === "Succeeded" || s.phase === "Failed";

const placement = () => ({
  image: "herd/herd:dev",
  cpu: "1",
  memory: "1Gi",
  ...node.placement,
});

/** A tiny TrainingJob (llama-tiny, byte tokens) on the test's node; checkpoints in `work` or `uri`. */
function trainingJob(
  name: string,
  steps: number,
  intervalSteps: number,
  keep: number,
  uri = path.join(work, name),
) {
  return tinyTrainingJob(name, {
    steps,
    checkpoint: { uri, intervalSteps, keep },
    resources: placement(),
  });
}

/** Eight two-way items and twenty lines of text: seconds of work for llama-tiny. */
const tasks = () => [
  { name: "lines", type: "multipleChoice", uri: choices, limit: 8 },
  { name: "shakespeare", type: "perplexity", uri: text },
];

function evalJob(name: string, checkpoint: Record<string, unknown>, taskList = tasks()) {
  return {
    apiVersion: "herd.dev/v1alpha1",
    kind: "EvalJob",
    metadata: { name },
    spec: { checkpoint, tasks: taskList, resources: placement() },
  };
}

const readResults = (file: string) => JSON.parse(readFileSync(file, "utf8")) as ResultsFile;

before(async () => {
  c = await cluster();
  h = await harness(
    {
      kubeconfig: c.kc,
      kubeconfigPath: c.kubeconfig,
      temporalAddress: c.temporalAddress,
      s3: objectStorageOf(c),
    },
    "eval",
  );
  await createS3Secret(c, h.namespace);
  // One trainer and one evaluator at a time, with room for a second evaluator.
  node = await testNode(c, unique("eval-node"), { cpu: "3", memory: "8Gi" });
  work = mkdtempSync(path.join(os.tmpdir(), "herd-eval-e2e-"));
  // Multiple choice that fits llama-tiny's 128-byte context: which ending belongs to the
  // beginning of a line of the corpus, its own or the next line's.
  const lines = readTextDecompressed(corpus)
    .split("\n")
    .filter((l) => l.length >= 20 && l.length <= 50);
  const items = lines.slice(0, 9).map((l, i) => {
    const cut = l.lastIndexOf(" ", 30);
    const other = lines[i + 1]!;
    return {
      context: l.slice(0, cut),
      choices: [l.slice(cut + 1), other.slice(other.lastIndexOf(" ", 30) + 1)],
      label: 0,
    };
  });
  choices = path.join(work, "lines.jsonl");
  writeFileSync(choices, items.map((x) => JSON.stringify(x)).join("\n") + "\n");
  text = path.join(work, "shakespeare-20.txt");
  writeFileSync(text, readTextDecompressed(corpus).split("\n").slice(0, 20).join("\n"));
  op = await h.newOperator();
});

after(async () => {
  await h?.close();
  await c?.removeNode(node.name).catch(() => {});
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("EvalJob", () => {
  test("a TrainingJob's checkpoint at a given step → Succeeded, metrics in status, results file beside it", async () => {
    await createObject(h.env, h.namespace, trainingJob("trained", 10, 5, 5));
    const t = await until("TrainingJob", "trained", "Succeeded", ended);
    assert.equal(t.phase, "Succeeded", t.message);

    await createObject(
      h.env,
      h.namespace,
      evalJob("at-five", { trainingJob: { name: "trained", step: 5 } }),
    );
    const s = await until("EvalJob", "at-five", "ended", ended);
    assert.equal(s.phase, "Succeeded", s.message);
    const dir = path.join(work, "trained", stepName(5));
    assert.equal(s.checkpoint?.uri, dir);
    assert.equal(s.checkpoint?.step, 5);
    assert.equal(s.checkpoint?.tokensSeen, 5 * 512);
    assert.equal(s.attempts, 1);
    const byTask = new Map(s.results?.map((r) => [r.task, r]));
    assert.equal(byTask.get("lines")?.examples, 8);
    assert.deepEqual(
      byTask.get("lines")?.metrics.map((m) => m.name),
      ["acc", "acc_norm", "acc_per_token"],
    );
    const ppl = byTask.get("shakespeare")?.metrics.find((m) => m.name === "perplexity");
    // A byte model after 5 steps: better than chance over 256 bytes, far from perfect.
    assert.ok(ppl && ppl.value > 1 && ppl.value < 256, `perplexity ${ppl?.value}`);
    assert.deepEqual(
      [s.headline?.task, s.headline?.metric],
      ["lines", "acc_norm"],
      JSON.stringify(s.headline),
    );
    // The results file beside the checkpoint holds the same numbers.
    const file = resultsUriOf(dir, "at-five");
    assert.equal(s.resultsUri, file);
    const results = readResults(file);
    assert.equal(results.job, "at-five");
    assert.equal(results.checkpoint.step, 5);
    assert.equal(results.tasks.find((r) => r.task === "shakespeare")?.metrics[0]?.value, ppl.value);
  });

  test("missing task data → Failed at once, the message names the file", async () => {
    const missing = path.join(work, "no-such-task.jsonl");
    // The checkpoint by URI this time (and its tokenizer with it).
    const job = evalJob(
      "no-data",
      { uri: path.join(work, "trained", stepName(10)), format: "herd" },
      [{ name: "gone", type: "multipleChoice", uri: missing, limit: 8 }],
    );
    Object.assign(job.spec, { tokenizer: { type: "bytes" } });
    await createObject(h.env, h.namespace, job);
    const s = await until("EvalJob", "no-data", "ended", ended);
    assert.equal(s.phase, "Failed");
    assert.ok(s.message?.includes(missing), s.message);
    assert.equal(s.attempts, 1, "bad input is not retried");
    assert.ok(s.conditions?.some((x) => x.type === "Failed" && x.reason === "UserError"));
    assert.equal(
      existsSync(resultsUriOf(path.join(work, "trained", stepName(10)), "no-data")),
      false,
    );
  });

  test("a step the TrainingJob has no checkpoint of → Failed, naming the step", async () => {
    await createObject(
      h.env,
      h.namespace,
      evalJob("no-step", { trainingJob: { name: "trained", step: 7 } }),
    );
    const s = await until("EvalJob", "no-step", "ended", ended);
    assert.equal(s.phase, "Failed");
    assert.match(s.message ?? "", /step 7: TrainingJob trained has no durable checkpoint/);
    assert.equal(s.attempts, 0, "no evaluator pod was started");
  });
  test("an evaluator evicted mid-evaluation → evaluated again, Succeeded", async () => {
    // 3000 lines of perplexity: long enough to be caught running.
    const long = [{ name: "long", type: "perplexity", uri: corpus, limit: 3000 }];
    const job = evalJob("evicted", { trainingJob: { name: "trained", step: 10 } }, long);
    await createObject(h.env, h.namespace, job);
    const pod = await waitFor("the evaluator running", async () => {
      const [p] = (
        await c.core.listNamespacedPod({
          namespace: h.namespace,
          labelSelector: "herd.dev/evaljob=evicted",
        })
      ).items;
      return p?.status?.phase === "Running" ? p : undefined;
    });
    const name = pod.metadata!.name!;
    await c.core.createNamespacedPodEviction({
      name,
      namespace: h.namespace,
      body: { metadata: { name, namespace: h.namespace } },
    });
    const s = await until("EvalJob", "evicted", "ended", ended);
    assert.equal(s.phase, "Succeeded", s.message);
    assert.deepEqual([s.attempts, s.preemptions], [2, 1]);
    assert.equal(s.results?.[0]?.task, "long");
    const events = await c.core.listNamespacedEvent({
      namespace: h.namespace,
      fieldSelector: "involvedObject.name=evicted",
    });
    assert.ok(
      events.items.some((e) => e.reason === "EvictionByEvictionAPI"),
      events.items.map((e) => `${e.reason}: ${e.message}`).join("; "),
    );
  });
});

describe("EvalSweep", () => {
  const sweepName = "sweep";
  let sweepUid: string;
  const training = "swept";
  const sweepEvalJobs = async () =>
    (
      (await h.custom.listNamespacedCustomObject({
        group: "herd.dev",
        version: "v1alpha1",
        namespace: h.namespace,
        plural: "evaljobs",
        labelSelector: `herd.dev/evalsweep=${sweepName}`,
      })) as { items: { metadata: { name: string }; status?: Status }[] }
    ).items;
  const schedule = () => h.client.schedule.getHandle(scheduleIdOf(sweepRef()));
  const sweepRef = () => ({
    kind: "EvalSweep" as const,
    namespace: h.namespace,
    name: sweepName,
    uid: sweepUid,
  });

  test("evaluates a running TrainingJob's checkpoints on its schedule; an operator restart duplicates nothing", async () => {
    // Checkpoints every 20 steps, all kept: the sweep finds a new one at each run.
    await createObject(h.env, h.namespace, trainingJob(training, 100_000, 20, 1000));
    await until("TrainingJob", training, "a checkpoint", (s) => (s.lastCheckpoint?.step ?? 0) > 0);
    const sweep = {
      apiVersion: "herd.dev/v1alpha1",
      kind: "EvalSweep",
      metadata: { name: sweepName },
      spec: {
        trainingJob: { name: training },
        schedule: { interval: "5s" },
        template: {
          metadata: { labels: { team: "eval" } },
          spec: { tasks: tasks(), resources: placement() },
        },
      },
    };
    const created = await createObject(h.env, h.namespace, sweep);
    sweepUid = created.metadata.uid;
    await until("EvalSweep", sweepName, "a first result", (s) => (s.history?.length ?? 0) >= 1);

    // The operator goes away mid-sweep and a new one takes over.
    await op.stop();
    op = await h.newOperator();

    const s = await until(
      "EvalSweep",
      sweepName,
      "two results",
      (s) => (s.history?.length ?? 0) >= 2,
    );
    assert.equal(s.phase, "Active");
    assert.equal(s.scheduleId, scheduleIdOf(sweepRef()));
    const steps = s.history!.map((e) => e.step);
    assert.deepEqual(
      steps,
      [...new Set(steps)].sort((a, b) => a - b),
      "distinct steps, oldest first",
    );
    assert.equal(s.lastEvaluatedStep, steps.at(-1));
    for (const e of s.history!) {
      assert.ok(e.metrics.some((m) => m.task === "lines" && m.metric === "acc_norm"));
      // The results file beside each checkpoint is the record of it.
      const file = resultsUriOf(path.join(work, training, stepName(e.step)), e.evalJob);
      assert.equal(readResults(file).checkpoint.step, e.step);
    }

    // Nothing doubled: one sweep workflow, one schedule, one EvalJob per step, each of them
    // evaluated by a single evaluator pod, and every scheduled run its own workflow.
    assert.equal(await executionsOf(h.client, workflowIdOf(sweepRef())), 1);
    let schedules = 0;
    for await (const x of h.client.schedule.list())
      if (x.scheduleId === scheduleIdOf(sweepRef())) schedules++;
    assert.equal(schedules, 1);
    const jobs = await sweepEvalJobs();
    const done = jobs.filter((j) => j.status?.phase === "Succeeded");
    const jobSteps = done.map((j) => j.status!.checkpoint!.step!);
    assert.equal(new Set(jobSteps).size, jobSteps.length, `steps ${jobSteps.join(", ")}`);
    for (const j of done) assert.equal(j.status!.attempts, 1, j.metadata.name);
    const d = await schedule().describe();
    const runs = d.info.recentActions.map((a) => a.action.workflow.workflowId);
    assert.ok(runs.length >= 2, `runs: ${runs.join(", ")}`);
    assert.equal(new Set(runs).size, runs.length);
  });

  test("suspend pauses the schedule; clearing it resumes", async () => {
    await patchObject(h.env, "EvalSweep", h.namespace, sweepName, { spec: { suspend: true } });
    const paused = await until("EvalSweep", sweepName, "Suspended", (s) => s.phase === "Suspended");
    assert.equal((await schedule().describe()).state.paused, true);
    assert.equal(paused.nextRunTime, undefined, "no next run while paused");

    await patchObject(h.env, "EvalSweep", h.namespace, sweepName, { spec: { suspend: false } });
    const active = await until("EvalSweep", sweepName, "Active", (s) => s.phase === "Active");
    assert.ok(active.nextRunTime, "a next run once resumed");
    const resumed = await schedule().describe();
    assert.equal(resumed.state.paused, false);
    const taken = resumed.info.numActionsTaken;
    // A run still in flight from before the pause makes the schedule skip (overlap Skip):
    // the next action may wait for a whole evaluation.
    await waitFor(
      "a run after resuming",
      async () => ((await schedule().describe()).info.numActionsTaken > taken ? true : undefined),
      180_000,
    );
  });

  test("delete removes the schedule and the sweep's EvalJobs; results files stay", async () => {
    const history = (await statusOf("EvalSweep", sweepName)).history ?? [];
    assert.ok(history.length >= 2);
    await deleteObject(h.env, "EvalSweep", h.namespace, sweepName);
    await waitFor("the sweep gone", async () =>
      (await getObject(h.env, "EvalSweep", h.namespace, sweepName)) ? undefined : true,
    );
    await assert.rejects(schedule().describe(), ScheduleNotFoundError);
    const d = await h.client.workflow.getHandle(workflowIdOf(sweepRef())).describe();
    assert.equal(d.status.name, "CANCELLED");
    await waitFor(
      "its EvalJobs garbage-collected",
      async () => ((await sweepEvalJobs()).length === 0 ? true : undefined),
      60_000,
    );
    for (const e of history)
      assert.ok(
        existsSync(resultsUriOf(path.join(work, training, stepName(e.step)), e.evalJob)),
        `results of step ${e.step}`,
      );
    await deleteObject(h.env, "TrainingJob", h.namespace, training);
  });
});

describe("a sweep's failed EvalJob", () => {
  test("is created again at the next run and succeeds once its input is there; registry tasks run in the pod", async () => {
    const training = "retried";
    await createObject(h.env, h.namespace, trainingJob(training, 10, 10, 1));
    const t = await until("TrainingJob", training, "Succeeded", ended);
    assert.equal(t.phase, "Succeeded", t.message);
    // The task file is not there yet: the first EvalJob fails (bad input, not retried by
    // itself); the sweep creates it again at a later run, once the file exists.
    const late = path.join(work, "late-lines.jsonl");
    const sweep = {
      apiVersion: "herd.dev/v1alpha1",
      kind: "EvalSweep",
      metadata: { name: "retry" },
      spec: {
        trainingJob: { name: training },
        schedule: { interval: "5s" },
        template: {
          spec: {
            tasks: [
              { name: "lines", type: "multipleChoice", uri: late, limit: 8 },
              { name: "winogrande", limit: 4 },
            ],
            resources: placement(),
          },
        },
      },
    };
    await createObject(h.env, h.namespace, sweep);
    const job = sweepEvalJobName("retry", 10);
    const failed = await until("EvalJob", job, "Failed", (s) => s.phase === "Failed");
    assert.match(failed.message ?? "", /late-lines\.jsonl does not exist/);
    writeFileSync(late, readFileSync(choices));
    const s = await until("EvalSweep", "retry", "step 10", (x) => (x.history?.length ?? 0) >= 1);
    assert.deepEqual(
      s.history!.map((e) => e.step),
      [10],
    );
    // the registry task ran in the evaluator pod, from herd's own data
    assert.ok(s.history![0]!.metrics.some((m) => m.task === "winogrande" && m.metric === "acc"));
    const o = (await getObject(h.env, "EvalJob", h.namespace, job)) as {
      metadata: { annotations?: Record<string, string> };
      status?: Status;
    };
    assert.equal(o.metadata.annotations?.["herd.dev/sweep-attempt"], "2");
    assert.equal(o.status?.phase, "Succeeded");
    await deleteObject(h.env, "EvalSweep", h.namespace, "retry");
    await deleteObject(h.env, "TrainingJob", h.namespace, training);
  });
});

describe("checkpoints in S3", () => {
  test("an EvalJob and an EvalSweep evaluate S3 checkpoints, results beside them in S3; herd report reads it all", async () => {
    const training = "ins3";
    const prefix = `${h.namespace}/${training}/`;
    const uri = `s3://${c.s3.bucket}/${prefix}`.replace(/\/$/, "");
    const s3 = c.s3Client();
    const resultsKey = (step: number, job: string) => `${prefix}${stepName(step)}.eval-${job}.json`;
    await createObject(h.env, h.namespace, trainingJob(training, 10, 5, 5, uri));
    const t = await until("TrainingJob", training, "Succeeded", ended);
    assert.equal(t.phase, "Succeeded", t.message);

    // One EvalJob on the latest checkpoint: the evaluator downloads it, uploads the results.
    await createObject(
      h.env,
      h.namespace,
      evalJob("s3-latest", { trainingJob: { name: training } }),
    );
    const s = await until("EvalJob", "s3-latest", "ended", ended);
    assert.equal(s.phase, "Succeeded", s.message);
    assert.equal(s.checkpoint?.uri, `${uri}/${stepName(10)}`);
    assert.equal(s.resultsUri, `${uri}/${stepName(10)}.eval-s3-latest.json`);
    const results = JSON.parse(
      (await s3.get(resultsKey(10, "s3-latest"))).toString(),
    ) as ResultsFile;
    assert.equal(results.checkpoint.uri, `${uri}/${stepName(10)}`);
    assert.equal(results.checkpoint.step, 10);
    const ppl = (r: { task: string; metrics: { name: string; value: number }[] }[] | undefined) =>
      r?.find((x) => x.task === "shakespeare")?.metrics.find((m) => m.name === "perplexity")?.value;
    assert.equal(ppl(results.tasks), ppl(s.results));

    // A sweep over every checkpoint of the job: both steps, each result in S3.
    const sweep = {
      apiVersion: "herd.dev/v1alpha1",
      kind: "EvalSweep",
      metadata: { name: "s3-sweep" },
      spec: {
        trainingJob: { name: training },
        checkpoints: "everyNew",
        schedule: { interval: "5s" },
        template: { spec: { tasks: tasks(), resources: placement() } },
      },
    };
    await createObject(h.env, h.namespace, sweep);
    const swept = await until(
      "EvalSweep",
      "s3-sweep",
      "steps 5 and 10",
      (x) => (x.history?.length ?? 0) >= 2,
    );
    assert.deepEqual(
      swept.history!.map((e) => e.step),
      [5, 10],
    );
    for (const e of swept.history!)
      assert.ok(await s3.head(resultsKey(e.step, e.evalJob)), `results of step ${e.step} in S3`);
    await deleteObject(h.env, "EvalSweep", h.namespace, "s3-sweep");

    // The report, from S3: the loss of every step, acc_norm at both checkpoints.
    const data = await gatherReport(
      training,
      checkpointFolder(uri, { s3: objectStorageOf(c).config }),
    );
    assert.deepEqual(
      data.loss.map((p) => p.step),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    const accNorm = data.evals.find((x) => x.task === "lines" && x.metric === "acc_norm");
    assert.deepEqual(
      accNorm?.points.map((p) => [p.step, p.tokens]),
      [
        [5, 5 * 512],
        [10, 10 * 512],
      ],
    );
    // …and through the command, with the endpoint and keys of `herd dev env`.
    const html = path.join(work, "ins3-report.html");
    const { endpoint, region, accessKeyId, secretAccessKey } = c.s3;
    const r = spawnSync(
      process.execPath,
      [path.join(root, "bin/herd.mjs"), "report", "--checkpoints", uri, "-o", html],
      {
        encoding: "utf8",
        env: {
          ...process.env,
          HERD_S3_ENDPOINT: endpoint,
          AWS_REGION: region,
          AWS_ACCESS_KEY_ID: accessKeyId,
          AWS_SECRET_ACCESS_KEY: secretAccessKey,
        },
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(readFileSync(html, "utf8"), /acc_norm/);
    for (const o of await s3.list(prefix)) await s3.delete(o.key);
  });
});
