// The EvalJob workflow's activities: resolving the checkpoint to evaluate, the evaluator pod
// of each attempt (watched and deleted through pods.ts, like trainer pods), and reading the
// results file the evaluator wrote beside the checkpoint.
import path from "node:path";
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { apiVersion, group, version } from "../../crds/common.ts";
import type { EvalJobSpec } from "../../crds/evaljob.ts";
import { jobTokenizer, type TrainingJobSpec } from "../../crds/trainingjob.ts";
import type { ObjectRef } from "../../workflows/types.ts";
import {
  evalLabels,
  type CreateEvaluator,
  type EvalActivities,
  type EvalSummary,
  type MetricValue,
  type Resolution,
} from "../../workflows/eval-types.ts";
import type { ResultsFile } from "../eval/run.ts";
import { expandGroups, runnableTask } from "../eval/registry.ts";
import { TaskError } from "../eval/tasks.ts";
import {
  CheckpointResolutionError,
  readResultsText,
  resolveTrainingCheckpoint,
  resultsUriOf,
} from "../eval/checkpoints.ts";
import { deletePods, watchPods } from "./pods.ts";
import { localPathOf } from "../s3.ts";
import {
  containerResources,
  jobContainerBase,
  jobPodBase,
  objectStorageEnv,
  podThreads,
  scratch,
  type TrainingActivityOptions,
} from "./training.ts";
import { createOwnedPod, evaluatorPodName } from "./names.ts";
import { isNotFound } from "../kube-errors.ts";

/** What evaluator pods share with trainer pods: object storage, the image, the ServiceAccount. */
export type EvalActivityOptions = Pick<
  TrainingActivityOptions,
  "s3" | "trainerImage" | "trainerImagePullSecrets" | "trainerServiceAccount"
>;

/** The URI without file://; object storage URIs as they are. */
const localPath = (uri: string) => localPathOf(uri) ?? uri;

const selector = (o: ObjectRef, attempt?: number) =>
  `${evalLabels.uid}=${o.uid}` + (attempt === undefined ? "" : `,${evalLabels.attempt}=${attempt}`);

/** The folder a checkpoint lives in, for the pod's volume; undefined for object storage. */
function checkpointFolder(uri: string): string | undefined {
  if (uri.startsWith("s3://")) return undefined;
  return path.dirname(localPath(uri));
}

/**
 * The evaluator pod of one attempt: the EvalJob, its checkpoint resolved, in HERD_EVAL_JOB.
 * Like a trainer pod it runs restricted, with no API token, and reaches object storage with
 * the worker's endpoint and the trainers' credentials.
 */
export function evaluatorPod(a: CreateEvaluator, opts: EvalActivityOptions = {}): V1Pod {
  const spec = a.spec as unknown as EvalJobSpec;
  const { object, checkpoint } = a;
  const r = spec.resources;
  const threads = podThreads(r);
  const job = {
    apiVersion,
    kind: "EvalJob",
    metadata: { name: object.name, namespace: object.namespace, uid: object.uid },
    spec: {
      ...spec,
      checkpoint: { uri: checkpoint.uri, format: checkpoint.format },
      ...(checkpoint.tokenizer && { tokenizer: checkpoint.tokenizer }),
    },
  };
  // The evaluator writes its results beside the checkpoint: the folder is mounted writable.
  const folder = checkpointFolder(checkpoint.uri);
  return {
    metadata: {
      name: evaluatorPodName(object, a.attempt),
      namespace: object.namespace,
      labels: {
        [evalLabels.job]: object.name.slice(0, 63),
        [evalLabels.uid]: object.uid,
        [evalLabels.attempt]: String(a.attempt),
      },
      ownerReferences: [
        { apiVersion, kind: "EvalJob", name: object.name, uid: object.uid, controller: true },
      ],
    },
    spec: {
      ...jobPodBase(r, opts),
      containers: [
        {
          name: "evaluator",
          ...jobContainerBase(r, opts),
          command: ["node", "--import", "tsx", "workers/eval/pod.ts"],
          env: [
            { name: "HERD_EVAL_JOB", value: JSON.stringify(job) },
            { name: "HERD_EVAL_THREADS", value: String(threads) },
            { name: "HERD_ATTEMPT", value: String(a.attempt) },
            ...objectStorageEnv(opts.s3),
            scratch.env,
          ],
          resources: containerResources(r, spec.gpus),
          volumeMounts: [
            scratch.mount,
            ...(folder ? [{ name: "checkpoints", mountPath: folder }] : []),
          ],
        },
      ],
      volumes: [
        scratch.volume(r),
        ...(folder ? [{ name: "checkpoints", hostPath: { path: folder, type: "Directory" } }] : []),
      ],
    },
  };
}

/** The results file as the EvalJob's status shows it: per task, the metrics; a headline. */
export function summarize(results: ResultsFile, resultsUri: string): EvalSummary {
  const tasks = results.tasks.map((t) => ({
    task: t.task,
    examples: t.examples,
    metrics: t.metrics.map((m): MetricValue => ({
      name: m.name,
      value: m.value,
      ...(m.stderr !== undefined && { stderr: m.stderr }),
    })),
  }));
  const first = tasks[0];
  const main =
    first?.metrics.find((m) => m.name === "acc_norm") ??
    first?.metrics.find((m) => m.name === "perplexity") ??
    first?.metrics[0];
  const { uri, step, tokensSeen } = results.checkpoint;
  return {
    checkpoint: {
      uri,
      ...(step !== undefined && { step }),
      ...(tokensSeen !== undefined && { tokensSeen }),
    },
    results: tasks,
    ...(first && main && { headline: { task: first.task, metric: main.name, value: main.value } }),
    resultsUri,
  };
}

/** Reads a TrainingJob's spec from the API server; undefined when there is none. */
export async function readTrainingJob(
  kc: KubeConfig,
  namespace: string,
  name: string,
): Promise<TrainingJobSpec | undefined> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  try {
    const o = (await custom.getNamespacedCustomObject({
      group,
      version,
      namespace,
      plural: "trainingjobs",
      name,
    })) as { spec: TrainingJobSpec };
    return o.spec;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * Relative paths mean "beside the manifest" to `herd eval --local`; a pod has no manifest
 * folder of the user's, so on the cluster every path must be absolute.
 */
export function relativePaths(s: EvalJobSpec): string | undefined {
  const relative = (uri: string) => !uri.startsWith("s3://") && !path.isAbsolute(localPath(uri));
  const fields = [
    ...(s.checkpoint.uri ? [["spec.checkpoint.uri", s.checkpoint.uri]] : []),
    ...(s.tokenizer?.uri ? [["spec.tokenizer.uri", s.tokenizer.uri]] : []),
    ...s.tasks.flatMap((t, i) => [
      ...(t.uri ? [[`spec.tasks[${i}].uri`, t.uri]] : []),
      ...(t.definitionUri ? [[`spec.tasks[${i}].definitionUri`, t.definitionUri]] : []),
    ]),
  ].filter(([, uri]) => relative(uri!));
  if (fields.length === 0) return undefined;
  return (
    fields.map(([field, uri]) => `${field}: ${uri}`).join(", ") +
    ": a relative path; on the cluster give an absolute path, file:///… or s3://…"
  );
}

/** A task that names no data and is not in herd's registry, or a group listing a task twice. */
export function unknownTasks(s: EvalJobSpec): string | undefined {
  try {
    for (const t of expandGroups(s.tasks)) if (!t.uri && !t.definitionUri) runnableTask(t);
  } catch (err) {
    if (err instanceof TaskError) return `spec.tasks: ${err.message}`;
    throw err;
  }
  return undefined;
}

export function evalActivities(kc: KubeConfig, opts: EvalActivityOptions = {}): EvalActivities {
  const core = kc.makeApiClient(CoreV1Api);
  const storage = { s3: opts.s3?.config };
  return {
    async resolveCheckpoint({ object, spec }): Promise<Resolution> {
      const s = spec as unknown as EvalJobSpec;
      const problem = relativePaths(s) ?? unknownTasks(s);
      if (problem) return { error: problem };
      if (s.checkpoint.uri)
        return {
          checkpoint: {
            uri: s.checkpoint.uri,
            format: s.checkpoint.format,
            ...(s.tokenizer && { tokenizer: s.tokenizer }),
          },
        };
      const ref = s.checkpoint.trainingJob!;
      const job = await readTrainingJob(kc, object.namespace, ref.name);
      if (!job)
        return {
          error: `spec.checkpoint.trainingJob.name: TrainingJob ${ref.name} not found in namespace ${object.namespace}`,
        };
      try {
        const at = await resolveTrainingCheckpoint(ref.name, job.checkpoint.uri, ref.step, storage);
        return {
          checkpoint: {
            uri: at.uri,
            format: "herd",
            step: at.step,
            tokenizer: s.tokenizer ?? jobTokenizer(job),
          },
        };
      } catch (err) {
        if (err instanceof CheckpointResolutionError) return { error: err.message };
        throw err;
      }
    },

    async createEvaluator(a) {
      const pod = evaluatorPod(a, opts);
      await createOwnedPod(core, a.object, pod);
      return pod.metadata!.name!;
    },

    watchEvaluator: (a) =>
      watchPods(kc, {
        namespace: a.object.namespace,
        selector: selector(a.object, a.attempt),
        expected: 1,
        stuckAfterSeconds: a.stuckAfterSeconds,
        stuckReported: a.stuckReported,
      }),

    deleteEvaluators: (object) => deletePods(core, object.namespace, selector(object)),

    async readResults({ job, checkpoint }) {
      const uri = resultsUriOf(checkpoint.uri, job);
      const results = JSON.parse(
        await readResultsText(checkpoint.uri, job, storage),
      ) as ResultsFile;
      if (results.format !== "herd-eval-results")
        throw new Error(`${uri}: not a herd-eval-results file`);
      return summarize(results, uri);
    },
  };
}
