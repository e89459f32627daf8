// The training workflow's activities: an attempt's pods and Service, watching them to their
// end and classifying it (DESIGN.md, "Outcomes of an attempt"), deleting them, reading the
// newest durable checkpoint, and Events on the TrainingJob.
import os from "node:os";
import { heartbeat, sleep as activitySleep } from "@temporalio/activity";
import {
  ApiException,
  CoreV1Api,
  Watch,
  type KubeConfig,
  type V1EnvVar,
  type V1Node,
  type V1Pod,
  type V1Service,
  type V1Toleration,
} from "@kubernetes/client-node";
import { defaultTrainerImage, group, version } from "../../crds/common.ts";
import type { TrainingJobSpec } from "../../crds/trainingjob.ts";
import { latestPublished, s3ConfigFromEnv } from "../trainer/checkpoint-store.ts";
import type { S3Config } from "../s3.ts";
import type { ObjectRef } from "../../workflows/types.ts";
import {
  labels,
  trainerExit,
  type CheckpointInfo,
  type CreateAttempt,
  type Outcome,
  type TrainingActivities,
  type WatchAttempt,
} from "../../workflows/training-types.ts";

export interface TrainingActivityOptions {
  /** The Temporal address the trainer pods signal their progress to. */
  temporalAddress: string;
  temporalNamespace: string;
  /** Object storage the pods and this worker reach (s3:// checkpoint and data URIs). */
  s3?: ObjectStorage;
  /** The trainer pods' ServiceAccount (one with no RBAC bindings); the namespace's default when unset. */
  trainerServiceAccount?: string;
  /**
   * A Secret in the job's namespace with tls.crt, tls.key and ca.crt for the trainer pods'
   * connection to Temporal (mTLS); plaintext when unset.
   */
  trainerTemporalTlsSecret?: string;
  /** The name the trainers check Temporal's certificate against (TEMPORAL_TLS_SERVER_NAME). */
  trainerTemporalServerName?: string;
  /** The image for jobs that leave spec.resources.image at its default (the release's own). */
  trainerImage?: string;
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

/** The pod env that gives a trainer the same object storage as the worker. */
function objectStorageEnv(s: ObjectStorage | undefined): V1EnvVar[] {
  if (!s) return [];
  const secret = (key: string): V1EnvVar =>
    s.credentialsSecret
      ? { name: key, valueFrom: { secretKeyRef: { name: s.credentialsSecret, key } } }
      : {
          name: key,
          value: key === "AWS_ACCESS_KEY_ID" ? s.config.accessKeyId : s.config.secretAccessKey,
        };
  return [
    { name: "HERD_S3_ENDPOINT", value: s.config.endpoint },
    { name: "AWS_REGION", value: s.config.region },
    secret("AWS_ACCESS_KEY_ID"),
    secret("AWS_SECRET_ACCESS_KEY"),
  ];
}

/** The trainer pod settings the worker is deployed with (the Helm chart sets these). */
export function trainerOptionsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): Pick<
  TrainingActivityOptions,
  | "trainerServiceAccount"
  | "trainerTemporalTlsSecret"
  | "trainerTemporalServerName"
  | "trainerImage"
  | "s3"
> {
  return {
    s3: objectStorageFromEnv(env),
    trainerImage: env.HERD_TRAINER_IMAGE || undefined,
    trainerServiceAccount: env.HERD_TRAINER_SERVICE_ACCOUNT || undefined,
    trainerTemporalTlsSecret: env.HERD_TRAINER_TEMPORAL_TLS_SECRET || undefined,
    trainerTemporalServerName: env.TEMPORAL_TLS_SERVER_NAME || undefined,
  };
}

/** Where trainer pods find the Temporal client certificate (the Secret, mounted read-only). */
const trainerTlsDir = "/etc/herd/temporal-tls";

/** The Temporal mTLS files of a trainer pod: the variables, the mount and the Secret volume. */
function trainerTemporalTls(opts: TrainingActivityOptions) {
  if (!opts.trainerTemporalTlsSecret) return { env: [], mounts: [], volumes: [] };
  const env: V1EnvVar[] = [
    { name: "TEMPORAL_TLS_CERT", value: `${trainerTlsDir}/tls.crt` },
    { name: "TEMPORAL_TLS_KEY", value: `${trainerTlsDir}/tls.key` },
    { name: "TEMPORAL_TLS_CA", value: `${trainerTlsDir}/ca.crt` },
  ];
  if (opts.trainerTemporalServerName)
    env.push({ name: "TEMPORAL_TLS_SERVER_NAME", value: opts.trainerTemporalServerName });
  return {
    env,
    mounts: [{ name: "temporal-tls", mountPath: trainerTlsDir, readOnly: true }],
    volumes: [{ name: "temporal-tls", secret: { secretName: opts.trainerTemporalTlsSecret } }],
  };
}

/**
 * Pod Security Admission's "restricted" level, so trainer pods run in namespaces labelled
 * for it: a fixed non-root uid (no reliance on the image's USER), no privilege escalation,
 * no capabilities, the runtime's default seccomp profile.
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

/** Port of rank 0's rendezvous (Gloo's store) on the headless Service. */
export const rendezvousPort = 29500;

const serviceName = (o: ObjectRef) => `${o.name}-workers`.slice(0, 63).replace(/-+$/, "");
const podName = (o: ObjectRef, attempt: number, rank: number) =>
  `${o.name.slice(0, 40)}-a${attempt}-r${rank}`;

/** A local checkpoint folder (not object storage), as a path; undefined for s3:// URIs. */
export function localCheckpointDir(uri: string): string | undefined {
  if (uri.startsWith("s3://")) return undefined;
  if (uri.startsWith("file://")) return uri.slice("file://".length);
  return uri;
}

const isReady = (n: V1Node) =>
  n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
const isConflict = (err: unknown) => err instanceof ApiException && err.code === 409;
const isNotFound = (err: unknown) => err instanceof ApiException && err.code === 404;

/** The pods of one attempt: one per worker rank, all the spec asks of placement and size. */
export function attemptPods(a: CreateAttempt, opts: TrainingActivityOptions): V1Pod[] {
  const spec = a.spec as unknown as TrainingJobSpec;
  const { object } = a;
  const world = spec.parallelism.workers;
  const r = spec.resources;
  const threads = Math.max(1, Math.floor(Number.parseFloat(r.cpu) || 1));
  const limits: Record<string, string> = { cpu: r.cpu, memory: r.memory };
  if (spec.parallelism.gpusPerWorker > 0)
    limits[r.gpuResource] = String(spec.parallelism.gpusPerWorker);
  const job = {
    apiVersion: `${group}/${version}`,
    kind: "TrainingJob",
    metadata: { name: object.name, namespace: object.namespace, uid: object.uid },
    spec,
  };
  const ckpt = localCheckpointDir(spec.checkpoint.uri);
  const service = serviceName(object);
  const rank0 = podName(object, a.attempt, 0);
  const tls = trainerTemporalTls(opts);
  const mounts = [...(ckpt ? [{ name: "checkpoints", mountPath: ckpt }] : []), ...tls.mounts];
  const volumes = [
    ...(ckpt ? [{ name: "checkpoints", hostPath: { path: ckpt, type: "DirectoryOrCreate" } }] : []),
    ...tls.volumes,
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
      { name: "HERD_WORKFLOW_ID", value: a.workflowId },
      { name: "HERD_TRAINER_THREADS", value: String(threads) },
      { name: "TEMPORAL_ADDRESS", value: opts.temporalAddress },
      { name: "TEMPORAL_NAMESPACE", value: opts.temporalNamespace },
      ...objectStorageEnv(opts.s3),
      ...tls.env,
    ];
    const name = podName(object, a.attempt, rank);
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
        restartPolicy: "Never",
        hostname: `${object.name.slice(0, 40)}-a${a.attempt}-r${rank}`,
        subdomain: service,
        terminationGracePeriodSeconds: 30,
        automountServiceAccountToken: false,
        ...(opts.trainerServiceAccount && { serviceAccountName: opts.trainerServiceAccount }),
        securityContext: trainerPodSecurity,
        ...(r.priorityClassName && { priorityClassName: r.priorityClassName }),
        ...(r.nodeSelector && { nodeSelector: r.nodeSelector }),
        ...(r.tolerations && { tolerations: r.tolerations as V1Toleration[] }),
        containers: [
          {
            name: "trainer",
            image:
              r.image === defaultTrainerImage && opts.trainerImage ? opts.trainerImage : r.image,
            // The image's checkout is at /app (the node agent maps herd's image there).
            command: ["node", "--import", "tsx", "workers/trainer/pod.ts"],
            workingDir: "/app",
            env,
            ports: [{ name: "rendezvous", containerPort: rendezvousPort }],
            resources: { requests: limits, limits },
            securityContext: trainerContainerSecurity,
            ...(mounts.length > 0 && { volumeMounts: mounts }),
          },
        ],
        ...(volumes.length > 0 && { volumes }),
      },
    };
  });
}

function headlessService(a: CreateAttempt): V1Service {
  const { object } = a;
  return {
    metadata: {
      name: serviceName(object),
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

export interface Disruption {
  reason: string;
  message: string;
}

const disruptionOf = (pod: V1Pod) =>
  pod.status?.conditions?.find((c) => c.type === "DisruptionTarget" && c.status === "True");
const terminated = (pod: V1Pod) => pod.status?.containerStatuses?.[0]?.state?.terminated;
const ended = (pod: V1Pod) => pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";

/** The trainer's own words about why it stopped: its last error line, from the pod's log. */
function trainerMessage(log: string): string | undefined {
  const lines = log.split("\n").filter((l) => l.trim() !== "");
  for (const line of lines.reverse()) {
    if (line.startsWith("herd train: ")) return line.slice("herd train: ".length);
    if (line.startsWith("{")) {
      try {
        const o = JSON.parse(line) as { event?: string; msg?: string };
        if (o.event === "warning" && o.msg?.startsWith("error: ")) return o.msg.slice(7);
      } catch {
        /* not ours */
      }
    }
    if (/^(Error|TypeError|RangeError)\b/.test(line) || line.startsWith("herd trainer pod: "))
      return line;
  }
  return undefined;
}

/** A rank's error when another rank died under it (native/src/dist/gloo_collective.cc). */
const peerLost = /all-reduce on rank \d+ of \d+ failed: a peer rank is gone/;

/** Slack past a pod's deletion deadline before its silent node counts as lost. */
const strandedAfterMs = 15_000;

/**
 * A pod being deleted on a node that is not Ready, past its deletion deadline (the API server
 * sets deletionTimestamp to the request time plus the grace period): its kubelet cannot
 * confirm the end, so the pod would stay Terminating until the node comes back.
 */
function strandedOn(p: V1Pod, notReady: Set<string>, now: number): boolean {
  const deadline = p.metadata?.deletionTimestamp;
  return (
    !ended(p) &&
    deadline !== undefined &&
    notReady.has(p.spec?.nodeName ?? "") &&
    now > new Date(deadline).getTime() + strandedAfterMs
  );
}

/**
 * Classifies a set of pods (all of one attempt) that has ended, or returns undefined while
 * it runs. Disruption wins over exit codes: a preempted trainer exits 75 after its SIGTERM
 * checkpoint, but a pod killed while disrupted is still a preemption.
 */
export function classify(
  pods: V1Pod[],
  expected: number,
  nodes: Set<string>,
  logs: (pod: V1Pod) => string | undefined,
  remembered: Map<string, Disruption> = new Map(),
  notReady: Set<string> = new Set(),
  now: number = Date.now(),
): Outcome | undefined {
  const disrupted = pods.filter((p) => disruptionOf(p) || p.metadata?.deletionTimestamp);
  const stranded = disrupted.filter((p) => strandedOn(p, notReady, now));
  const lostNode = pods.filter((p) => p.spec?.nodeName && !nodes.has(p.spec.nodeName));
  if (pods.length < expected) {
    // A pod deleted by someone else: once the others are down too, it is a preemption. The
    // watch may have seen why (its DisruptionTarget condition) before the pod went.
    if (pods.every((p) => ended(p) || !p.metadata?.deletionTimestamp)) {
      const present = new Set(pods.map((p) => p.metadata?.name));
      const why = [...remembered].find(([name]) => !present.has(name));
      return why
        ? {
            kind: "preempted",
            reason: why[1].reason,
            message: `pod ${why[0]}: ${why[1].reason}: ${why[1].message}`,
          }
        : { kind: "preempted", reason: "PodDeleted", message: "a pod was deleted" };
    }
  }
  if (lostNode.length > 0)
    return {
      kind: "preempted",
      reason: "NodeLost",
      message: `node ${lostNode[0]!.spec!.nodeName} is gone`,
    };
  if (stranded.length > 0)
    return {
      kind: "preempted",
      reason: "NodeLost",
      message: `pod ${stranded[0]!.metadata!.name}: node ${stranded[0]!.spec!.nodeName} stopped responding; resuming from the last durable checkpoint`,
    };
  if (disrupted.length > 0) {
    // Wait for the disrupted pods to stop: their SIGTERM checkpoint must be durable first.
    if (!disrupted.every(ended)) return undefined;
    const name = disrupted[0]!.metadata!.name!;
    const c = disruptionOf(disrupted[0]!) ?? remembered.get(name);
    return {
      kind: "preempted",
      reason: c?.reason ?? "PodDeleted",
      message:
        `pod ${disrupted[0]!.metadata!.name}: ${c ? `${c.reason}: ${c.message ?? ""}` : "deleted"}`.trim(),
    };
  }
  // The rank that failed first is the cause; its peers fail after it, saying a peer is gone.
  // finishedAt has whole seconds, so a peer's "a peer rank is gone" also sorts it last.
  const finished = (p: V1Pod) => new Date(terminated(p)?.finishedAt ?? 0).getTime();
  const lostPeer = (p: V1Pod) => (peerLost.test(logs(p) ?? "") ? 1 : 0);
  const failed = pods
    .filter((p) => p.status?.phase === "Failed")
    .sort((a, b) => lostPeer(a) - lostPeer(b) || finished(a) - finished(b));
  for (const pod of failed) {
    const t = terminated(pod);
    const name = pod.metadata!.name!;
    if (t?.reason === "OOMKilled")
      return { kind: "oomKilled", reason: "OOMKilled", message: `pod ${name} was OOMKilled` };
    if (t?.exitCode === trainerExit.preempted)
      return {
        kind: "preempted",
        reason: "TrainerStopped",
        message: `pod ${name} stopped after a checkpoint (exit ${trainerExit.preempted})`,
      };
    const said = trainerMessage(logs(pod) ?? "");
    if (t?.exitCode === trainerExit.userError)
      return {
        kind: "userError",
        reason: "UserError",
        message: said ?? `pod ${name}: the trainer rejected the job (exit 64)`,
      };
  }
  if (failed.length > 0) {
    const pod = failed[0]!;
    const t = terminated(pod);
    const said = trainerMessage(logs(pod) ?? "");
    return {
      kind: "failed",
      reason: t?.reason === "StartError" ? "StartError" : "TrainerFailed",
      message:
        `pod ${pod.metadata!.name} failed (exit ${t?.exitCode ?? "unknown"}${t?.reason ? `, ${t.reason}` : ""})` +
        (said ? `: ${said}` : ""),
    };
  }
  if (pods.length === expected && pods.every((p) => p.status?.phase === "Succeeded"))
    return { kind: "succeeded", reason: "Completed", message: `all ${expected} rank(s) exited 0` };
  return undefined;
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
    await core
      .deleteNamespacedService({ name: serviceName(object), namespace })
      .catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    // The trainers write their SIGTERM checkpoint meanwhile.
    for (;;) {
      const pods = (await core.listNamespacedPod({ namespace, labelSelector: selector(object) }))
        .items;
      if (pods.length === 0) return;
      const notReady = new Set(
        (await core.listNode()).items.filter((n) => !isReady(n)).map((n) => n.metadata?.name ?? ""),
      );
      for (const p of pods) {
        // A pod whose node stopped responding would stay Terminating until the node returns:
        // past its deadline it is removed from the API at once. (On a partitioned rather than
        // dead node its process may still run: docs/training.md, "Node loss", says why that
        // is safe.)
        const stranded = strandedOn(p, notReady, Date.now());
        if (!p.metadata?.deletionTimestamp || stranded)
          await core
            .deleteNamespacedPod({
              name: p.metadata!.name!,
              namespace,
              ...(stranded && { gracePeriodSeconds: 0 }),
            })
            .catch((err) => {
              if (!isNotFound(err)) throw err;
            });
      }
      heartbeat();
      await activitySleep(500);
    }
  };

  return {
    async createAttempt(a) {
      const service = headlessService(a);
      await core
        .createNamespacedService({ namespace: a.object.namespace, body: service })
        .catch((err: unknown) => {
          if (!isConflict(err)) throw err;
        });
      const pods = attemptPods(a, opts);
      for (const pod of pods)
        await core
          .createNamespacedPod({ namespace: a.object.namespace, body: pod })
          .catch((err: unknown) => {
            if (!isConflict(err)) throw err;
          });
      return pods.map((p) => p.metadata!.name!);
    },

    async watchAttempt(a: WatchAttempt): Promise<Outcome> {
      const { namespace } = a.object;
      let unschedulableSince: number | undefined;
      // A watch sees every version of the pods: a DisruptionTarget condition lasts only
      // until the pod is gone, often less than a poll.
      const remembered = new Map<string, Disruption>();
      const watch = await new Watch(kc).watch(
        `/api/v1/namespaces/${namespace}/pods`,
        { labelSelector: selector(a.object, a.attempt) },
        (_type: string, pod: V1Pod) => {
          const d = disruptionOf(pod);
          if (d && pod.metadata?.name)
            remembered.set(pod.metadata.name, {
              reason: d.reason ?? "DisruptionTarget",
              message: d.message ?? "",
            });
        },
        () => {},
      );
      let settle = 0;
      try {
        for (;;) {
          const pods = (
            await core.listNamespacedPod({
              namespace,
              labelSelector: selector(a.object, a.attempt),
            })
          ).items;
          const nodes = (await core.listNode()).items;
          const nodeNames = new Set(nodes.map((n) => n.metadata?.name ?? ""));
          const notReady = new Set(
            nodes.filter((n) => !isReady(n)).map((n) => n.metadata?.name ?? ""),
          );
          const logs = new Map<string, string>();
          for (const p of pods)
            if (p.status?.phase === "Failed")
              logs.set(
                p.metadata!.name!,
                await core
                  .readNamespacedPodLog({
                    name: p.metadata!.name!,
                    namespace,
                    container: "trainer",
                    tailLines: 40,
                  })
                  .catch(() => ""),
              );
          const outcome = classify(
            pods,
            a.ranks,
            nodeNames,
            (p) => logs.get(p.metadata!.name!),
            remembered,
            notReady,
          );
          // A deletion whose reason the watch has not delivered yet: give it a moment.
          if (outcome?.reason === "PodDeleted" && settle++ < 4) {
            await activitySleep(500);
            continue;
          }
          if (outcome) return outcome;
          const unschedulable = pods.find((p) =>
            p.status?.conditions?.some(
              (c) =>
                c.type === "PodScheduled" && c.status === "False" && c.reason === "Unschedulable",
            ),
          );
          if (!unschedulable) unschedulableSince = undefined;
          else {
            unschedulableSince ??= Date.now();
            if (!a.stuckReported && Date.now() - unschedulableSince > a.stuckAfterSeconds * 1000)
              return {
                kind: "stuck",
                reason: "Unschedulable",
                message: `pod ${unschedulable.metadata!.name} cannot be scheduled: ${
                  unschedulable.status?.conditions?.find((c) => c.type === "PodScheduled")
                    ?.message ?? ""
                }`,
              };
          }
          heartbeat({ pods: pods.map((p) => `${p.metadata?.name}:${p.status?.phase}`) });
          await activitySleep(500);
        }
      } finally {
        watch.abort();
      }
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
