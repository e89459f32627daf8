// What the training end-to-end tests read of a TrainingJob on the local plane: its status,
// waiting for a status, its trainer pods, its Events. One copy for every e2e file.
import type { CoreV1Api, CoreV1Event, V1Pod } from "@kubernetes/client-node";
import { getObject, waitFor } from "../api/helpers.ts";
import type { ClusterEnv } from "../api/env.ts";
import type { Cluster } from "../cluster/harness.ts";
import type { ObjectStorage } from "../../workers/activities/training.ts";
import { shakespeare } from "../data/files.ts";
import type { AttemptRecord, Goodput } from "../../workflows/goodput.ts";

/** The fields of TrainingJob status the tests assert on. */
export type TrainingStatus = {
  phase?: string;
  step?: number;
  loss?: number;
  attempts?: number;
  preemptions?: number;
  failures?: number;
  message?: string;
  workflowId?: string;
  recoveries?: number;
  lastCheckpoint?: { step: number; uri: string; time: string };
  conditions?: { type: string; status: string; reason: string; message: string }[];
  attemptHistory?: AttemptRecord[];
  goodput?: Goodput;
};

/** A TrainingJob's view, bound to one cluster and namespace. */
export function trainingJobs(env: ClusterEnv, core: CoreV1Api, namespace: string) {
  const statusOf = async (name: string) =>
    ((await getObject(env, "TrainingJob", namespace, name))?.status ?? {}) as TrainingStatus;
  return {
    statusOf,
    /** Waits until the status satisfies `ok`; returns it. */
    until: (name: string, what: string, ok: (s: TrainingStatus) => boolean, timeoutMs = 180_000) =>
      waitFor(
        `${name}: ${what}`,
        async () => {
          const s = await statusOf(name);
          return ok(s) ? s : undefined;
        },
        timeoutMs,
      ),
    /** The job's trainer pods, by name. */
    podsOf: async (name: string): Promise<V1Pod[]> =>
      (
        await core.listNamespacedPod({ namespace, labelSelector: `herd.dev/trainingjob=${name}` })
      ).items.sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!)),
    eventsOf: async (name: string): Promise<CoreV1Event[]> =>
      (await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` }))
        .items,
  };
}

/** The job has ended: Succeeded or Failed. */
export const ended = (s: TrainingStatus) => s.phase === "Succeeded" || s.phase === "Failed";

/** The secret the trainer and evaluator pods read their S3 keys from in the e2e tests. */
export const s3SecretName = "herd-s3";

/** The local plane's S3 store as the worker is deployed with it: pods' keys from a Secret. */
export function objectStorageOf(c: Cluster): ObjectStorage {
  const { endpoint, region, accessKeyId, secretAccessKey } = c.s3;
  return {
    config: { endpoint, region, accessKeyId, secretAccessKey },
    credentialsSecret: s3SecretName,
  };
}

/** That Secret, with the store's keys, in the jobs' namespace (as a cluster would hold it). */
export async function createS3Secret(c: Cluster, namespace: string): Promise<void> {
  await c.core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name: s3SecretName },
      stringData: {
        AWS_ACCESS_KEY_ID: c.s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: c.s3.secretAccessKey,
      },
    },
  });
}

const corpus = shakespeare;

/**
 * The tiny TrainingJob the cluster tests run: llama-tiny on Shakespeare's bytes, 64-token
 * sequences, 512 tokens per step in micro-batches of 4. `resources` places it (image, cpu,
 * memory, the test node's selector and tolerations); `retry` is added when given.
 */
export function tinyTrainingJob(
  name: string,
  o: {
    steps: number;
    checkpoint: { uri: string; intervalSteps: number; keep: number };
    resources: Record<string, unknown>;
    data?: string;
    retry?: Record<string, unknown>;
  },
) {
  return {
    apiVersion: "herd.dev/v1alpha1",
    kind: "TrainingJob",
    metadata: { name },
    spec: {
      model: { preset: "llama-tiny" },
      tokenizer: { type: "bytes" },
      data: {
        sources: [{ name: "shakespeare", uri: o.data ?? corpus, format: "text" }],
        seqLen: 64,
      },
      training: {
        steps: o.steps,
        globalBatchTokens: 512,
        microBatch: 4,
        optimizer: { warmupSteps: 5 },
        seed: 7,
      },
      checkpoint: o.checkpoint,
      resources: o.resources,
      ...(o.retry && { retry: o.retry }),
    },
  };
}
