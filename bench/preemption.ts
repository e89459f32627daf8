// Preemption benchmark on the local control plane: a tiny TrainingJob whose trainer pod is
// deleted (as by a preemption) a few times mid-run. For each preemption it measures
//   - replacement: time from the deletion request to the creation of the next attempt's pod
//     (seen by a watch), which includes the trainer's SIGTERM checkpoint and exit;
//   - steps lost: steps the preempted trainer was seen completing (its followed log) beyond
//     the step of the checkpoint the next attempt resumed from (goal 0: the trainer
//     checkpoints on SIGTERM). The followed log can trail the process by a few steps, so
//     "resumed at" may exceed "last step seen"; that is 0 steps lost.
//
//   HERD_STATE=<folder> node --import tsx bench/preemption.ts [--preemptions 3]
import { Writable } from "node:stream";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Log, Watch, type V1Pod } from "@kubernetes/client-node";
import { cluster, testNode, unique } from "../test/cluster/harness.ts";
import { createObject, getObject, harness, waitFor } from "../test/api/helpers.ts";
import { tinyTrainingJob } from "../test/e2e/jobs.ts";
import { trainerPodName } from "../workers/activities/names.ts";

const { values } = parseArgs({ options: { preemptions: { type: "string", default: "3" } } });
const preemptions = Number(values.preemptions);

const c = await cluster();
const h = await harness(
  { kubeconfig: c.kc, kubeconfigPath: c.kubeconfig, temporalAddress: c.temporalAddress },
  "bench",
);
const node = await testNode(c, unique("bench-node"), { cpu: "1", memory: "8Gi" });
const work = mkdtempSync(path.join(os.tmpdir(), "herd-bench-"));
await h.newOperator();

const name = "bench";
const { metadata } = await createObject(
  h.env,
  h.namespace,
  tinyTrainingJob(name, {
    steps: 400 * (preemptions + 1),
    checkpoint: { uri: path.join(work, name), intervalSteps: 1000, keep: 2 },
    resources: { image: "herd/herd:bench", cpu: "1", memory: "1Gi", ...node.placement },
  }),
);

const object = { kind: "TrainingJob", namespace: h.namespace, name, uid: metadata.uid } as const;

// Pod creations, by the local clock, as a watch delivers them.
const created = new Map<string, number>();
const watch = await new Watch(c.kc).watch(
  `/api/v1/namespaces/${h.namespace}/pods`,
  {},
  (type: string, pod: V1Pod) => {
    if (type === "ADDED" && !created.has(pod.metadata!.name!))
      created.set(pod.metadata!.name!, Date.now());
  },
  () => {},
);

// A running pod's log, followed into memory.
async function follow(pod: string): Promise<{ text: () => string; stop: () => void }> {
  let text = "";
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  const ctl = await new Log(c.kc).log(h.namespace, pod, "trainer", sink, { follow: true });
  return { text: () => text, stop: () => ctl.abort() };
}

const steps = (log: string, event: string) =>
  log
    .split("\n")
    .filter((l) => l.includes(`"event":"${event}"`))
    .map((l) => (JSON.parse(l) as { step: number }).step);

const rows: { replacementMs: number; stepsDone: number; resumedAt: number; lost: number }[] = [];
let step = 0;
for (let i = 1; i <= preemptions; i++) {
  const pod = trainerPodName(object, i, 0);
  await waitFor(`${pod} running`, async () =>
    (await c.core.readNamespacedPod({ name: pod, namespace: h.namespace })).status?.phase ===
    "Running"
      ? true
      : undefined,
  );
  const log = await follow(pod);
  await waitFor(
    `${pod} beyond step ${step + 100}`,
    async () => ((steps(log.text(), "step").at(-1) ?? 0) > step + 100 ? true : undefined),
    120_000,
  );
  const t0 = Date.now();
  await c.core.deleteNamespacedPod({ name: pod, namespace: h.namespace });
  const next = trainerPodName(object, i + 1, 0);
  const t1 = await waitFor(`${next} created`, async () => created.get(next), 120_000);
  log.stop();
  const stepsDone = Math.max(...steps(log.text(), "step"));
  const nextLog = await follow(next);
  const resumedAt = await waitFor(
    `${next} resumed`,
    async () => {
      const line = nextLog
        .text()
        .split("\n")
        .find((l) => l.includes('"msg":"resumed from'));
      return line ? (JSON.parse(line) as { step: number }).step : undefined;
    },
    120_000,
  );
  nextLog.stop();
  rows.push({
    replacementMs: t1 - t0,
    stepsDone,
    resumedAt,
    lost: Math.max(0, stepsDone - resumedAt),
  });
  step = stepsDone;
}
const final = await waitFor(
  "Succeeded",
  async () => {
    const s = (await getObject(h.env, "TrainingJob", h.namespace, name))?.status;
    return s?.phase === "Succeeded" || s?.phase === "Failed" ? s : undefined;
  },
  300_000,
);
watch.abort();

console.log("preemption  replacement (ms)  last step seen  resumed at  steps lost");
rows.forEach((r, i) =>
  console.log(
    `${String(i + 1).padStart(10)}  ${String(r.replacementMs).padStart(16)}  ${String(r.stepsDone).padStart(14)}  ${String(r.resumedAt).padStart(10)}  ${String(r.lost).padStart(10)}`,
  ),
);
console.log(
  `final: ${final.phase}, step ${String(final.step)}, preemptions ${String(final.preemptions)}, failures ${String(final.failures)}`,
);
await h.close();
await c.removeNode(node.name).catch(() => {});
rmSync(work, { recursive: true, force: true });
process.exit(0);
