// Operator benchmark: N TrainingJobs applied at once (default 1,000) → time from each
// object's creation until its workflow has started (p50, p99, max), and the operator
// process's peak memory (VmHWM). Goal: p99 under 2 s, peak under 200 MB.
//
//   KUBECONFIG=... TEMPORAL_ADDRESS=... node --import tsx bench/operator.ts [--jobs 1000]
//     [--concurrency 64] ["--operator-node-options=--max-semi-space-size=2"]
//
// The operator runs as its own process (`herd operator --namespace <throwaway>`), so its
// memory is its own; a control worker runs in this process, so workflows also write status
// and the operator sees the update events a real cluster would produce.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { openSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { Client, Connection } from "@temporalio/client";
import { clusterEnv } from "../test/api/env.ts";
import { applyCrds, createObject, silent, sleep, waitFor } from "../test/api/helpers.ts";
import { trainingJobObject } from "../test/crds/cases.ts";
import { startControlWorker } from "../workers/main.ts";
import { workflowIdOf } from "../workflows/types.ts";
import { freePort } from "../test/cluster/ports.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}

/** Runs `fn` over items with at most `limit` in flight. */
async function pool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/** Sum and count of a metric's series, from the operator's /metrics. */
function metricTotal(text: string, name: string): number {
  return text
    .split("\n")
    .filter((l) => l.startsWith(name))
    .reduce((n, l) => n + Number(l.split(" ").at(-1)), 0);
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in 1/100 s ticks
}

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      "operator-node-options": { type: "string", default: "" },
      jobs: { type: "string", default: "1000" },
      concurrency: { type: "string", default: "64" },
    },
  });
  const jobs = Number(values.jobs);
  const env = await clusterEnv();
  if (!env) {
    console.log("bench/operator: skipped, no cluster (set KUBECONFIG and TEMPORAL_ADDRESS)");
    return 0;
  }
  await applyCrds(env);
  const namespace = `herd-bench-${randomBytes(3).toString("hex")}`;
  const core = env.kubeconfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const worker = await startControlWorker({
    kubeconfig: env.kubeconfig,
    temporalAddress: env.temporalAddress,
    logger: silent,
  });
  const connection = await Connection.connect({ address: env.temporalAddress });
  const client = new Client({ connection });

  const port = await freePort();
  const operatorLog = path.join(os.tmpdir(), "herd-bench-operator.log");
  const operator = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      path.join(root, "bin/herd.mjs"),
      "operator",
      "--namespace",
      namespace,
      "--port",
      String(port),
      "--concurrency",
      values.concurrency,
    ],
    {
      cwd: root,
      env: {
        ...process.env,
        KUBECONFIG: env.kubeconfigPath,
        TEMPORAL_ADDRESS: env.temporalAddress,
        NODE_OPTIONS: values["operator-node-options"],
      },
      stdio: ["ignore", openSync(operatorLog, "w"), "inherit"],
    },
  );
  const pid = operator.pid!;
  try {
    await sleep(3000); // the operator lists (nothing yet) and settles
    const idle = peakRssMb(pid);
    const cpuBefore = cpuSeconds(pid);

    const names = Array.from({ length: jobs }, (_, i) => `bench-${i}`);
    const t0 = Date.now();
    const createLatencies: number[] = [];
    const created = await pool(names, 64, async (name) => {
      const sent = Date.now();
      const obj = await createObject(env, namespace, trainingJobObject(name));
      createLatencies.push((Date.now() - sent) / 1000);
      return {
        id: workflowIdOf({ kind: "TrainingJob", namespace, name, uid: obj.metadata.uid }),
        createdAt: Date.now(),
      };
    });
    const createSeconds = (Date.now() - t0) / 1000;

    // Wait on the operator's own count (cheap), then ask Temporal once per workflow.
    await waitFor(
      "every workflow started",
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return metricTotal(text, "herd_operator_workflows_started_total") >= jobs
          ? true
          : undefined;
      },
      300_000,
    );
    const startTimes = await pool(created, 16, async (c) =>
      (await client.workflow.getHandle(c.id).describe()).startTime.getTime(),
    );
    const latencies = created
      .map((c, i) => Math.max(0, startTimes[i]! - c.createdAt) / 1000)
      .sort((a, b) => a - b);
    const peak = peakRssMb(pid);
    const cpu = cpuSeconds(pid) - cpuBefore;
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const reconciles = metricTotal(metrics, "herd_operator_reconciles_total");
    const errors = metricTotal(metrics, "herd_operator_reconcile_errors_total");
    const seconds = metricTotal(metrics, "herd_operator_reconcile_duration_seconds_sum");
    const heapMb = metricTotal(metrics, "nodejs_heap_used_bytes") / 2 ** 20;
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    createLatencies.sort((a, b) => a - b);
    const createP50 = percentile(createLatencies, 50);
    console.log(
      `bench/operator: ${jobs} TrainingJobs created in ${createSeconds.toFixed(2)} s (64 in flight)`,
    );
    console.log(
      `  creation → workflow started: p50 ${p50.toFixed(3)} s, p99 ${p99.toFixed(3)} s, max ${latencies.at(-1)!.toFixed(3)} s (goal p99 < 2 s: ${(p99 / 2).toFixed(2)}× the goal)`,
    );
    if (values["operator-node-options"])
      console.log(`  operator NODE_OPTIONS: ${values["operator-node-options"]}`);
    console.log(
      `  operator peak memory (VmHWM): ${peak.toFixed(0)} MB, ${idle.toFixed(0)} MB idle before the jobs (goal < 200 MB: ${(peak / 200).toFixed(2)}× the goal); V8 heap in use at the end ${heapMb.toFixed(0)} MB`,
    );
    console.log(
      `  ${reconciles} reconciles (${errors} failed and retried), mean ${((seconds / reconciles) * 1000).toFixed(1)} ms each`,
    );
    console.log(`  operator log: ${operatorLog}`);
    console.log(
      `  operator CPU: ${cpu.toFixed(1)} s for ${jobs} jobs, ${((cpu / jobs) * 1000).toFixed(1)} ms per job`,
    );
    console.log(
      `  baseline, the API server's own create latency under the same load: p50 ${createP50.toFixed(3)} s, p99 ${percentile(createLatencies, 99).toFixed(3)} s; operator p50 = ${(p50 / createP50).toFixed(1)}× a create`,
    );
    // Clean up through the operator itself: deletion cancels every workflow.
    const custom = env.kubeconfig.makeApiClient(CustomObjectsApi);
    await custom.deleteCollectionNamespacedCustomObject({
      group: "herd.dev",
      version: "v1alpha1",
      namespace,
      plural: "trainingjobs",
    });
    await waitFor(
      "objects deleted",
      async () => {
        const list = (await custom.listNamespacedCustomObject({
          group: "herd.dev",
          version: "v1alpha1",
          namespace,
          plural: "trainingjobs",
        })) as { items: unknown[] };
        return list.items.length === 0 ? true : undefined;
      },
      300_000,
    );
    return 0;
  } finally {
    operator.kill("SIGTERM");
    await new Promise((r) => operator.once("exit", r));
    await core.deleteNamespace({ name: namespace }).catch(() => {});
    worker.worker.shutdown();
    await worker.run;
    await connection.close();
  }
}

process.exitCode = await main();
