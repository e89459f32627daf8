// `herd demo` (npm run demo): herd end to end on this machine. Brings up the local control
// plane (Kubernetes, Temporal, S3, the node agent), installs the CRDs, runs the operator and
// the control worker, applies examples/tiny-train.yaml, shows live progress (phase, step,
// loss) until the job ends, and prints where the checkpoints and logs are.
// `herd demo --local` trains the same job in this process instead, as `herd train --local`.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { isNotFound } from "../workers/kube-errors.ts";
import { Client, Connection } from "@temporalio/client";
import { destination, pino } from "pino";
import { parse } from "yaml";
import { installCrds } from "../crds/install.ts";
import { parameterCount, resolveModel } from "../crds/model.ts";
import { readTrainingJob } from "../crds/manifest.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const manifest = path.join(root, "examples/tiny-train.yaml");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(argv: string[] = []): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      local: { type: "boolean" },
      json: { type: "boolean" },
      state: { type: "string" },
      namespace: { type: "string", default: "default" },
    },
  });
  if (values.local) return runLocal(values.json === true);
  return runOnCluster(values.state, values.namespace!);
}

// The job as the cluster gets it: paths made absolute (the example's are relative to its
// folder), and herd's own image, which the node agent runs from this checkout.
function clusterJob(): KubernetesObject & { spec: Record<string, unknown> } {
  const raw = parse(readFileSync(manifest, "utf8")) as KubernetesObject & {
    spec: {
      data: { sources: { uri: string }[] };
      checkpoint: { uri: string };
      resources?: Record<string, unknown>;
    };
  };
  const dir = path.dirname(manifest);
  for (const s of raw.spec.data.sources) s.uri = path.resolve(dir, s.uri);
  raw.spec.checkpoint.uri = path.resolve(dir, raw.spec.checkpoint.uri);
  raw.spec.resources = { image: "herd/herd:demo", cpu: "2", memory: "2Gi", ...raw.spec.resources };
  return raw;
}

interface Status {
  phase?: string;
  step?: number;
  totalSteps?: number;
  loss?: number;
  tokensPerSecond?: number;
  message?: string;
  attempts?: number;
  preemptions?: number;
  failures?: number;
  lastCheckpoint?: { step: number; uri: string };
}

async function runOnCluster(state: string | undefined, namespace: string): Promise<number> {
  const { defaultStateDir, endpoints, up } = await import("../test/cluster/controlplane.ts");
  const dir = path.resolve(state ?? defaultStateDir());
  console.log(`herd demo: starting the local control plane in ${dir} (herd dev up)`);
  await up(dir);
  const e = endpoints(dir);
  const agentPid = readFileSync(path.join(dir, "run", "node-agent.pid"), "utf8").trim();
  const agentCmd = readFileSync(`/proc/${agentPid}/cmdline`, "utf8").split("\0");
  if (!agentCmd.includes(path.join(root, "test/cluster/node-agent.ts"))) {
    console.error(
      `herd demo: the control plane in ${dir} runs another checkout's node agent; ` +
        `run \`herd dev down --state ${dir}\` first, or pass --state <a folder of its own>`,
    );
    return 1;
  }
  const kc = new KubeConfig();
  kc.loadFromFile(e.kubeconfig);
  console.log("herd demo: installing the CRDs");
  await installCrds(kc, "herd-demo");

  mkdirSync(path.join(dir, "logs"), { recursive: true });
  const logFile = path.join(dir, "logs", "herd-demo.log");
  const logger = pino({ name: "herd-demo" }, destination({ dest: logFile, sync: false }));
  const { startControlWorker } = await import("../workers/main.ts");
  const { Operator } = await import("../operator/operator.ts");
  const { TemporalWorkflows } = await import("../operator/temporal.ts");
  const { controlTaskQueue } = await import("../workflows/types.ts");
  console.log("herd demo: starting the control worker and the operator");
  const worker = await startControlWorker({
    kubeconfig: kc,
    temporalAddress: e.temporalAddress,
    logger,
  });
  const connection = await Connection.connect({ address: e.temporalAddress });
  const operator = new Operator({
    kubeconfig: kc,
    workflows: new TemporalWorkflows(new Client({ connection }), controlTaskQueue),
    logger,
    namespace,
    concurrency: 4,
  });
  await operator.start();

  const custom = kc.makeApiClient(CustomObjectsApi);
  const ref = { group: "herd.dev", version: "v1alpha1", namespace, plural: "trainingjobs" };
  const job = clusterJob();
  const name = job.metadata!.name!;
  const get = async () => {
    try {
      return (await custom.getNamespacedCustomObject({ ...ref, name })) as {
        metadata: { uid: string };
        status?: Status;
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
  let code = 1;
  try {
    // A fresh run each time: the previous demo's job and checkpoints go first.
    if (await get()) {
      console.log(`herd demo: deleting the previous ${name}`);
      await custom.deleteNamespacedCustomObject({ ...ref, name });
      while (await get()) await sleep(250);
    }
    const checkpoints = (job.spec.checkpoint as { uri: string }).uri;
    rmSync(checkpoints, { recursive: true, force: true });
    const created = (await custom.createNamespacedCustomObject({ ...ref, body: job })) as {
      metadata: { uid: string };
    };
    console.log(`herd demo: applied TrainingJob ${namespace}/${name} (${manifest})`);
    let last = "";
    let s: Status = {};
    for (;;) {
      s = (await get())?.status ?? {};
      const line =
        `${s.phase ?? "Pending"}  step ${s.step ?? 0}/${s.totalSteps ?? "?"}` +
        (s.loss !== undefined ? `  loss ${s.loss.toFixed(4)}` : "") +
        (s.tokensPerSecond !== undefined ? `  ${Math.round(s.tokensPerSecond)} tok/s` : "");
      if (line !== last) console.log(`  ${line}`);
      last = line;
      if (s.phase === "Succeeded" || s.phase === "Failed") break;
      await sleep(500);
    }
    if (s.message) console.log(`  ${s.message}`);
    const pods = await kc.makeApiClient(CoreV1Api).listNamespacedPod({
      namespace,
      labelSelector: `herd.dev/trainingjob-uid=${created.metadata.uid}`,
    });
    console.log(`checkpoints: ${checkpoints} (LATEST names the newest)`);
    for (const p of pods.items)
      console.log(
        `trainer log: ${path.join(dir, "agent", "pods", `${namespace}_${p.metadata!.name}_${p.metadata!.uid}`, "logs", "trainer.log")}` +
          `  (kubectl logs ${p.metadata!.name})`,
      );
    console.log(`operator and worker log: ${logFile}`);
    console.log(`status: kubectl get trainingjob ${name} -o yaml   (eval "$(herd dev env)" first)`);
    code = s.phase === "Succeeded" ? 0 : 1;
  } finally {
    await operator.stop();
    worker.worker.shutdown();
    await worker.run;
    await connection.close();
  }
  return code;
}

// The job trained in this process by the native CPU engine, exactly as `herd train --local`.
async function runLocal(json: boolean): Promise<number> {
  const out = path.join(root, ".herd/demo/checkpoints");
  const steps = 120;
  const job = readTrainingJob(manifest);
  const params = parameterCount(resolveModel(job.spec.model, 256));
  console.log(
    `herd demo: training ${job.spec.model.preset} (${params.toLocaleString("en-US")} parameters) ` +
      `on Shakespeare's bytes for ${steps} steps with the native CPU engine`,
  );
  console.log(`  the job: ${path.relative(process.cwd(), manifest)}`);
  rmSync(out, { recursive: true, force: true }); // a fresh run each time, not a resume
  const { train } = await import("../workers/trainer/train.ts");
  const code = await train({ manifest, out, steps, log: json ? "json" : undefined });
  if (code === 0) {
    console.log(`checkpoints: ${out} (LATEST names the newest)`);
    console.log(
      `continue it: herd train --local -f ${path.relative(process.cwd(), manifest)} --out ${path.relative(process.cwd(), out)}`,
    );
  }
  return code;
}
