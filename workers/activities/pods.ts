// Pods that herd's workflows run (trainer and evaluator pods): watching a set of them to
// their end and classifying how it ended (DESIGN.md, "Outcomes of an attempt"), and deleting
// them. One implementation for every kind: the training and evaluation activities differ
// only in the pods they create and the label selector that finds them.
import { heartbeat, sleep as activitySleep } from "@temporalio/activity";
import {
  CoreV1Api,
  Watch,
  type KubeConfig,
  type V1Node,
  type V1Pod,
} from "@kubernetes/client-node";
import { trainerExit, type Outcome } from "../../workflows/training-types.ts";
import { isNotFound } from "../kube-errors.ts";

const isReady = (n: V1Node) =>
  n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

export interface Disruption {
  reason: string;
  message: string;
}

const disruptionOf = (pod: V1Pod) =>
  pod.status?.conditions?.find((c) => c.type === "DisruptionTarget" && c.status === "True");

/**
 * When a pod was told to stop, if it was: its DisruptionTarget condition's time, else the time
 * of its deletion request (the deletion deadline less the grace period).
 */
export function stopTimeOf(pod: V1Pod): number | undefined {
  const since = disruptionOf(pod)?.lastTransitionTime;
  if (since) return new Date(since).getTime();
  const deadline = pod.metadata?.deletionTimestamp;
  if (!deadline) return undefined;
  return new Date(deadline).getTime() - (pod.metadata?.deletionGracePeriodSeconds ?? 0) * 1000;
}
const terminated = (pod: V1Pod) => pod.status?.containerStatuses?.[0]?.state?.terminated;
const ended = (pod: V1Pod) => pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";

/**
 * The program's own words about why it stopped: its last error line, from the pod's log.
 * `herd train` and `herd eval` write "herd train: …" / "herd eval: …"; the pod entry points
 * "herd trainer pod: …" / "herd evaluator pod: …".
 */
function podMessage(log: string): string | undefined {
  const lines = log.split("\n").filter((l) => l.trim() !== "");
  for (const line of lines.reverse()) {
    const own = /^herd (train|eval): /.exec(line);
    if (own) return line.slice(own[0].length);
    if (line.startsWith("{")) {
      try {
        const o = JSON.parse(line) as { event?: string; msg?: string };
        if (o.event === "warning" && o.msg?.startsWith("error: ")) return o.msg.slice(7);
      } catch {
        /* not ours */
      }
    }
    if (
      /^(Error|TypeError|RangeError)\b/.test(line) ||
      /^herd (trainer|evaluator) pod: /.test(line)
    )
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
 * The kubelet's words (pkg/kubelet/eviction) when a pod outgrew the local disk it was given:
 * an emptyDir past its sizeLimit, a container or the whole pod past its ephemeral-storage
 * limit. Not "The node was low on resource: ephemeral-storage", which is the node's doing and
 * counts as a preemption like any other eviction.
 */
const storageLimitExceeded =
  /exceeds the limit|exceeds the total limit of containers|exceeded its local ephemeral storage limit/;

/** The pod the kubelet evicted for outgrowing its own ephemeral storage, if one did. */
function outgrewStorage(pods: V1Pod[]): V1Pod | undefined {
  return pods.find(
    (p) => p.status?.reason === "Evicted" && storageLimitExceeded.test(p.status.message ?? ""),
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
  // Before disruptions: the kubelet marks this eviction DisruptionTarget too, but a new
  // attempt would outgrow the same disk again.
  const outgrew = outgrewStorage(pods);
  if (outgrew)
    return {
      kind: "userError",
      reason: "EphemeralStorageExceeded",
      message:
        `pod ${outgrew.metadata!.name} was evicted: ${outgrew.status!.message!.trim()} ` +
        "Raise spec.resources.ephemeralStorage: the pod's scratch space holds the staging copy of S3 checkpoints and the cache of S3 shards",
    };
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
    const said = podMessage(logs(pod) ?? "");
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
    const said = podMessage(logs(pod) ?? "");
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

/**
 * Container waiting reasons that do not clear by themselves: the image cannot be pulled or is
 * misnamed, or the container cannot be created as specified (a missing Secret key, say). The
 * kubelet keeps retrying these, so the attempt would wait forever without a word.
 */
const stuckWaiting = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "ErrImageNeverPull",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
]);

/**
 * Why a pod cannot make progress on its own, if it cannot: unschedulable, or a container
 * waiting for a reason in stuckWaiting. `key` identifies the situation (the same key from one
 * poll to the next means it persisted).
 */
export function blockedOf(
  pod: V1Pod,
): { key: string; reason: string; message: string } | undefined {
  const name = pod.metadata?.name ?? "";
  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (scheduled?.status === "False" && scheduled.reason === "Unschedulable")
    return {
      key: `${name}/Unschedulable`,
      reason: "Unschedulable",
      message: `pod ${name} cannot be scheduled: ${scheduled.message ?? ""}`,
    };
  for (const c of pod.status?.containerStatuses ?? []) {
    const waiting = c.state?.waiting;
    if (waiting?.reason && stuckWaiting.has(waiting.reason))
      return {
        key: `${name}/${c.name}/${waiting.reason}`,
        reason: waiting.reason,
        message:
          `pod ${name} cannot start container ${c.name} (image ${c.image}): ${waiting.reason}` +
          (waiting.message ? `: ${waiting.message}` : ""),
      };
  }
  return undefined;
}

/**
 * Remembers since when each pod has been blocked and says when one has been blocked for
 * `afterSeconds`: the attempt is stuck. `since` carries over between polls.
 */
export function stuckOf(
  pods: V1Pod[],
  since: Map<string, number>,
  now: number,
  afterSeconds: number,
): { reason: string; message: string } | undefined {
  const blocked = pods.map(blockedOf).filter((b) => b !== undefined);
  for (const key of since.keys()) if (!blocked.some((b) => b.key === key)) since.delete(key);
  for (const b of blocked) {
    const start = since.get(b.key) ?? now;
    since.set(b.key, start);
    if (now - start >= afterSeconds * 1000) return { reason: b.reason, message: b.message };
  }
  return undefined;
}

export interface WatchPods {
  namespace: string;
  /** Label selector of the pods (one attempt's). */
  selector: string;
  /** Pods the attempt was created with. */
  expected: number;
  /**
   * Report "stuck" once when a pod stays unschedulable, or unable to pull its image or create
   * its container, this long (then keep watching).
   */
  stuckAfterSeconds: number;
  stuckReported: boolean;
}

/**
 * Watches a set of pods until they end, heartbeating, and classifies the end. Runs inside an
 * activity; its retry (on another worker) watches the same pods again. `interim`, asked on
 * every poll while the pods run, may end the watch early with a report of its own.
 */
export async function watchPods<T = never>(
  kc: KubeConfig,
  w: WatchPods,
  interim?: (pods: V1Pod[]) => Promise<T | undefined>,
): Promise<Outcome | T> {
  const core = kc.makeApiClient(CoreV1Api);
  const { namespace, selector } = w;
  const blockedSince = new Map<string, number>();
  // A watch sees every version of the pods: a DisruptionTarget condition lasts only
  // until the pod is gone, often less than a poll.
  const remembered = new Map<string, Disruption>();
  // The first time a pod of the set was told to stop (its SIGTERM), for the outcome.
  let stopAt: number | undefined;
  const noteStop = (pod: V1Pod) => {
    const t = stopTimeOf(pod);
    if (t !== undefined && (stopAt === undefined || t < stopAt)) stopAt = t;
  };
  const watch = await new Watch(kc).watch(
    `/api/v1/namespaces/${namespace}/pods`,
    { labelSelector: selector },
    (_type: string, pod: V1Pod) => {
      noteStop(pod);
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
      const pods = (await core.listNamespacedPod({ namespace, labelSelector: selector })).items;
      pods.forEach(noteStop);
      const nodes = (await core.listNode()).items;
      const nodeNames = new Set(nodes.map((n) => n.metadata?.name ?? ""));
      const notReady = new Set(nodes.filter((n) => !isReady(n)).map((n) => n.metadata?.name ?? ""));
      const logs = new Map<string, string>();
      for (const p of pods)
        if (p.status?.phase === "Failed")
          logs.set(
            p.metadata!.name!,
            await core
              .readNamespacedPodLog({
                name: p.metadata!.name!,
                namespace,
                container: p.spec?.containers[0]?.name,
                tailLines: 40,
              })
              .catch(() => ""),
          );
      const outcome = classify(
        pods,
        w.expected,
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
      if (outcome)
        return stopAt === undefined
          ? outcome
          : { ...outcome, stopAt: new Date(stopAt).toISOString() };
      const stuck = stuckOf(pods, blockedSince, Date.now(), w.stuckAfterSeconds);
      if (stuck && !w.stuckReported) return { kind: "stuck", ...stuck };
      const report = await interim?.(pods);
      if (report !== undefined) return report;
      heartbeat({ pods: pods.map((p) => `${p.metadata?.name}:${p.status?.phase}`) });
      await activitySleep(500);
    }
  } finally {
    watch.abort();
  }
}

/**
 * Deletes the pods the selector finds (with their grace period: SIGTERM first, so a trainer
 * checkpoints) and waits until they are gone, heartbeating.
 */
export async function deletePods(core: CoreV1Api, namespace: string, selector: string) {
  for (;;) {
    const pods = (await core.listNamespacedPod({ namespace, labelSelector: selector })).items;
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
}
