// What the integration tests share: CRDs applied (server-side apply, so parallel test files
// agree), a throwaway namespace, a control worker on a private task queue, operators that
// watch only that namespace, and polling helpers.
import { randomBytes } from "node:crypto";
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { Client, Connection } from "@temporalio/client";
import { pino } from "pino";
import { installCrds } from "../../crds/install.ts";
import { kinds, kindInfo, type KindName } from "../../crds/kinds.ts";
import { Operator } from "../../operator/operator.ts";
import { TemporalWorkflows } from "../../operator/temporal.ts";
import { startControlWorker } from "../../workers/main.ts";
import type { ClusterEnv } from "./env.ts";
import { trainingJobObject, type Obj } from "../crds/cases.ts";

export const silent = pino({ level: process.env.HERD_TEST_LOG ?? "silent" });
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/**
 * A TrainingJob whose pods no node takes: its workflow stays Running (pods Pending, reported
 * Stuck only after 5 minutes) for as long as a test looks at it. Unparked, the pods would run
 * on the plane's default nodes and exit 64 (its data path is relative), failing the job
 * seconds after it showed Running.
 */
export function parkedTrainingJob(name: string): Obj {
  const o = trainingJobObject(name);
  o.spec.resources = { nodeSelector: { "herd.dev/test": "no-such-node" } };
  return o;
}

export async function applyCrds(env: ClusterEnv): Promise<void> {
  await installCrds(env.kubeconfig, "herd-tests");
}

export interface Harness {
  env: ClusterEnv;
  namespace: string;
  taskQueue: string;
  client: Client;
  custom: CustomObjectsApi;
  core: CoreV1Api;
  newOperator(): Promise<Operator>;
  close(): Promise<void>;
}

/** CRDs, a fresh namespace, a worker on a private task queue; operators on demand. */
export async function harness(env: ClusterEnv, label: string): Promise<Harness> {
  await applyCrds(env);
  const id = randomBytes(3).toString("hex");
  const namespace = `herd-${label}-${id}`;
  const taskQueue = `herd-test-${label}-${id}`;
  const core = env.kubeconfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const { worker, run } = await startControlWorker({
    kubeconfig: env.kubeconfig,
    temporalAddress: env.temporalAddress,
    taskQueue,
    logger: silent,
    s3: env.s3,
  });
  const connection = await Connection.connect({ address: env.temporalAddress });
  const client = new Client({ connection });
  const operators: Operator[] = [];
  return {
    env,
    namespace,
    taskQueue,
    client,
    custom: env.kubeconfig.makeApiClient(CustomObjectsApi),
    core,
    async newOperator() {
      const op = new Operator({
        kubeconfig: env.kubeconfig,
        workflows: new TemporalWorkflows(client, taskQueue),
        logger: silent,
        namespace,
        concurrency: 8,
        httpPort: 0,
        httpHost: "127.0.0.1",
      });
      await op.start();
      operators.push(op);
      return op;
    },
    async close() {
      await Promise.all(operators.map((o) => o.stop().catch(() => {})));
      // Objects keep finalizers once their operator is gone; drop them so the namespace goes.
      for (const info of kinds) {
        const list = (await custom(env).listNamespacedCustomObject({
          group: "herd.dev",
          version: "v1alpha1",
          namespace,
          plural: info.plural,
        })) as { items: KubernetesObject[] };
        for (const o of list.items)
          await patchObject(env, info.kind, namespace, o.metadata!.name!, {
            metadata: { finalizers: null },
          }).catch(() => {});
      }
      await core.deleteNamespace({ name: namespace }).catch(() => {});
      worker.shutdown();
      await run;
      await connection.close();
    },
  };
}

const custom = (env: ClusterEnv) => env.kubeconfig.makeApiClient(CustomObjectsApi);

export async function createObject(env: ClusterEnv, namespace: string, obj: KubernetesObject) {
  return (await custom(env).createNamespacedCustomObject({
    group: "herd.dev",
    version: "v1alpha1",
    namespace,
    plural: kindInfo(obj.kind as KindName).plural,
    body: obj,
  })) as KubernetesObject & { metadata: { uid: string; generation: number } };
}

export async function getObject(env: ClusterEnv, kind: KindName, namespace: string, name: string) {
  try {
    return (await custom(env).getNamespacedCustomObject({
      group: "herd.dev",
      version: "v1alpha1",
      namespace,
      plural: kindInfo(kind).plural,
      name,
    })) as KubernetesObject & {
      metadata: { uid: string; generation: number; finalizers?: string[] };
      spec: Record<string, unknown>;
      status?: Record<string, unknown> & { observedGeneration?: number; phase?: string };
    };
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return undefined;
    throw err;
  }
}

export async function patchObject(
  env: ClusterEnv,
  kind: KindName,
  namespace: string,
  name: string,
  body: unknown,
) {
  return custom(env).patchNamespacedCustomObject(
    {
      group: "herd.dev",
      version: "v1alpha1",
      namespace,
      plural: kindInfo(kind).plural,
      name,
      body,
    },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}

export async function deleteObject(
  env: ClusterEnv,
  kind: KindName,
  namespace: string,
  name: string,
) {
  await custom(env).deleteNamespacedCustomObject({
    group: "herd.dev",
    version: "v1alpha1",
    namespace,
    plural: kindInfo(kind).plural,
    name,
  });
}

/** The API server's message from a failed request. */
export function apiMessage(err: unknown): string {
  if (!(err instanceof ApiException)) return String(err);
  const body = err.body as unknown;
  if (typeof body === "string") {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
  return JSON.stringify(body);
}

/** How many executions Temporal has for a workflow id (all runs, running or closed). */
/**
 * How many executions of `workflowId` Temporal's visibility store lists, once it lists any:
 * visibility is written asynchronously, so a workflow that is running may not be listed yet.
 */
export async function executionsOf(client: Client, workflowId: string): Promise<number> {
  const count = async () => {
    let n = 0;
    for await (const wf of client.workflow.list({ query: `WorkflowId = '${workflowId}'` }))
      if (wf.workflowId === workflowId) n++;
    return n;
  };
  return waitFor(`${workflowId} in Temporal's visibility store`, async () => {
    const n = await count();
    return n > 0 ? n : undefined;
  });
}
