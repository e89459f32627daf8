// The training workflow's activities: an attempt's pods and Service, watching them to their
// end and classifying it (DESIGN.md, "Outcomes of an attempt"; pods.ts, shared with the
// evaluator), deleting them, reading the newest durable checkpoint, and Events.
import os from "node:os";
import {
  CoreV1Api,
  type KubeConfig,
  type V1EnvVar,
  type V1Pod,
  type V1PodSpec,
  type V1Service,
  type V1Toleration,
} from "@kubernetes/client-node";
import { defaultTrainerImage, group, version } from "../../crds/common.ts";
import type { TrainingJobSpec } from "../../crds/trainingjob.ts";
import { latestPublished, s3ConfigFromEnv } from "../trainer/checkpoint-store.ts";
import { localPathOf, type S3Config } from "../s3.ts";
import type { ObjectRef } from "../../workflows/types.ts";
import { deletePods, watchPods } from "./pods.ts";
import {
  labels,
  type CheckpointInfo,
  type CreateAttempt,
  type TrainingActivities,
  type WatchAttempt,
  type WatchReport,
} from "../../workflows/training-types.ts";
import { isNewer, progressOfLog } from "./progress.ts";
import { createOwned, createOwnedPod, trainerPodName, workersServiceName } from "./names.ts";
import { isNotFound } from "../kube-errors.ts";

export interface TrainingActivityOptions {
  /** Object storage the pods and this worker reach (s3:// checkpoint and data URIs). */
  s3?: ObjectStorage;
  /** The trainer pods' ServiceAccount (one with no RBAC bindings); the namespace's default when unset. */
  trainerServiceAccount?: string;
  /** The image for jobs that leave spec.resources.image at its default (the release's own). */
  trainerImage?: string;
  /** Secrets in the job's namespace that trainer and evaluator pods pull their image with. */
  trainerImagePullSecrets?: string[];
}

/**
 * The S3 endpoint and credentials. Pods get the credentials from the Secret named by
 * credentialsSecret (keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) when one is given —
 * the way a cluster should — and as literal values otherwise (the local plane).
 */
export interface ObjectStorage {
  config: Omit<S3Config, "bucket">;
  credentialsSecret?: string;
}

/** Object storage from the worker's environment: HERD_S3_ENDPOINT, AWS_*, HERD_S3_CREDENTIALS_SECRET. */
export function objectStorageFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): ObjectStorage | undefined {
  const config = s3ConfigFromEnv(env);
  if (!config) return undefined;
  return { config, credentialsSecret: env.HERD_S3_CREDENTIALS_SECRET || undefined };
}

/**
 * The pod env that gives a trainer or evaluator the same object storage as the worker: the
 * endpoint (unset for AWS's own) and region, and the keys from the Secret (a session token
 * too, when the Secret has one), or else the worker's own keys when it has any (the local
 * plane); with neither, the pod's own credential chain (an IAM role for its service account).
 */
export function objectStorageEnv(s: ObjectStorage | undefined): V1EnvVar[] {
  if (!s) return [];
  const { endpoint, region, accessKeyId, secretAccessKey, sessionToken } = s.config;
  const fromSecret = (key: string, optional = false): V1EnvVar => ({
    name: key,
    valueFrom: {
      secretKeyRef: { name: s.credentialsSecret!, key, ...(optional && { optional: true }) },
    },
  });
  const value = (name: string, v: string | undefined): V1EnvVar[] =>
    v ? [{ name, value: v }] : [];
  return [
    ...value("HERD_S3_ENDPOINT", endpoint),
    { name: "AWS_REGION", value: region },
    ...(s.credentialsSecret
      ? [
          fromSecret("AWS_ACCESS_KEY_ID"),
          fromSecret("AWS_SECRET_ACCESS_KEY"),
          fromSecret("AWS_SESSION_TOKEN", true),
        ]
      : [
          ...value("AWS_ACCESS_KEY_ID", accessKeyId),
          ...value("AWS_SECRET_ACCESS_KEY", secretAccessKey),
          ...value("AWS_SESSION_TOKEN", sessionToken),
        ]),
  ];
}

/** The trainer pod settings the worker is deployed with (the Helm chart sets these). */
export function trainerOptionsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): Pick<
  TrainingActivityOptions,
  "trainerServiceAccount" | "trainerImage" | "trainerImagePullSecrets" | "s3"
> {
  const pullSecrets = (env.HERD_TRAINER_IMAGE_PULL_SECRETS ?? "")
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  return {
    ...(pullSecrets.length > 0 && { trainerImagePullSecrets: pullSecrets }),
    s3: objectStorageFromEnv(env),
    trainerImage: env.HERD_TRAINER_IMAGE || undefined,
    trainerServiceAccount: env.HERD_TRAINER_SERVICE_ACCOUNT || undefined,
  };
}

/**
 * Pod Security Admission's "restricted" level, so trainer and evaluator pods run in
 * namespaces labelled for it: a fixed non-root uid (no reliance on the image's USER), no
 * privilege escalation, no capabilities, the runtime's default seccomp profile.
 */
const trainerPodSecurity = {
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  fsGroup: 65532,
  seccompProfile: { type: "RuntimeDefault" },
};
const trainerContainerSecurity = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
};

/** A job's spec.resources (crds/common.ts), the same for TrainingJobs and EvalJobs. */
type JobResources = TrainingJobSpec["resources"];
type PodOptions = Pick<
  TrainingActivityOptions,
  "trainerImage" | "trainerImagePullSecrets" | "trainerServiceAccount"
>;

/**
 * What trainer and evaluator pods share: they run once, with no API token, as the trainer
 * ServiceAccount, restricted, pulling with the release's secrets, placed as the job says.
 */
export function jobPodBase(r: JobResources, opts: PodOptions): V1PodSpec {
  const pullSecrets = opts.trainerImagePullSecrets ?? [];
  return {
    containers: [],
    restartPolicy: "Never",
    terminationGracePeriodSeconds: 30,
    automountServiceAccountToken: false,
    ...(opts.trainerServiceAccount && { serviceAccountName: opts.trainerServiceAccount }),
    securityContext: trainerPodSecurity,
    ...(pullSecrets.length > 0 && { imagePullSecrets: pullSecrets.map((name) => ({ name })) }),
    ...(r.priorityClassName && { priorityClassName: r.priorityClassName }),
    ...(r.nodeSelector && { nodeSelector: r.nodeSelector }),
    ...(r.tolerations && { tolerations: r.tolerations as V1Toleration[] }),
  };
}

/**
 * The pod's scratch space: an emptyDir at /scratch, named to the program by HERD_POD_DIR. The
 * staging folder of S3 checkpoints, the cache of S3 shards and an evaluator's downloaded
 * model live there — tens of gigabytes for large models, more than a container's writable
 * layer is meant to hold. spec.resources.ephemeralStorage, when set, is its sizeLimit (and the
 * pod's ephemeral-storage request and limit, containerResources): the scheduler places the
 * pod where the disk has room, and the kubelet evicts it if it outgrows that.
 */
export const scratch = {
  volume: (r: Pick<JobResources, "ephemeralStorage">) => ({
    name: "scratch",
    emptyDir: r.ephemeralStorage ? { sizeLimit: r.ephemeralStorage } : {},
  }),
  mount: { name: "scratch", mountPath: "/scratch" },
  env: { name: "HERD_POD_DIR", value: "/scratch" },
};

/**
 * The container's resources, requests equal to limits: cpu and memory, `gpus` of the GPU
 * resource, and ephemeral storage when the spec sets it.
 */
export function containerResources(r: JobResources, gpus: number) {
  const limits: Record<string, string> = { cpu: r.cpu, memory: r.memory };
  if (gpus > 0) limits[r.gpuResource] = String(gpus);
  if (r.ephemeralStorage) limits["ephemeral-storage"] = r.ephemeralStorage;
  return { requests: limits, limits };
}

/** The CPU threads a pod's processes share: its whole-core cpu limit, at least one. */
export const podThreads = (r: JobResources) =>
  Math.max(1, Math.floor(Number.parseFloat(r.cpu) || 1));

/**
 * Their one container's image (the spec's, or the worker's own for the default:
 * HERD_TRAINER_IMAGE), working directory and security settings.
 */
export function jobContainerBase(r: JobResources, opts: PodOptions) {
  return {
    image: r.image === defaultTrainerImage && opts.trainerImage ? opts.trainerImage : r.image,
    // The image's checkout is at /app (the node agent maps herd's image there).
    workingDir: "/app",
    securityContext: trainerContainerSecurity,
  };
}

/** Port of rank 0's rendezvous (Gloo's store) on the headless Service. */
export const rendezvousPort = 29500;

/** The pods of one attempt: one per worker rank, all the spec asks of placement and size. */
export function attemptPods(a: CreateAttempt, opts: TrainingActivityOptions): V1Pod[] {
  const spec = a.spec as unknown as TrainingJobSpec;
  const { object } = a;
  const world = spec.parallelism.workers;
  const r = spec.resources;
  const threads = podThreads(r);
  const job = {
    apiVersion: `${group}/${version}`,
    kind: "TrainingJob",
    metadata: { name: object.name, namespace: object.namespace, uid: object.uid },
    spec,
  };
  const ckpt = localPathOf(spec.checkpoint.uri);
  const service = workersServiceName(object);
  const rank0 = trainerPodName(object, a.attempt, 0);
  const mounts = [scratch.mount, ...(ckpt ? [{ name: "checkpoints", mountPath: ckpt }] : [])];
  const volumes = [
    scratch.volume(r),
    ...(ckpt ? [{ name: "checkpoints", hostPath: { path: ckpt, type: "DirectoryOrCreate" } }] : []),
  ];
  return Array.from({ length: world }, (_, rank): V1Pod => {
    const env: V1EnvVar[] = [
      { name: "HERD_RANK", value: String(rank) },
      { name: "HERD_WORLD_SIZE", value: String(world) },
      {
        name: "HERD_RENDEZVOUS",
        value: `${rank0}.${service}.${object.namespace}.svc:${rendezvousPort}`,
      },
      // The address the rank listens on for its peers (Gloo's pairs; rank 0's store).
      { name: "HERD_POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
      { name: "HERD_ATTEMPT", value: String(a.attempt) },
      { name: "HERD_TRAININGJOB_NAME", value: object.name },
      { name: "HERD_TRAININGJOB_NAMESPACE", value: object.namespace },
      { name: "HERD_TRAININGJOB_UID", value: object.uid },
      { name: "HERD_TRAINING_JOB", value: JSON.stringify(job) },
      { name: "HERD_TRAINER_THREADS", value: String(threads) },
      ...objectStorageEnv(opts.s3),
      scratch.env,
    ];
    const name = trainerPodName(object, a.attempt, rank);
    return {
      metadata: {
        name,
        namespace: object.namespace,
        labels: {
          [labels.job]: object.name,
          [labels.uid]: object.uid,
          [labels.attempt]: String(a.attempt),
          [labels.rank]: String(rank),
        },
        ownerReferences: [
          {
            apiVersion: `${group}/${version}`,
            kind: "TrainingJob",
            name: object.name,
            uid: object.uid,
            controller: true,
          },
        ],
      },
      spec: {
        ...jobPodBase(r, opts),
        hostname: name,
        subdomain: service,
        containers: [
          {
            name: "trainer",
            ...jobContainerBase(r, opts),
            command: ["node", "--import", "tsx", "workers/trainer/pod.ts"],
            env,
            ports: [{ name: "rendezvous", containerPort: rendezvousPort }],
            resources: containerResources(r, spec.parallelism.gpusPerWorker),
            volumeMounts: mounts,
          },
        ],
        volumes,
      },
    };
  });
}

function headlessService(a: CreateAttempt): V1Service {
  const { object } = a;
  return {
    metadata: {
      name: workersServiceName(object),
      namespace: object.namespace,
      labels: { [labels.job]: object.name, [labels.uid]: object.uid },
      ownerReferences: [
        {
          apiVersion: `${group}/${version}`,
          kind: "TrainingJob",
          name: object.name,
          uid: object.uid,
          controller: true,
        },
      ],
    },
    spec: {
      clusterIP: "None",
      selector: { [labels.uid]: object.uid },
      ports: [{ name: "rendezvous", port: rendezvousPort }],
      publishNotReadyAddresses: true,
    },
  };
}

export function trainingActivities(
  kc: KubeConfig,
  opts: TrainingActivityOptions,
): TrainingActivities & { cleanUpTraining(o: ObjectRef): Promise<void> } {
  const core = kc.makeApiClient(CoreV1Api);
  const selector = (o: ObjectRef, attempt?: number) =>
    `${labels.uid}=${o.uid}` + (attempt === undefined ? "" : `,${labels.attempt}=${attempt}`);

  /** Deletes pods of an attempt (or all attempts) and waits until they are gone. */
  const deleteAll = async (object: ObjectRef): Promise<void> => {
    const { namespace } = object;
    // by label, not by name: Services have no deletecollection, and those of an older herd
    // were named otherwise
    const services = await core.listNamespacedService({
      namespace,
      labelSelector: selector(object),
    });
    for (const s of services.items)
      await core
        .deleteNamespacedService({ name: s.metadata!.name!, namespace })
        .catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
    // The trainers write their SIGTERM checkpoint meanwhile.
    await deletePods(core, namespace, selector(object));
  };

  /**
   * The newest lines of rank 0's log: enough to span a progress interval of steps (one line
   * each) and the checkpoint line among them; "" when the log cannot be read now.
   */
  const rank0Log = (namespace: string, name: string): Promise<string> =>
    core
      .readNamespacedPodLog({ name, namespace, container: "trainer", tailLines: 2000 })
      .catch(() => "");

  return {
    async createAttempt(a) {
      const { namespace } = a.object;
      const service = headlessService(a);
      const serviceName = service.metadata!.name!;
      await createOwned(
        `Service ${namespace}/${serviceName}`,
        a.object,
        () => core.createNamespacedService({ namespace, body: service }),
        () => core.readNamespacedService({ namespace, name: serviceName }),
      );
      const pods = attemptPods(a, opts);
      for (const pod of pods) await createOwnedPod(core, a.object, pod);
      return pods.map((p) => p.metadata!.name!);
    },

    async watchAttempt(a: WatchAttempt): Promise<WatchReport> {
      const watch = {
        namespace: a.object.namespace,
        selector: selector(a.object, a.attempt),
        expected: a.ranks,
        stuckAfterSeconds: a.stuckAfterSeconds,
        stuckReported: a.stuckReported,
      };
      if (!a.progressEverySeconds) return watchPods(kc, watch);
      const rank0 = trainerPodName(a.object, a.attempt, 0);
      let next = Date.now() + a.progressEverySeconds * 1000;
      // While the pods stop, rank 0's log is read every poll: a deleted pod's log goes with it,
      // and its last steps and its SIGTERM checkpoint are in it.
      let stoppingLog = "";
      const report = await watchPods(kc, watch, async (pods) => {
        if (pods.some((p) => p.metadata?.deletionTimestamp))
          stoppingLog = (await rank0Log(a.object.namespace, rank0)) || stoppingLog;
        if (Date.now() < next) return undefined;
        next = Date.now() + a.progressEverySeconds! * 1000;
        if (!pods.some((p) => p.metadata?.name === rank0 && p.status?.phase === "Running"))
          return undefined;
        const progress = progressOfLog(await rank0Log(a.object.namespace, rank0));
        return progress && isNewer(progress, a.told)
          ? { kind: "progress" as const, progress }
          : undefined;
      });
      if (report.kind === "progress" || report.kind === "stuck") return report;
      // An ended attempt's last steps (a short one may have made no report at all).
      const last = progressOfLog((await rank0Log(a.object.namespace, rank0)) || stoppingLog);
      return last && isNewer(last, a.told) ? { ...report, progress: last } : report;
    },

    deleteAttempt: deleteAll,
    cleanUpTraining: deleteAll,

    async latestCheckpoint(spec): Promise<CheckpointInfo | undefined> {
      const uri = (spec as unknown as TrainingJobSpec).checkpoint.uri;
      return latestPublished(uri, opts.s3?.config);
    },

    async recordEvent({ object, type, reason, message }) {
      const now = new Date();
      await core
        .createNamespacedEvent({
          namespace: object.namespace,
          body: {
            metadata: { generateName: `${object.name}.`, namespace: object.namespace },
            involvedObject: {
              apiVersion: `${group}/${version}`,
              kind: object.kind,
              name: object.name,
              namespace: object.namespace,
              uid: object.uid,
            },
            type,
            reason,
            message: message.slice(0, 1024),
            source: { component: "herd-worker", host: os.hostname() },
            reportingComponent: "herd.dev/worker",
            reportingInstance: os.hostname(),
            firstTimestamp: now,
            lastTimestamp: now,
            count: 1,
          },
        })
        .catch(() => {}); // best effort
    },
  };
}
