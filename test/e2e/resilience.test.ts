// The control plane's own parts fail while a TrainingJob trains: the operator, the worker and
// the Temporal server are each killed (SIGKILL) and restarted, one at a time, mid-run. The job
// still completes with one attempt, and the trainer pod it started is the only pod it ever had.
//
// The test runs its own Temporal dev server (own ports, own database file) and its own
// operator and worker processes (`herd operator`, `herd worker`), so killing them disturbs no
// other test; Kubernetes and the node agent are the shared local plane.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { Watch } from "@kubernetes/client-node";
import { Client, Connection } from "@temporalio/client";
import { cluster, createNamespace, testNode, unique, type Cluster } from "../cluster/harness.ts";
import { applyCrds, createObject, waitFor } from "../api/helpers.ts";
import type { ClusterEnv } from "../api/env.ts";
import { ended, tinyTrainingJob, trainingJobs } from "./jobs.ts";
import { freePort } from "../cluster/ports.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const herd = path.join(root, "bin/herd.mjs");

let c: Cluster;
let env: ClusterEnv;
let namespace: string;
let node: Awaited<ReturnType<typeof testNode>>;
let work: string;
let temporalAddress: string;
let ports: { grpc: number; http: number; metrics: number; worker: number };
const running = new Map<string, ChildProcess>();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a process of this test, its output in <work>/<name>.log. */
function start(name: string, command: string, args: string[]): void {
  const log = openSync(path.join(work, `${name}.log`), "a");
  const child = spawn(command, args, {
    stdio: ["ignore", log, log],
    env: { ...process.env, KUBECONFIG: c.kubeconfig, TEMPORAL_ADDRESS: temporalAddress },
  });
  running.set(name, child);
}

/** SIGKILL: no graceful shutdown, as a crash or an OOM kill would end it. */
async function kill(name: string): Promise<void> {
  const child = running.get(name);
  assert.ok(child && child.exitCode === null, `${name} is running`);
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
  running.delete(name);
}

async function startTemporal(): Promise<void> {
  start("temporal", "temporal", [
    "server",
    "start-dev",
    "--headless",
    "--ip=127.0.0.1",
    `--port=${ports.grpc}`,
    `--http-port=${ports.http}`,
    `--metrics-port=${ports.metrics}`,
    `--db-filename=${path.join(work, "temporal.db")}`,
    "--log-level=warn",
  ]);
  await waitFor("the test's Temporal server", async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${ports.http}/api/v1/namespaces/default`);
      return res.ok ? true : undefined;
    } catch {
      return undefined;
    }
  });
}

const startOperator = () =>
  start("operator", process.execPath, [herd, "operator", "--namespace", namespace, "--port", "0"]);
const startWorker = () =>
  start("worker", process.execPath, [herd, "worker", "--port", String(ports.worker)]);

before(async () => {
  c = await cluster();
  work = mkdtempSync(path.join(os.tmpdir(), "herd-resilience-"));
  const taken = new Set<number>(); // nothing binds until all four are chosen
  const port = async () => {
    const p = await freePort(taken);
    taken.add(p);
    return p;
  };
  ports = { grpc: await port(), http: await port(), metrics: await port(), worker: await port() };
  temporalAddress = `127.0.0.1:${ports.grpc}`;
  env = { kubeconfig: c.kc, kubeconfigPath: c.kubeconfig, temporalAddress };
  await applyCrds(env);
  namespace = await createNamespace(c, "herd-resilience");
  node = await testNode(c, unique("resilience-node"), { cpu: "1", memory: "8Gi" });
  await startTemporal();
  startOperator();
  startWorker();
});

after(async () => {
  // The job is done or failed: its workflow no longer needs the operator to clean up.
  for (const name of ["operator", "worker", "temporal"])
    if (running.has(name)) await kill(name).catch(() => {});
  await c?.core.deleteNamespace({ name: namespace }).catch(() => {});
  await c?.removeNode(node.name).catch(() => {});
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A llama-tiny job of `steps` steps on the test's node, checkpointing every 50 steps. */
const steadyJob = (name: string, steps: number) =>
  tinyTrainingJob(name, {
    steps,
    checkpoint: { uri: path.join(work, name), intervalSteps: 50, keep: 2 },
    resources: { image: "herd/herd:dev", cpu: "1", memory: "1Gi", ...node.placement },
    retry: { failureLimit: 3, backoffSeconds: 1 },
  });

const jobs = () => trainingJobs(env, c.core, namespace);
const statusOf = (name: string) => jobs().statusOf(name);

/** Waits until status.step has moved `by` steps past `from`: the job is alive end to end. */
async function progressed(name: string, from: number, by = 20): Promise<number> {
  const s = await waitFor(
    `${name}: step beyond ${from + by}`,
    async () => {
      const s = await statusOf(name);
      return (s.step ?? 0) >= from + by || s.phase === "Succeeded" ? s : undefined;
    },
    120_000,
  );
  assert.equal(s.phase, "Running", `${name} still trains (step ${s.step})`);
  return s.step!;
}

test("killing the operator, the worker and the Temporal server mid-run: the job completes, no duplicate pods", async () => {
  // Every trainer pod the job ever gets, seen through a watch.
  const created = new Set<string>();
  const watch = await new Watch(c.kc).watch(
    `/api/v1/namespaces/${namespace}/pods`,
    { labelSelector: "herd.dev/trainingjob=steady" },
    (type, pod: { metadata?: { uid?: string } }) => {
      if (type === "ADDED" && pod.metadata?.uid) created.add(pod.metadata.uid);
    },
    () => {},
  );
  try {
    await createObject(env, namespace, steadyJob("steady", 6000));
    let step = await progressed("steady", 0);

    await kill("operator");
    step = await progressed("steady", step); // the workflow runs on without its operator
    startOperator();

    await kill("worker");
    // No worker: nothing reports, the trainer keeps training. Progress comes back once the
    // watch's 10 s heartbeat timeout hands it to the new worker (hence 6,000 steps).
    await sleep(3000);
    startWorker();
    step = await progressed("steady", step);

    await kill("temporal");
    await sleep(3000);
    await startTemporal(); // the same database file: every workflow's history is still there
    await progressed("steady", step);

    const s = await jobs().until("steady", "ended", ended, 300_000);
    assert.equal(s.phase, "Succeeded", s.message);
    assert.equal(s.step, 6000);
    assert.deepEqual([s.attempts, s.preemptions, s.failures], [1, 0, 0]);
    const pods = (
      await c.core.listNamespacedPod({ namespace, labelSelector: "herd.dev/trainingjob=steady" })
    ).items;
    assert.deepEqual(
      pods.map((p) => p.status?.phase),
      ["Succeeded"],
    );
    assert.deepEqual([...created], [pods[0]!.metadata!.uid], "one trainer pod, ever");
    // The restarted worker watched the attempt to its end, and its metrics say so.
    const worker = `http://127.0.0.1:${ports.worker}`;
    assert.equal((await fetch(`${worker}/healthz`)).status, 200);
    const metrics = await (await fetch(`${worker}/metrics`)).text();
    assert.match(
      metrics,
      /^herd_worker_attempt_outcomes_total\{kind="TrainingJob",outcome="succeeded",reason="[^"]+"\} [1-9]$/m,
      metrics,
    );
    // Each watch returns at every status report, so how many ended depends on the machine's pace.
    assert.match(
      metrics,
      /^herd_worker_activities_total\{activity="watchAttempt",result="ok"\} [1-9]\d*$/m,
    );
  } finally {
    watch.abort();
  }
});

test("a workflow terminated outside herd mid-run: the operator starts it again; the job resumes and Succeeds", async () => {
  await createObject(env, namespace, steadyJob("orphan", 3000));
  await progressed("orphan", 0, 100); // a checkpoint (every 50 steps) is durable by now
  const { workflowId } = await statusOf("orphan");
  const connection = await Connection.connect({ address: temporalAddress });
  try {
    await new Client({ connection }).workflow
      .getHandle(workflowId!)
      .terminate("terminated by hand (test)");
  } finally {
    await connection.close();
  }
  const s = await jobs().until("orphan", "ended", ended, 300_000);
  assert.equal(s.phase, "Succeeded", s.message);
  assert.equal(s.step, 3000);
  assert.equal(s.recoveries, 1);
  // The lost workflow's attempt, then the one the new workflow started after deleting its pod.
  assert.deepEqual([s.attempts, s.preemptions, s.failures], [2, 0, 0]);
  const events = await jobs().eventsOf("orphan");
  assert.ok(
    events.some((e) => e.reason === "WorkflowTerminated" && e.type === "Warning"),
    events.map((e) => e.reason).join(", "),
  );
});
