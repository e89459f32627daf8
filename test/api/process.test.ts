// End to end through the CLI entries, as deployed: `herd worker` and `herd operator` as
// processes; a TrainingJob gets its status; SIGTERM stops both cleanly (exit 0).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { clusterEnv } from "./env.ts";
import {
  createObject,
  getObject,
  harness,
  parkedTrainingJob,
  waitFor,
  type Harness,
} from "./helpers.ts";
import { freePort } from "../cluster/ports.ts";

const env = await clusterEnv();
const root = path.resolve(import.meta.dirname, "../..");
let h: Harness;

before(async () => {
  h = await harness(env, "proc");
});
after(async () => {
  await h.close();
});

function herd(args: string[]): ChildProcess {
  return spawn(process.execPath, [path.join(root, "bin/herd.mjs"), ...args], {
    env: {
      ...process.env,
      KUBECONFIG: env.kubeconfigPath,
      TEMPORAL_ADDRESS: env.temporalAddress,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
}

function exitCode(p: ChildProcess, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no exit within ${timeoutMs} ms`)), timeoutMs);
    p.once("exit", (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

test("herd operator and herd worker processes drive a TrainingJob and stop on SIGTERM", async () => {
  const port = await freePort();
  const worker = herd(["worker"]);
  const operator = herd(["operator", "--namespace", h.namespace, "--port", String(port)]);
  try {
    // Generous: both start through tsx, and the worker bundles the workflows with webpack
    // first, on a CI machine of two cores busy with other test files.
    await waitFor(
      "operator ready",
      async () =>
        (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined,
      120_000,
    );
    await createObject(env, h.namespace, parkedTrainingJob("e2e"));
    const o = await waitFor(
      "status from the worker",
      async () => {
        const x = await getObject(env, "TrainingJob", h.namespace, "e2e");
        return x?.status?.observedGeneration === 1 ? x : undefined;
      },
      120_000,
    );
    // The training workflow is Pending until its first attempt's pods exist, then Running.
    assert.ok(["Pending", "Running"].includes(o.status!.phase!), o.status!.phase);
    operator.kill("SIGTERM");
    assert.equal(await exitCode(operator, 15_000), 0);
    worker.kill("SIGTERM");
    assert.equal(await exitCode(worker, 30_000), 0);
  } finally {
    operator.kill("SIGKILL");
    worker.kill("SIGKILL");
  }
});
