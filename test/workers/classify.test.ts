// How an attempt's pods ended → what the training workflow does (DESIGN.md, "Outcomes of an
// attempt"), on pod objects as the API server returns them.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { classify, stopTimeOf, stuckOf } from "../../workers/activities/pods.ts";

const nodes = new Set(["n1"]);

function pod(
  name: string,
  phase: string,
  o: {
    exitCode?: number;
    reason?: string;
    disruption?: string;
    deleting?: boolean;
    node?: string;
    finishedAt?: Date;
  } = {},
): V1Pod {
  return {
    metadata: {
      name,
      ...(o.deleting && { deletionTimestamp: new Date() }),
    },
    spec: { nodeName: o.node ?? "n1", containers: [{ name: "trainer" }] },
    status: {
      phase,
      conditions: o.disruption
        ? [{ type: "DisruptionTarget", status: "True", reason: o.disruption, message: "m" }]
        : [],
      containerStatuses:
        o.exitCode === undefined
          ? []
          : [
              {
                name: "trainer",
                image: "herd",
                imageID: "",
                ready: false,
                restartCount: 0,
                state: {
                  terminated: { exitCode: o.exitCode, reason: o.reason, finishedAt: o.finishedAt },
                },
              },
            ],
    },
  } as V1Pod;
}

const noLogs = () => undefined;

test("running pods: no outcome yet", () => {
  assert.equal(classify([pod("a", "Running"), pod("b", "Pending")], 2, nodes, noLogs), undefined);
});

test("every rank exited 0: succeeded; one rank still running: not yet", () => {
  assert.equal(
    classify([pod("a", "Succeeded", { exitCode: 0 })], 1, nodes, noLogs)?.kind,
    "succeeded",
  );
  assert.equal(
    classify([pod("a", "Succeeded", { exitCode: 0 }), pod("b", "Running")], 2, nodes, noLogs),
    undefined,
  );
});

test("DisruptionTarget: preemption with its reason, once the pod has stopped", () => {
  const stopping = pod("a", "Running", { disruption: "PreemptionByScheduler", deleting: true });
  assert.equal(classify([stopping], 1, nodes, noLogs), undefined);
  const stopped = pod("a", "Failed", { exitCode: 75, disruption: "PreemptionByScheduler" });
  const o = classify([stopped], 1, nodes, noLogs);
  assert.equal(o?.kind, "preempted");
  assert.equal(o?.reason, "PreemptionByScheduler");
  // Disruption wins over the exit code of a trainer killed before it could checkpoint.
  const killed = pod("a", "Failed", { exitCode: 137, disruption: "EvictionByEvictionAPI" });
  assert.equal(classify([killed], 1, nodes, noLogs)?.reason, "EvictionByEvictionAPI");
});

test("evicted for outgrowing its ephemeral storage: a user error naming the field; disk pressure is a preemption", () => {
  const evicted = (message: string, name = "a") => {
    const p = pod(name, "Failed", { exitCode: 137, disruption: "TerminationByKubelet" });
    return { ...p, status: { ...p.status, reason: "Evicted", message } };
  };
  // The kubelet's three messages for a pod over its own limits (pkg/kubelet/eviction).
  for (const message of [
    'Usage of EmptyDir volume "scratch" exceeds the limit "64Ki". ',
    "Pod ephemeral local storage usage exceeds the total limit of containers 64Ki. ",
    'Container trainer exceeded its local ephemeral storage limit "64Ki". ',
  ]) {
    // The peer rank failed after it, as ranks do when one goes.
    const o = classify([evicted(message), pod("b", "Failed", { exitCode: 1 })], 2, nodes, noLogs);
    assert.equal(o?.kind, "userError", message);
    assert.equal(o?.reason, "EphemeralStorageExceeded");
    assert.match(
      o!.message,
      /^pod a was evicted: .*64Ki.* Raise spec\.resources\.ephemeralStorage/,
    );
  }
  const pressure = evicted("The node was low on resource: ephemeral-storage. ");
  const o = classify([pressure], 1, nodes, noLogs);
  assert.equal(o?.kind, "preempted");
  assert.equal(o?.reason, "TerminationByKubelet");
});

test("a pod deleted by someone else: preemption, with the reason the watch saw", () => {
  assert.equal(classify([], 1, nodes, noLogs)?.reason, "PodDeleted");
  const seen = new Map([["a", { reason: "DeletionByTaintManager", message: "node not ready" }]]);
  const o = classify([], 1, nodes, noLogs, seen);
  assert.equal(o?.kind, "preempted");
  assert.equal(o?.reason, "DeletionByTaintManager");
});

test("the node is gone: preemption (NodeLost)", () => {
  const o = classify([pod("a", "Running", { node: "gone" })], 1, nodes, noLogs);
  assert.deepEqual([o?.kind, o?.reason], ["preempted", "NodeLost"]);
});

test("exit codes: 75 preempted, 64 user error with the trainer's message, OOMKilled, other failures", () => {
  assert.equal(
    classify([pod("a", "Failed", { exitCode: 75 })], 1, nodes, noLogs)?.kind,
    "preempted",
  );
  const log =
    '{"event":"info","msg":"x"}\nherd train: spec.data.sources[0].uri: cannot read /nope\n';
  const user = classify([pod("a", "Failed", { exitCode: 64 })], 1, nodes, () => log);
  assert.equal(user?.kind, "userError");
  assert.equal(user?.message, "spec.data.sources[0].uri: cannot read /nope");
  const oom = classify(
    [pod("a", "Failed", { exitCode: 137, reason: "OOMKilled" })],
    1,
    nodes,
    noLogs,
  );
  assert.equal(oom?.kind, "oomKilled");
  const crash = classify([pod("a", "Failed", { exitCode: 1, reason: "Error" })], 1, nodes, noLogs);
  assert.equal(crash?.kind, "failed");
  assert.match(crash?.message ?? "", /exit 1/);
});

test("ranks that failed together: the cause is the rank whose peer did not fail first", () => {
  // Rank 1 crashed; rank 0 failed after it because its all-reduce lost the peer — in the
  // same second (finishedAt has whole seconds), or even a second before by the clock.
  const logs = (p: V1Pod) =>
    p.metadata?.name === "r0"
      ? "herd train: all-reduce on rank 0 of 2 failed: a peer rank is gone or did not arrive"
      : "herd train: something broke on rank 1";
  const out = classify(
    [
      pod("r0", "Failed", { exitCode: 1, finishedAt: new Date(1000) }),
      pod("r1", "Failed", { exitCode: 1, finishedAt: new Date(1000) }),
    ],
    2,
    nodes,
    logs,
  );
  assert.equal(out?.kind, "failed");
  assert.equal(out?.message, "pod r1 failed (exit 1): something broke on rank 1");
});

test("of ranks that each failed on their own, the first to fail is the cause", () => {
  const out = classify(
    [
      pod("r0", "Failed", { exitCode: 1, finishedAt: new Date(9000) }),
      pod("r1", "Failed", { exitCode: 2, finishedAt: new Date(1000) }),
    ],
    2,
    nodes,
    noLogs,
  );
  assert.equal(out?.message, "pod r1 failed (exit 2)");
});

test("a pod being deleted on a node that stopped responding: NodeLost once past its deadline", () => {
  const now = Date.parse("2026-01-01T00:10:00Z");
  const deleting = (deadline: string, node: string): V1Pod => {
    const p = pod("a", "Running", { disruption: "DeletionByTaintManager", node });
    p.metadata!.deletionTimestamp = new Date(deadline);
    return p;
  };
  const present = new Set(["n1", "n2"]);
  const silent = new Set(["n2"]);
  // Just past the deadline: the kubelet may still report the end (and the checkpoint).
  const recent = deleting("2026-01-01T00:09:55Z", "n2");
  assert.equal(classify([recent], 1, present, noLogs, new Map(), silent, now), undefined);
  // Long past it on a silent node: it will not end by itself.
  const stranded = deleting("2026-01-01T00:09:00Z", "n2");
  const o = classify([stranded], 1, present, noLogs, new Map(), silent, now);
  assert.equal(o?.kind, "preempted");
  assert.equal(o?.reason, "NodeLost");
  assert.match(o?.message ?? "", /node n2 stopped responding/);
  // The same pod on a Ready node is just slow to stop: keep waiting.
  const slow = deleting("2026-01-01T00:09:00Z", "n1");
  assert.equal(classify([slow], 1, present, noLogs, new Map(), silent, now), undefined);
});

// Pods that cannot make progress on their own: unschedulable, or a container the kubelet
// cannot start (as it reports them: PodScheduled=False, or a waiting state with a reason).
const pending = (name: string, o: { unschedulable?: boolean; waiting?: string } = {}): V1Pod =>
  ({
    metadata: { name },
    spec: { containers: [{ name: "trainer", image: "herd/trainer:typo" }] },
    status: {
      phase: "Pending",
      conditions: o.unschedulable
        ? [
            {
              type: "PodScheduled",
              status: "False",
              reason: "Unschedulable",
              message: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            },
          ]
        : [{ type: "PodScheduled", status: "True" }],
      containerStatuses: o.waiting
        ? [
            {
              name: "trainer",
              image: "herd/trainer:typo",
              imageID: "",
              ready: false,
              restartCount: 0,
              state: { waiting: { reason: o.waiting, message: "pull access denied" } },
            },
          ]
        : [],
    },
  }) as V1Pod;

test("stuck: blocked for the whole threshold, named with the kubelet's or scheduler's words", () => {
  const since = new Map<string, number>();
  const after = 300;
  const t0 = 1_000_000;
  const pods = [pending("a"), pending("b", { waiting: "ImagePullBackOff" })];
  assert.equal(stuckOf(pods, since, t0, after), undefined, "just blocked: not yet");
  assert.equal(stuckOf(pods, since, t0 + 299_000, after), undefined);
  assert.deepEqual(stuckOf(pods, since, t0 + 300_000, after), {
    reason: "ImagePullBackOff",
    message:
      "pod b cannot start container trainer (image herd/trainer:typo): ImagePullBackOff: pull access denied",
  });
  const unschedulable = [pending("c", { unschedulable: true })];
  assert.equal(stuckOf(unschedulable, since, t0 + 300_000, after), undefined, "a new blocker");
  assert.match(
    stuckOf(unschedulable, since, t0 + 600_000, after)?.message ?? "",
    /^pod c cannot be scheduled: 0\/3 nodes are available: 3 Insufficient nvidia.com\/gpu\.$/,
  );
});

test("stuck: a blocker that clears starts the clock again; a creating container is not stuck", () => {
  const since = new Map<string, number>();
  const blocked = [pending("a", { waiting: "ErrImagePull" })];
  stuckOf(blocked, since, 0, 10);
  assert.equal(
    stuckOf([pending("a", { waiting: "ContainerCreating" })], since, 5_000, 10),
    undefined,
  );
  assert.equal(
    stuckOf(blocked, since, 11_000, 10),
    undefined,
    "blocked again at 11 s, not since 0",
  );
  assert.equal(stuckOf(blocked, since, 21_000, 10)?.reason, "ErrImagePull");
  for (const reason of ["ContainerCreating", "PodInitializing"])
    assert.equal(stuckOf([pending("x", { waiting: reason })], new Map(), 0, 0), undefined, reason);
  for (const reason of ["InvalidImageName", "CreateContainerConfigError", "ErrImageNeverPull"])
    assert.equal(stuckOf([pending("x", { waiting: reason })], new Map(), 0, 0)?.reason, reason);
});

test("when a pod was told to stop: its DisruptionTarget's time, else its deletion request's", () => {
  const deleted = new Date("2026-12-07T10:00:30Z");
  const p: V1Pod = {
    metadata: { name: "p", deletionTimestamp: deleted, deletionGracePeriodSeconds: 30 },
    status: { phase: "Running" },
  };
  assert.equal(new Date(stopTimeOf(p)!).toISOString(), "2026-12-07T10:00:00.000Z");
  p.status!.conditions = [
    {
      type: "DisruptionTarget",
      status: "True",
      reason: "PreemptionByScheduler",
      lastTransitionTime: new Date("2026-12-07T09:59:58Z"),
    },
  ];
  assert.equal(new Date(stopTimeOf(p)!).toISOString(), "2026-12-07T09:59:58.000Z");
  assert.equal(stopTimeOf(pod("q", "Running")), undefined);
});
