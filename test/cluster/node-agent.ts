// The node agent: the control plane's one stand-in, playing the kubelet for one or more
// nodes. It registers each node with its capacity and keeps its Lease fresh, runs every pod
// bound to its nodes as local processes (one process group per container, with the pod's env
// and volumes mapped to folders) or, on a node whose runtime is docker, as Docker containers
// of the pod's image, reports pod status as a kubelet does, serves container logs on the
// kubelet port for `kubectl logs`, and honours deletion with SIGTERM, the grace period, then
// SIGKILL. As CNI and cluster DNS would, it gives each pod its own loopback IP and publishes
// `<hostname>.<subdomain>.<ns>.svc` names in a hosts file (HERD_DEV_HOSTS). What it does not
// do is listed in docs/dev-cluster.md.
//
// Run by `herd dev up` as: node --import tsx test/cluster/node-agent.ts <state folder>
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import {
  chmodSync,
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  statfsSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  StorageV1Api,
  V1MicroTime,
  makeInformer,
} from "@kubernetes/client-node";
import type {
  V1Container,
  V1ContainerStatus,
  V1EnvVar,
  V1Node,
  V1NodeCondition,
  V1ObjectFieldSelector,
  V1PersistentVolume,
  V1PersistentVolumeClaim,
  V1Pod,
  V1PodCondition,
  V1Volume,
} from "@kubernetes/client-node";
import { imageMapping, nodeSpecErrors, quantity, readAgentConfig } from "./agent-config.ts";
import type { AgentConfig, NodeSpec } from "./agent-config.ts";
import { agentLabel, docker, dockerEngine, dockerEnv, removeAgentContainers } from "./docker.ts";
import type { Ports } from "./controlplane.ts";

const stateDir = path.resolve(process.argv[2] ?? "");
if (!process.argv[2] || !existsSync(path.join(stateDir, "ports.json"))) {
  console.error("usage: node-agent.ts <state folder with ports.json>");
  process.exit(2);
}
const ports = JSON.parse(readFileSync(path.join(stateDir, "ports.json"), "utf8")) as Ports;
const config: AgentConfig = readAgentConfig(path.join(stateDir, "agent.yaml"));
const agentDir = path.join(stateDir, "agent");
const pidDir = path.join(agentDir, "pids");
mkdirSync(pidDir, { recursive: true });
mkdirSync(path.join(agentDir, "pods"), { recursive: true });
const pki = (f: string) => path.join(stateDir, "pki", f);

const kc = new KubeConfig();
kc.loadFromFile(path.join(stateDir, "kubeconfig"));
const core = kc.makeApiClient(CoreV1Api);
const coordination = kc.makeApiClient(CoordinationV1Api);
const storage = kc.makeApiClient(StorageV1Api);

const log = (msg: string) => console.log(`${new Date().toISOString()} ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const errText = (err: unknown) => (err instanceof Error ? err.message : String(err));
const httpCode = (err: unknown) => (err as { code?: number })?.code;
const hostIP = "127.0.0.1";
const leaseSeconds = 40;
const heartbeatMs = 5_000;

// ---------------------------------------------------------------------------------------
// Nodes: registration, leases, Ready condition.

interface NodeRun {
  spec: NodeSpec;
  ready: boolean;
  /** GPU device indices not allotted to a running container. */
  freeGpus: string[];
  /** As the node reports it: herd-process://0.1, or docker://<engine version>. */
  runtimeVersion: string;
  timer?: NodeJS.Timeout;
}
const nodes = new Map<string, NodeRun>();

function nodeConditions(ready: boolean, old: V1NodeCondition[] = []): V1NodeCondition[] {
  const now = new Date();
  const want: [string, string, string, string][] = [
    ["MemoryPressure", "False", "KubeletHasSufficientMemory", "herd node agent"],
    ["DiskPressure", "False", "KubeletHasNoDiskPressure", "herd node agent"],
    ["PIDPressure", "False", "KubeletHasSufficientPID", "herd node agent"],
    ready
      ? ["Ready", "True", "KubeletReady", "herd node agent is posting ready status"]
      : ["Ready", "False", "HerdNodeNotReady", "made NotReady on demand (herd dev node-not-ready)"],
  ];
  return want.map(([type, status, reason, message]) => {
    const prev = old.find((c) => c.type === type);
    return {
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: now,
      lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : now,
    };
  });
}

/** The size of the disk pods' folders live on: a node's ephemeral-storage unless its spec says. */
function diskBytes(): number {
  const fs = statfsSync(agentDir);
  return fs.blocks * fs.bsize;
}

async function postNodeStatus(run: NodeRun): Promise<void> {
  const name = run.spec.name;
  for (let attempt = 0; attempt < 5; attempt++) {
    const node = await core.readNodeStatus({ name });
    const capacity = { "ephemeral-storage": String(diskBytes()), ...run.spec.capacity };
    node.status = {
      ...node.status,
      capacity,
      allocatable: capacity,
      conditions: nodeConditions(run.ready, node.status?.conditions),
      addresses: [
        { type: "InternalIP", address: hostIP },
        { type: "Hostname", address: name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: ports.kubelet } },
      nodeInfo: {
        architecture: os.arch() === "x64" ? "amd64" : os.arch(),
        operatingSystem: "linux",
        osImage: "herd node agent",
        kernelVersion: os.release(),
        kubeletVersion: "v1.37.2",
        kubeProxyVersion: "",
        containerRuntimeVersion: run.runtimeVersion,
        machineID: name,
        systemUUID: name,
        bootID: String(process.pid),
      },
    };
    try {
      await core.replaceNodeStatus({ name, body: node });
      return;
    } catch (err) {
      if (httpCode(err) !== 409) throw err;
    }
  }
}

async function renewLease(name: string): Promise<void> {
  const namespace = "kube-node-lease";
  const now = new V1MicroTime();
  try {
    const lease = await coordination.readNamespacedLease({ name, namespace });
    lease.spec = { ...lease.spec, holderIdentity: name, leaseDurationSeconds: leaseSeconds };
    lease.spec.renewTime = now;
    await coordination.replaceNamespacedLease({ name, namespace, body: lease });
  } catch (err) {
    if (httpCode(err) !== 404) throw err;
    const node = await core.readNode({ name });
    await coordination.createNamespacedLease({
      namespace,
      body: {
        metadata: {
          name,
          namespace,
          ownerReferences: [
            { apiVersion: "v1", kind: "Node", name, uid: node.metadata?.uid ?? "" },
          ],
        },
        spec: { holderIdentity: name, leaseDurationSeconds: leaseSeconds, renewTime: now },
      },
    });
  }
}

async function registerNode(spec: NodeSpec): Promise<void> {
  // A docker node without an engine is refused before it exists in the API.
  let runtimeVersion = "herd-process://0.1";
  if (spec.runtime === "docker") {
    const engine = await dockerEngine();
    if (!engine.version) throw new Error(`node ${spec.name}: runtime docker, but ${engine.reason}`);
    runtimeVersion = `docker://${engine.version}`;
  }
  const existing = nodes.get(spec.name);
  if (existing) clearInterval(existing.timer);
  const body: V1Node = {
    metadata: {
      name: spec.name,
      labels: {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "herd.dev/node-agent": "true",
        ...spec.labels,
      },
    },
    spec: { taints: spec.taints ?? [] },
  };
  try {
    await core.createNode({ body });
  } catch (err) {
    if (httpCode(err) !== 409) throw err; // a node from an earlier run: keep its spec (cordon)
  }
  const gpuCount = Number(spec.capacity["nvidia.com/gpu"] ?? 0);
  const devices = spec.gpuDevices ?? Array.from({ length: gpuCount }, (_, i) => String(i));
  const run: NodeRun = { spec, ready: true, freeGpus: devices, runtimeVersion };
  nodes.set(spec.name, run);
  await postNodeStatus(run);
  await renewLease(spec.name);
  let beats = 0;
  run.timer = setInterval(() => {
    if (!run.ready) return; // a NotReady node has stopped heartbeating
    beats++;
    renewLease(spec.name)
      .then(() => (beats % 6 === 0 ? postNodeStatus(run) : undefined))
      .catch((err) => log(`heartbeat ${spec.name}: ${errText(err)}`));
  }, heartbeatMs);
  log(`registered node ${spec.name} ${JSON.stringify(spec.capacity)}`);
}

/**
 * Nodes an earlier agent registered that this one does not own (a test's node whose test
 * never removed it): their pods have no process, so they go, and the pod GC removes the pods.
 */
async function removeStaleNodes(): Promise<void> {
  const owned = new Set(config.nodes.map((n) => n.name));
  const list = await core.listNode({ labelSelector: "herd.dev/node-agent=true" });
  for (const node of list.items) {
    const name = node.metadata?.name;
    if (name && !owned.has(name) && !nodes.has(name)) {
      await core.deleteNode({ name }).catch(() => {});
      log(`removed stale node ${name}`);
    }
  }
}

const gpuRequest = (c: V1Container) =>
  Number(c.resources?.limits?.["nvidia.com/gpu"] ?? c.resources?.requests?.["nvidia.com/gpu"] ?? 0);

/** Allots count GPU devices of the node, or undefined when it has fewer free. */
function takeGpus(node: string, count: number): string[] | undefined {
  const free = nodes.get(node)?.freeGpus ?? [];
  if (free.length < count) return undefined;
  return free.splice(0, count);
}

/** NotReady: posts Ready=False and stops renewing the lease, as a failing kubelet would. */
async function setNodeReady(name: string, ready: boolean): Promise<void> {
  const run = nodes.get(name);
  if (!run) throw new Error(`node ${name} is not one of this agent's nodes`);
  run.ready = ready;
  await postNodeStatus(run);
  if (ready) await renewLease(name);
  log(`node ${name} is now ${ready ? "Ready" : "NotReady"}`);
}

async function removeNode(name: string): Promise<void> {
  const run = nodes.get(name);
  if (!run) throw new Error(`node ${name} is not one of this agent's nodes`);
  clearInterval(run.timer);
  nodes.delete(name);
  await Promise.all(
    [...pods.values()].filter((p) => p.node === name).map((p) => killPod(p, 2, "node removed")),
  );
  await core.deleteNode({ name }).catch((err) => {
    if (httpCode(err) !== 404) throw err;
  });
  log(`removed node ${name}`);
}

// ---------------------------------------------------------------------------------------
// Pods: each container a process group; status written as a kubelet writes it.

interface ContainerRun {
  spec: V1Container;
  /** The container's process: the program itself, or the attached `docker run` client. */
  proc?: ChildProcess;
  /** docker runtime: the Docker container's name while it exists. */
  docker?: string;
  startedAt?: Date;
  terminated?: {
    exitCode: number;
    signal?: number;
    reason: string;
    message?: string;
    finishedAt: Date;
    startedAt: Date;
  };
  lastTerminated?: ContainerRun["terminated"];
  waiting?: { reason: string; message?: string };
  restartCount: number;
  restartTimer?: NodeJS.Timeout;
}

interface PodRun {
  uid: string;
  namespace: string;
  name: string;
  node: string;
  pod: V1Pod;
  /** The pod's own address (CNI's job on a real node): a loopback IP of its own. */
  ip: string;
  dir: string;
  containers: ContainerRun[];
  startTime: Date;
  deleting: boolean;
  failure?: { reason: string; message: string };
  /** Stopped by the kubelet itself: a node shutdown (`herd dev down`) or an eviction. */
  byKubelet?: boolean;
  stopping?: Promise<void>;
  removing?: Promise<void>;
  writes: Promise<void>;
}
const pods = new Map<string, PodRun>(); // by uid

function podPhase(run: PodRun): string {
  if (run.failure) return "Failed";
  if (run.containers.some((c) => c.proc || c.restartTimer)) return "Running";
  if (run.containers.every((c) => c.terminated)) {
    return run.containers.every((c) => c.terminated?.exitCode === 0) ? "Succeeded" : "Failed";
  }
  return "Pending";
}

function containerStatus(run: PodRun, c: ContainerRun): V1ContainerStatus {
  const state: V1ContainerStatus["state"] = c.proc
    ? { running: { startedAt: c.startedAt } }
    : c.terminated && !c.restartTimer
      ? {
          terminated: {
            ...c.terminated,
            containerID: `herd://${run.uid}/${c.spec.name}/${c.restartCount}`,
          },
        }
      : { waiting: c.waiting ?? { reason: "ContainerCreating" } };
  const last = c.restartTimer ? c.terminated : c.lastTerminated;
  return {
    name: c.spec.name,
    image: c.spec.image ?? "",
    imageID: "",
    containerID: `herd://${run.uid}/${c.spec.name}/${c.restartCount}`,
    ready: !!c.proc && !run.deleting,
    started: !!c.proc,
    restartCount: c.restartCount,
    state,
    lastState: last ? { terminated: last } : {},
  };
}

function mergeConditions(old: V1PodCondition[] = [], mine: V1PodCondition[]): V1PodCondition[] {
  const now = new Date();
  const out = old.filter((o) => !mine.some((m) => m.type === o.type));
  for (const m of mine) {
    const prev = old.find((o) => o.type === m.type);
    out.push({
      ...m,
      lastProbeTime: undefined,
      lastTransitionTime: prev && prev.status === m.status ? prev.lastTransitionTime : now,
    });
  }
  return out;
}

function podConditions(run: PodRun, phase: string): V1PodCondition[] {
  const allRunning = run.containers.every((c) => c.proc) && !run.deleting;
  const done = phase === "Succeeded" || phase === "Failed";
  const notReady = done ? "PodCompleted" : "ContainersNotReady";
  const cond = (type: string, ok: boolean, reason?: string): V1PodCondition => ({
    type,
    status: ok ? "True" : "False",
    ...(ok || !reason ? {} : { reason }),
  });
  return [
    cond("PodReadyToStartContainers", true),
    cond("Initialized", true),
    cond("ContainersReady", allRunning, notReady),
    cond("Ready", allRunning, notReady),
    ...(run.byKubelet
      ? [
          {
            ...cond("DisruptionTarget", true),
            reason: "TerminationByKubelet",
            message: run.failure?.message,
          },
        ]
      : []),
  ];
}

/** Writes the pod's status from the run; serialised per pod, retried on conflicts. */
function writeStatus(run: PodRun): Promise<void> {
  run.writes = run.writes.then(async () => {
    for (let attempt = 0; attempt < 10; attempt++) {
      let pod: V1Pod;
      try {
        pod = await core.readNamespacedPodStatus({ name: run.name, namespace: run.namespace });
      } catch (err) {
        if (httpCode(err) === 404) return;
        throw err;
      }
      if (pod.metadata?.uid !== run.uid) return;
      const phase = podPhase(run);
      // A terminal phase is final, as for the kubelet.
      const oldPhase = pod.status?.phase;
      const finalPhase = oldPhase === "Succeeded" || oldPhase === "Failed" ? oldPhase : phase;
      pod.status = {
        ...pod.status,
        phase: finalPhase,
        hostIP,
        hostIPs: [{ ip: hostIP }],
        podIP: run.ip,
        podIPs: [{ ip: run.ip }],
        startTime: pod.status?.startTime ?? run.startTime,
        conditions: mergeConditions(pod.status?.conditions, podConditions(run, finalPhase)),
        containerStatuses: run.containers.map((c) => containerStatus(run, c)),
        ...(run.failure ?? {}),
      };
      try {
        await core.replaceNamespacedPodStatus({
          name: run.name,
          namespace: run.namespace,
          body: pod,
        });
        return;
      } catch (err) {
        const code = httpCode(err);
        if (code === 404) return;
        if (code !== 409) throw err;
      }
    }
  });
  run.writes = run.writes.catch((err) =>
    log(`status of ${run.namespace}/${run.name}: ${errText(err)}`),
  );
  return run.writes;
}

// ----- pod addresses and names (CNI and cluster DNS)

/**
 * Pod IPs are 127.<plane>.x.y: all of 127/8 is loopback on Linux, so every pod can listen on
 * its own address at any port, as in a real pod network namespace. <plane> comes from this
 * plane's API server port, so planes of several state folders on one machine rarely overlap.
 */
const podNet = `127.${1 + (ports.apiserver % 254)}`;
const hostsFile = path.join(agentDir, "hosts");

function allocatePodIP(pod: V1Pod): string {
  const inUse = new Set([...pods.values()].map((r) => r.ip));
  const had = pod.status?.podIP;
  if (had?.startsWith(`${podNet}.`) && !inUse.has(had)) return had; // the agent restarted
  for (let i = 0; i < 65534; i++) {
    const n = (nextPodIP++ % 65534) + 1;
    const ip = `${podNet}.${n >> 8}.${n & 255}`;
    if (!inUse.has(ip)) return ip;
  }
  throw new Error(`no free pod IP left in ${podNet}.0.0/16`);
}
let nextPodIP = 0;

/**
 * The hosts file named by HERD_DEV_HOSTS in every container: what cluster DNS answers for
 * a pod with spec.hostname and spec.subdomain (`<hostname>.<subdomain>.<ns>.svc`, and with
 * `.cluster.local`) while it runs. A real cluster also needs the headless Service named
 * after the subdomain; the emulation does not check for it. Replaced atomically.
 */
function publishHosts(): void {
  const lines = ["# pod names of the herd dev plane (HERD_DEV_HOSTS); written by the node agent"];
  for (const run of pods.values()) {
    const { hostname, subdomain } = run.pod.spec ?? {};
    const phase = podPhase(run);
    if (!hostname || !subdomain || phase === "Succeeded" || phase === "Failed") continue;
    const name = `${hostname}.${subdomain}.${run.namespace}.svc`;
    lines.push(`${run.ip} ${name} ${name}.cluster.local`);
  }
  writeFileSync(`${hostsFile}.tmp`, lines.join("\n") + "\n");
  renameSync(`${hostsFile}.tmp`, hostsFile);
}

// ----- volumes

const podLabel = (pod: V1Pod) => `${pod.metadata?.namespace}/${pod.metadata?.name}`;

function fieldValue(pod: V1Pod, ref: V1ObjectFieldSelector, podIP: string): string {
  const f = ref.fieldPath;
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(f);
  if (m)
    return (m[1] === "labels" ? pod.metadata?.labels : pod.metadata?.annotations)?.[m[2]!] ?? "";
  const values: Record<string, string | undefined> = {
    "metadata.name": pod.metadata?.name,
    "metadata.namespace": pod.metadata?.namespace,
    "metadata.uid": pod.metadata?.uid,
    "spec.nodeName": pod.spec?.nodeName,
    "spec.serviceAccountName": pod.spec?.serviceAccountName,
    "status.hostIP": hostIP,
    "status.hostIPs": hostIP,
    "status.podIP": podIP,
    "status.podIPs": podIP,
  };
  if (f in values) return values[f] ?? "";
  if (f === "metadata.labels" || f === "metadata.annotations") {
    const map = f === "metadata.labels" ? pod.metadata?.labels : pod.metadata?.annotations;
    return Object.entries(map ?? {})
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join("\n");
  }
  throw new Error(`unsupported fieldRef ${f}`);
}

function writeItems(
  dir: string,
  data: Record<string, Buffer>,
  items: { key: string; path: string }[] | undefined,
) {
  mkdirSync(dir, { recursive: true });
  const entries = items?.length
    ? items.map((i) => [i.path, data[i.key]] as const)
    : Object.entries(data);
  for (const [file, content] of entries) {
    if (content === undefined) continue;
    const full = path.join(dir, file);
    mkdirSync(path.dirname(full), { recursive: true });
    writeFileSync(full, content);
  }
}

async function configMapData(ns: string, name: string, optional?: boolean) {
  try {
    const cm = await core.readNamespacedConfigMap({ name, namespace: ns });
    const out: Record<string, Buffer> = {};
    for (const [k, v] of Object.entries(cm.data ?? {})) out[k] = Buffer.from(v);
    for (const [k, v] of Object.entries(cm.binaryData ?? {})) out[k] = Buffer.from(v, "base64");
    return out;
  } catch (err) {
    if (httpCode(err) === 404 && optional) return {};
    throw new Error(`configmap ${ns}/${name}: ${errText(err)}`);
  }
}

async function secretData(ns: string, name: string, optional?: boolean) {
  try {
    const s = await core.readNamespacedSecret({ name, namespace: ns });
    const out: Record<string, Buffer> = {};
    for (const [k, v] of Object.entries(s.data ?? {})) out[k] = Buffer.from(v, "base64");
    return out;
  } catch (err) {
    if (httpCode(err) === 404 && optional) return {};
    throw new Error(`secret ${ns}/${name}: ${errText(err)}`);
  }
}

/** A kubeconfig with the pod's service-account token, handed to its processes as KUBECONFIG. */
function writePodKubeconfig(run: PodRun, token: string) {
  const yaml = [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: herd-dev",
    "  cluster:",
    `    server: https://${hostIP}:${ports.apiserver}`,
    `    certificate-authority: ${pki("ca.crt")}`,
    "users:",
    "- name: pod",
    "  user:",
    `    token: ${token}`,
    "contexts:",
    "- name: pod",
    "  context:",
    "    cluster: herd-dev",
    "    user: pod",
    `    namespace: ${run.namespace}`,
    "current-context: pod",
    "",
  ].join("\n");
  writeFileSync(path.join(run.dir, "kubeconfig"), yaml, { mode: 0o600 });
}

// ----- persistent volumes: a StorageClass whose claims the agent provisions as folders

const storageClass = "herd-local";
const provisioner = "herd.dev/node-agent";

/** The folder of a bound claim: its PersistentVolume's hostPath. */
async function claimFolder(namespace: string, name: string): Promise<string> {
  const pvc = await core.readNamespacedPersistentVolumeClaim({ name, namespace });
  const volumeName = pvc.spec?.volumeName;
  if (!volumeName) throw new Error(`persistentVolumeClaim ${namespace}/${name} is not bound`);
  const pv = await core.readPersistentVolume({ name: volumeName });
  const folder = pv.spec?.hostPath?.path ?? pv.spec?.local?.path;
  if (!folder) {
    throw new UnsupportedError(
      `volume ${volumeName}: only hostPath and local volumes have folders`,
    );
  }
  mkdirSync(folder, { recursive: true });
  return folder;
}

/** The default StorageClass, so claims without a class get one that this agent provisions. */
async function ensureStorageClass(): Promise<void> {
  try {
    await storage.createStorageClass({
      body: {
        metadata: {
          name: storageClass,
          annotations: { "storageclass.kubernetes.io/is-default-class": "true" },
        },
        provisioner,
        reclaimPolicy: "Delete",
        volumeBindingMode: "Immediate",
      },
    });
  } catch (err) {
    if (httpCode(err) !== 409) throw err;
  }
}

/**
 * A pending claim of our class gets a PersistentVolume: a folder under the state folder,
 * pre-bound to the claim, which the controller manager's PV controller then binds.
 */
async function provisionClaim(pvc: V1PersistentVolumeClaim): Promise<void> {
  if (pvc.spec?.storageClassName !== storageClass || pvc.spec.volumeName) return;
  if (pvc.status?.phase && pvc.status.phase !== "Pending") return;
  const { namespace, name, uid } = pvc.metadata ?? {};
  if (!namespace || !name || !uid || provisioning.has(uid)) return;
  provisioning.add(uid);
  const folder = path.join(agentDir, "pvc", namespace, `${name}-${uid.slice(0, 8)}`);
  try {
    await core.createPersistentVolume({
      body: {
        metadata: {
          name: `pvc-${uid}`,
          annotations: { "pv.kubernetes.io/provisioned-by": provisioner },
        },
        spec: {
          capacity: { storage: pvc.spec.resources?.requests?.storage ?? "1Gi" },
          accessModes: pvc.spec.accessModes ?? ["ReadWriteOnce"],
          hostPath: { path: folder, type: "DirectoryOrCreate" },
          claimRef: { apiVersion: "v1", kind: "PersistentVolumeClaim", namespace, name, uid },
          persistentVolumeReclaimPolicy: "Delete",
          storageClassName: storageClass,
        },
      },
    });
    mkdirSync(folder, { recursive: true });
    log(`provisioned ${folder} for claim ${namespace}/${name}`);
  } catch (err) {
    if (httpCode(err) !== 409) log(`provision ${namespace}/${name}: ${errText(err)}`);
  }
}
const provisioning = new Set<string>();

/** A released volume we provisioned is deleted with its folder (reclaim policy Delete). */
async function reclaimVolume(pv: V1PersistentVolume): Promise<void> {
  if (pv.metadata?.annotations?.["pv.kubernetes.io/provisioned-by"] !== provisioner) return;
  if (pv.status?.phase !== "Released" || pv.spec?.persistentVolumeReclaimPolicy !== "Delete")
    return;
  const folder = pv.spec.hostPath?.path;
  if (folder?.startsWith(path.join(agentDir, "pvc")))
    rmSync(folder, { recursive: true, force: true });
  await core.deletePersistentVolume({ name: pv.metadata.name! }).catch(() => {});
  log(`reclaimed volume ${pv.metadata.name}`);
}

/** Makes each volume a local folder; returns volume name → folder. */
async function materialiseVolumes(run: PodRun): Promise<Record<string, string>> {
  const pod = run.pod;
  const ns = run.namespace;
  const out: Record<string, string> = {};
  for (const v of pod.spec?.volumes ?? ([] as V1Volume[])) {
    const dir = path.join(run.dir, "volumes", v.name);
    if (v.emptyDir) {
      // World-writable, as the kubelet makes emptyDirs: containers run as non-root users.
      mkdirSync(dir, { recursive: true });
      chmodSync(dir, 0o777);
    } else if (v.hostPath) {
      out[v.name] = v.hostPath.path;
      if (v.hostPath.type === "DirectoryOrCreate") mkdirSync(v.hostPath.path, { recursive: true });
      continue;
    } else if (v.persistentVolumeClaim) {
      out[v.name] = await claimFolder(ns, v.persistentVolumeClaim.claimName);
      continue;
    } else if (v.configMap) {
      writeItems(
        dir,
        await configMapData(ns, v.configMap.name ?? "", v.configMap.optional),
        v.configMap.items,
      );
    } else if (v.secret) {
      writeItems(
        dir,
        await secretData(ns, v.secret.secretName ?? "", v.secret.optional),
        v.secret.items,
      );
    } else if (v.downwardAPI) {
      const data: Record<string, Buffer> = {};
      for (const item of v.downwardAPI.items ?? []) {
        if (item.fieldRef) data[item.path] = Buffer.from(fieldValue(pod, item.fieldRef, run.ip));
      }
      writeItems(dir, data, undefined);
    } else if (v.projected) {
      mkdirSync(dir, { recursive: true });
      for (const s of v.projected.sources ?? []) {
        if (s.serviceAccountToken) {
          const res = await core.createNamespacedServiceAccountToken({
            name: pod.spec?.serviceAccountName ?? "default",
            namespace: ns,
            body: {
              spec: {
                audiences: s.serviceAccountToken.audience ? [s.serviceAccountToken.audience] : [],
                expirationSeconds: s.serviceAccountToken.expirationSeconds ?? 3607,
                boundObjectRef: { apiVersion: "v1", kind: "Pod", name: run.name, uid: run.uid },
              },
            },
          });
          const token = res.status?.token ?? "";
          writeItems(dir, { [s.serviceAccountToken.path]: Buffer.from(token) }, undefined);
          writePodKubeconfig(run, token);
        } else if (s.configMap) {
          writeItems(
            dir,
            await configMapData(ns, s.configMap.name ?? "", s.configMap.optional),
            s.configMap.items,
          );
        } else if (s.secret) {
          writeItems(
            dir,
            await secretData(ns, s.secret.name ?? "", s.secret.optional),
            s.secret.items,
          );
        } else if (s.downwardAPI) {
          const data: Record<string, Buffer> = {};
          for (const item of s.downwardAPI.items ?? []) {
            if (item.fieldRef)
              data[item.path] = Buffer.from(fieldValue(pod, item.fieldRef, run.ip));
          }
          writeItems(dir, data, undefined);
        }
      }
    } else {
      throw new UnsupportedError(
        `volume ${v.name}: only emptyDir, hostPath, persistentVolumeClaim, configMap, secret, downwardAPI and projected volumes are supported`,
      );
    }
    out[v.name] = dir;
  }
  return out;
}

class UnsupportedError extends Error {}

// ----- processes

/** Rewrites image paths and mount paths at the start of a string or after a separator. */
function pathRewriter(map: Record<string, string>): (s: string) => string {
  const entries = Object.entries(map).sort((a, b) => b[0].length - a[0].length);
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return (s) => {
    for (const [from, to] of entries) {
      if (from === "/" || from === "") continue;
      const re = new RegExp(`(^|[\\s=:'"])${esc(from.replace(/\/$/, ""))}(?=$|[/\\s'":;])`, "g");
      s = s.replace(re, (_m, pre: string) => `${pre}${to}`);
    }
    return s;
  };
}

function ensureFile(file: string): string {
  if (!existsSync(file)) writeFileSync(file, "");
  return file;
}

/** Kubernetes' $(VAR) expansion: defined names are replaced, $$ escapes. */
function expand(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name?: string) =>
    m === "$$" ? "$" : name !== undefined && name in env ? env[name]! : m,
  );
}

/** The env every process-runtime container starts from: the host's PATH and HOME, the path map. */
const processBaseEnv = (run: PodRun, pathMap: Record<string, string>) => ({
  PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
  HOME: process.env.HOME ?? "/root",
  HERD_POD_DIR: run.dir,
  HERD_PATH_MAP: JSON.stringify(pathMap),
});

/** The container's env as the kubelet makes it, on top of base (the runtime's own). */
async function containerEnv(
  run: PodRun,
  c: V1Container,
  rewrite: (s: string) => string,
  base: Record<string, string>,
) {
  const pod = run.pod;
  const env: Record<string, string> = {
    ...base,
    HOSTNAME: run.name,
    KUBERNETES_SERVICE_HOST: hostIP,
    KUBERNETES_SERVICE_PORT: String(ports.apiserver),
    // Dev plane only: the cluster DNS names of the pods (see publishHosts); containers get
    // the file mounted read-only at the same path.
    HERD_DEV_HOSTS: hostsFile,
  };
  if (existsSync(path.join(run.dir, "kubeconfig")))
    env.KUBECONFIG = path.join(run.dir, "kubeconfig");
  for (const from of c.envFrom ?? []) {
    const data = from.configMapRef
      ? await configMapData(run.namespace, from.configMapRef.name ?? "", from.configMapRef.optional)
      : from.secretRef
        ? await secretData(run.namespace, from.secretRef.name ?? "", from.secretRef.optional)
        : {};
    for (const [k, v] of Object.entries(data)) env[`${from.prefix ?? ""}${k}`] = v.toString();
  }
  for (const e of c.env ?? ([] as V1EnvVar[])) {
    if (e.value !== undefined) env[e.name] = rewrite(expand(e.value, env));
    else if (e.valueFrom?.fieldRef) env[e.name] = fieldValue(pod, e.valueFrom.fieldRef, run.ip);
    else if (e.valueFrom?.configMapKeyRef) {
      const r = e.valueFrom.configMapKeyRef;
      const v = (await configMapData(run.namespace, r.name ?? "", r.optional))[r.key];
      if (v === undefined && !r.optional)
        throw new Error(`configmap ${r.name} has no key ${r.key}`);
      if (v !== undefined) env[e.name] = v.toString();
    } else if (e.valueFrom?.secretKeyRef) {
      const r = e.valueFrom.secretKeyRef;
      const v = (await secretData(run.namespace, r.name ?? "", r.optional))[r.key];
      if (v === undefined && !r.optional) throw new Error(`secret ${r.name} has no key ${r.key}`);
      if (v !== undefined) env[e.name] = v.toString();
    } else if (e.valueFrom?.resourceFieldRef) {
      const r = e.valueFrom.resourceFieldRef;
      const [kind, res] = r.resource.split(".") as ["limits" | "requests", string];
      env[e.name] = String(
        c.resources?.[kind]?.[res] ?? (res === "cpu" ? os.cpus().length : os.totalmem()),
      );
    } else env[e.name] = "";
  }
  return env;
}

function podDir(pod: V1Pod): string {
  return path.join(
    agentDir,
    "pods",
    `${pod.metadata?.namespace}_${pod.metadata?.name}_${pod.metadata?.uid}`,
  );
}

const logPath = (run: PodRun, container: string) => path.join(run.dir, "logs", `${container}.log`);
const pidPath = (run: PodRun, container: string) => path.join(pidDir, `${run.uid}-${container}`);

async function startContainer(run: PodRun, c: ContainerRun, volumes: Record<string, string>) {
  c.restartTimer = undefined;
  if (nodes.get(run.node)?.spec.runtime === "docker") return startDockerContainer(run, c, volumes);
  const spec = c.spec;
  const mapping = imageMapping(config, spec.image ?? "");
  const pathMap: Record<string, string> = { ...(mapping?.paths ?? {}) };
  for (const m of spec.volumeMounts ?? []) {
    const folder = volumes[m.name];
    if (folder === undefined) throw new Error(`volumeMount ${m.name}: no such volume`);
    pathMap[m.mountPath] = m.subPath ? path.join(folder, m.subPath) : folder;
    if (m.subPath) mkdirSync(pathMap[m.mountPath]!, { recursive: true });
  }
  const rewrite = pathRewriter(pathMap);
  const env = await containerEnv(run, spec, rewrite, processBaseEnv(run, pathMap));
  if (run.deleting) return; // deleted while its env was read: nothing to start
  const command = [...(spec.command ?? mapping?.command ?? []), ...(spec.args ?? [])].map((s) =>
    rewrite(expand(s, env)),
  );
  const [bin, ...args] = command;
  const workingDir = spec.workingDir ?? mapping?.workingDir;
  const cwd = workingDir ? rewrite(workingDir) : path.join(run.dir, "work");
  mkdirSync(cwd, { recursive: true });
  mkdirSync(path.join(run.dir, "logs"), { recursive: true });
  const startedAt = new Date();
  if (!bin) {
    c.terminated = {
      exitCode: 128,
      reason: "StartError",
      message: `container ${spec.name} has no command and image ${spec.image} no entrypoint in agent.yaml`,
      startedAt,
      finishedAt: startedAt,
    };
    return;
  }
  const gpus = allotGpus(run, c, env, startedAt);
  if (!gpus) return;
  const out = openSync(logPath(run, spec.name), "a");
  const proc = spawn(bin, args, { cwd, env, detached: true, stdio: ["ignore", out, out] });
  closeSync(out);
  track(run, c, proc, { gpus, volumes, startedAt, bin }, async (code, signal) => {
    const signo = signal ? os.constants.signals[signal] : undefined;
    const exitCode = code ?? 128 + (signo ?? 9);
    return { exitCode, reason: exitCode === 0 ? "Completed" : "Error", signal: signo };
  });
  log(`started ${podLabel(run.pod)}/${spec.name} pid ${proc.pid}: ${command.join(" ")}`);
}

/**
 * Takes the GPUs the container asks for from its node and, as the NVIDIA device plugin does,
 * shows it those devices and no others; a StartError when the node has too few free.
 */
function allotGpus(
  run: PodRun,
  c: ContainerRun,
  env: Record<string, string>,
  startedAt: Date,
): string[] | undefined {
  const gpus = takeGpus(run.node, gpuRequest(c.spec));
  if (!gpus) {
    c.terminated = {
      exitCode: 128,
      reason: "StartError",
      message: `node ${run.node} has fewer than ${gpuRequest(c.spec)} free nvidia.com/gpu`,
      startedAt,
      finishedAt: startedAt,
    };
    return undefined;
  }
  env.CUDA_VISIBLE_DEVICES = env.NVIDIA_VISIBLE_DEVICES = gpus.join(",");
  // Simulated GPUs: the node's stand-in CUDA library (process runtime; a container has no
  // host paths).
  const node = nodes.get(run.node)?.spec;
  if (gpus.length > 0 && node?.cudaLibrary && node.runtime !== "docker")
    env.HERD_CUDA_LIBRARY = node.cudaLibrary;
  return gpus;
}

type Termination = Omit<NonNullable<ContainerRun["terminated"]>, "startedAt" | "finishedAt">;

/**
 * Follows a started container's process to its end: `ended` says how it ended (exit code,
 * reason), then its GPUs go back to the node and the restart policy decides what is next.
 */
function track(
  run: PodRun,
  c: ContainerRun,
  proc: ChildProcess,
  started: { gpus: string[]; volumes: Record<string, string>; startedAt: Date; bin: string },
  ended: (code: number | null, signal: NodeJS.Signals | null) => Promise<Termination>,
) {
  const { gpus, volumes, startedAt } = started;
  const name = c.spec.name;
  c.proc = proc;
  c.startedAt = startedAt;
  c.waiting = undefined;
  if (proc.pid) writeFileSync(pidPath(run, name), String(proc.pid));
  const finish = (t: Termination) => {
    if (c.proc !== proc) return;
    c.proc = undefined;
    c.docker = undefined;
    nodes.get(run.node)?.freeGpus.push(...gpus);
    rmSync(pidPath(run, name), { force: true });
    if (c.terminated) c.lastTerminated = c.terminated;
    c.terminated = {
      exitCode: t.exitCode,
      reason: t.reason,
      startedAt,
      finishedAt: new Date(),
      ...(t.message ? { message: t.message } : {}),
      ...(t.signal ? { signal: t.signal } : {}),
    };
    onContainerExit(run, c, volumes);
  };
  proc.on("error", (err) =>
    finish({ exitCode: 128, reason: "StartError", message: `${started.bin}: ${err.message}` }),
  );
  proc.on(
    "exit",
    (code, signal) =>
      void ended(code, signal)
        .catch((err): Termination => ({ exitCode: 128, reason: "Error", message: errText(err) }))
        .then(finish),
  );
}

// ----- the docker runtime

/** A Docker container's name, as the kubelet's dockershim named them: unique per restart. */
const dockerName = (run: PodRun, c: ContainerRun) =>
  `k8s_${c.spec.name}_${run.name}_${run.namespace}_${run.uid}_${c.restartCount}`;

/**
 * `docker run` flags for a container of the pod: host network (all traffic stays on
 * loopback), env, volumes as bind mounts, the memory and cpu limits, the security context's
 * read-only root and user.
 */
function dockerRunFlags(
  run: PodRun,
  c: ContainerRun,
  env: Record<string, string>,
  volumes: Record<string, string>,
): string[] {
  const spec = c.spec;
  const flags = ["--name", dockerName(run, c), "--network", "host"];
  flags.push("--label", `${agentLabel}=${stateDir}`, "--label", `herd.dev/pod-uid=${run.uid}`);
  const limits = spec.resources?.limits ?? {};
  const field = `container ${spec.name}: resources.limits`;
  if (limits.memory) {
    // No swap beyond the limit: a container over it is killed, as under the kubelet.
    const bytes = String(Math.floor(quantity(limits.memory, `${field}.memory`)));
    flags.push("--memory", bytes, "--memory-swap", bytes);
  }
  if (limits.cpu) flags.push("--cpus", String(quantity(limits.cpu, `${field}.cpu`)));
  for (const [k, v] of Object.entries(env)) flags.push("--env", `${k}=${v}`);
  if (spec.workingDir) flags.push("--workdir", spec.workingDir);
  for (const m of spec.volumeMounts ?? []) {
    const folder = volumes[m.name];
    if (folder === undefined) throw new Error(`volumeMount ${m.name}: no such volume`);
    const host = m.subPath ? path.join(folder, m.subPath) : folder;
    if (m.subPath) mkdirSync(host, { recursive: true });
    flags.push("--volume", `${host}:${m.mountPath}${m.readOnly ? ":ro" : ""}`);
  }
  for (const folder of nodes.get(run.node)?.spec.hostMounts ?? [])
    flags.push("--volume", `${folder}:${folder}:ro`);
  // KUBECONFIG names the pod's kubeconfig and the CA by their host paths: the same paths inside.
  if (env.KUBECONFIG)
    flags.push(
      "--volume",
      `${run.dir}:${run.dir}:ro`,
      "--volume",
      `${pki("ca.crt")}:${pki("ca.crt")}:ro`,
    );
  const security = { ...run.pod.spec?.securityContext, ...spec.securityContext };
  if (spec.securityContext?.readOnlyRootFilesystem) flags.push("--read-only", "--tmpfs", "/tmp");
  if (security.runAsUser !== undefined)
    flags.push(
      "--user",
      `${security.runAsUser}${security.runAsGroup !== undefined ? `:${security.runAsGroup}` : ""}`,
    );
  return flags;
}

/**
 * docker runtime: the container as an attached `docker run` of the pod's image, so its
 * output goes to the container's log and the client lives as long as the container. The
 * node never pulls: an image that is not there leaves the pod waiting (ErrImageNeverPull).
 */
async function startDockerContainer(run: PodRun, c: ContainerRun, volumes: Record<string, string>) {
  const spec = c.spec;
  const image = spec.image ?? "";
  if ((await docker(["image", "inspect", image])).code !== 0) {
    c.waiting = {
      reason: "ErrImageNeverPull",
      message: `image ${image} is not present on node ${run.node} (the herd node agent never pulls)`,
    };
    return;
  }
  const env = await containerEnv(run, spec, (s) => s, {});
  if (run.deleting) return;
  const startedAt = new Date();
  const gpus = allotGpus(run, c, env, startedAt);
  if (!gpus) return;
  const [entrypoint, ...commandArgs] = (spec.command ?? []).map((s) => expand(s, env));
  const args = (spec.args ?? []).map((s) => expand(s, env));
  const runArgs = [
    "run",
    ...dockerRunFlags(run, c, env, volumes),
    // A missing source would make docker create a folder there: the file exists first.
    ...["--volume", `${ensureFile(hostsFile)}:${hostsFile}:ro`],
    ...(entrypoint !== undefined ? ["--entrypoint", entrypoint] : []),
    image,
    ...commandArgs,
    ...args,
  ];
  mkdirSync(path.join(run.dir, "logs"), { recursive: true });
  const out = openSync(logPath(run, spec.name), "a");
  const name = dockerName(run, c);
  const proc = spawn("docker", runArgs, {
    env: dockerEnv(),
    detached: true,
    stdio: ["ignore", out, out],
  });
  closeSync(out);
  c.docker = name;
  track(run, c, proc, { gpus, volumes, startedAt, bin: "docker run" }, (code) =>
    dockerTermination(name, code),
  );
  log(`started ${podLabel(run.pod)}/${spec.name} as docker container ${name} (${image})`);
}

/**
 * How a Docker container ended, from the engine's record of it, which then goes: killed by
 * the kernel's OOM killer is OOMKilled with exit code 137, as the kubelet reports it.
 */
async function dockerTermination(name: string, clientCode: number | null): Promise<Termination> {
  const inspected = await docker(["inspect", "--format", "{{json .State}}", name]);
  await docker(["rm", "--force", name]);
  if (inspected.code !== 0)
    return {
      exitCode: clientCode ?? 128,
      reason: "StartError",
      message: `docker run exited ${clientCode} before a container existed (see the log)`,
    };
  const state = JSON.parse(inspected.stdout) as {
    ExitCode: number;
    OOMKilled: boolean;
    Error: string;
  };
  if (state.OOMKilled) return { exitCode: 137, reason: "OOMKilled" };
  if (state.Error)
    return { exitCode: state.ExitCode || 128, reason: "StartError", message: state.Error };
  return { exitCode: state.ExitCode, reason: state.ExitCode === 0 ? "Completed" : "Error" };
}

/** Stops a container: `docker stop` (SIGTERM, the grace, SIGKILL) or its process group's SIGTERM. */
function stopContainer(c: ContainerRun, graceSeconds: number) {
  if (c.docker) void docker(["stop", "--time", String(graceSeconds), c.docker]);
  else signalGroup(c.proc, "SIGTERM");
}

/** Kills a container outright, once its grace is over. */
function killContainer(c: ContainerRun) {
  // A Docker container's client exits once the container does; killing the client would not.
  if (c.docker) void docker(["kill", c.docker]);
  else signalGroup(c.proc, "SIGKILL");
}

function onContainerExit(run: PodRun, c: ContainerRun, volumes: Record<string, string>) {
  const policy = run.pod.spec?.restartPolicy ?? "Always";
  const code = c.terminated?.exitCode ?? 1;
  log(`${podLabel(run.pod)}/${c.spec.name} exited ${code}`);
  publishHosts();
  const restart = !run.deleting && (policy === "Always" || (policy === "OnFailure" && code !== 0));
  if (restart) {
    // The kubelet's crash-loop back-off: 10 s doubling to 5 minutes.
    const delay = Math.min(10_000 * 2 ** c.restartCount, 300_000);
    c.waiting = {
      reason: "CrashLoopBackOff",
      message: `back-off ${delay / 1000}s restarting failed container`,
    };
    c.restartTimer = setTimeout(() => {
      c.restartCount++;
      startContainer(run, c, volumes)
        .catch((err) => failPod(run, "StartError", errText(err)))
        .finally(() => writeStatus(run));
    }, delay);
  }
  void writeStatus(run);
}

function failPod(run: PodRun, reason: string, message: string) {
  run.failure = { reason, message };
  for (const c of run.containers) {
    if (!c.terminated && !c.proc) {
      const now = new Date();
      c.terminated = { exitCode: 128, reason, message, startedAt: now, finishedAt: now };
    }
  }
  log(`${podLabel(run.pod)} failed: ${reason}: ${message}`);
}

async function startPod(pod: V1Pod, recovered: boolean) {
  const run: PodRun = {
    uid: pod.metadata!.uid!,
    namespace: pod.metadata!.namespace!,
    name: pod.metadata!.name!,
    node: pod.spec!.nodeName!,
    pod,
    ip: allocatePodIP(pod),
    dir: podDir(pod),
    containers: (pod.spec?.containers ?? []).map((spec) => ({ spec, restartCount: 0 })),
    startTime: new Date(),
    deleting: false,
    writes: Promise.resolve(),
  };
  pods.set(run.uid, run);
  // A pod that was running when the agent stopped lost its processes, as on a node reboot.
  if (recovered && pod.spec?.restartPolicy === "Never") {
    const now = new Date();
    for (const c of run.containers) {
      c.terminated = {
        exitCode: 137,
        reason: "ContainerStatusUnknown",
        message: "the node agent restarted and the process is gone",
        startedAt: now,
        finishedAt: now,
      };
    }
    await writeStatus(run);
    return;
  }
  mkdirSync(run.dir, { recursive: true });
  publishHosts();
  await writeStatus(run);
  if ((pod.spec?.initContainers ?? []).length > 0) {
    failPod(run, "Unsupported", "the herd node agent does not run init containers");
    await writeStatus(run);
    return;
  }
  let volumes: Record<string, string> = {};
  for (;;) {
    if (run.deleting) return;
    try {
      volumes = await materialiseVolumes(run);
      break;
    } catch (err) {
      if (err instanceof UnsupportedError) {
        failPod(run, "Unsupported", err.message);
        await writeStatus(run);
        return;
      }
      // Like the kubelet, wait for a missing ConfigMap or Secret to appear.
      for (const c of run.containers)
        c.waiting = { reason: "ContainerCreating", message: errText(err) };
      await writeStatus(run);
      await sleep(2000);
    }
  }
  for (const c of run.containers) {
    try {
      await startContainer(run, c, volumes);
    } catch (err) {
      c.waiting = { reason: "CreateContainerConfigError", message: errText(err) };
      failPod(run, "CreateContainerConfigError", errText(err));
    }
  }
  await writeStatus(run);
}

const signalGroup = (proc: ChildProcess | undefined, signal: NodeJS.Signals) => {
  if (!proc?.pid) return;
  try {
    process.kill(-proc.pid, signal);
  } catch {
    /* gone */
  }
};

/**
 * SIGTERM to every container, SIGKILL after the grace period, then the final status. Called
 * again (every status write brings another watch event) it returns the stop under way.
 */
function killPod(run: PodRun, graceSeconds: number, why: string): Promise<void> {
  run.stopping ??= (async () => {
    run.deleting = true;
    log(`stopping ${podLabel(run.pod)} (${why}), grace ${graceSeconds}s`);
    for (const c of run.containers) {
      clearTimeout(c.restartTimer);
      c.restartTimer = undefined;
      stopContainer(c, graceSeconds);
    }
    const until = Date.now() + graceSeconds * 1000;
    while (run.containers.some((c) => c.proc) && Date.now() < until) await sleep(100);
    for (const c of run.containers) killContainer(c);
    while (run.containers.some((c) => c.proc)) await sleep(50);
    await writeStatus(run);
  })();
  return run.stopping;
}

/** The pod object is going away: stop it, then remove it for good (grace 0), as the kubelet does. */
function deletePod(run: PodRun, pod: V1Pod): Promise<void> {
  run.removing ??= (async () => {
    const grace =
      pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
    await killPod(run, grace, "deleted");
    await run.writes;
    try {
      await core.deleteNamespacedPod({
        name: run.name,
        namespace: run.namespace,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid: run.uid } },
      });
    } catch (err) {
      if (httpCode(err) !== 404 && httpCode(err) !== 409) {
        log(`delete ${podLabel(pod)}: ${errText(err)}`);
      }
    }
    forget(run);
  })();
  return run.removing;
}

function forget(run: PodRun) {
  pods.delete(run.uid);
  rmSync(run.dir, { recursive: true, force: true });
  publishHosts();
}

/** One informer event: start what is new, stop what is deleted. */
function reconcile(pod: V1Pod, recovered = false) {
  const uid = pod.metadata?.uid;
  const node = pod.spec?.nodeName;
  if (!uid || !node || !nodes.has(node)) return;
  const run = pods.get(uid);
  if (run) run.pod = { ...pod, spec: run.pod.spec }; // the spec a pod started with is what runs
  if (pod.metadata?.deletionTimestamp) {
    if (run) void deletePod(run, pod);
    else if (!deleting.has(uid)) {
      deleting.add(uid);
      rmSync(podDir(pod), { recursive: true, force: true });
      core
        .deleteNamespacedPod({
          name: pod.metadata.name!,
          namespace: pod.metadata.namespace!,
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: { uid } },
        })
        .catch(() => {})
        .finally(() => deleting.delete(uid));
    }
    return;
  }
  const phase = pod.status?.phase;
  if (!run && phase !== "Succeeded" && phase !== "Failed") {
    void startPod(pod, recovered && phase === "Running").catch((err) =>
      log(`start ${podLabel(pod)}: ${errText(err)}`),
    );
  }
}
const deleting = new Set<string>();

// ---------------------------------------------------------------------------------------
// The kubelet port: container logs for `kubectl logs`, over https with client certificates.

function findRun(namespace: string, name: string): PodRun | undefined {
  let found: PodRun | undefined;
  for (const r of pods.values()) if (r.namespace === namespace && r.name === name) found = r;
  return found;
}

function serveLogs(req: http.IncomingMessage, res: http.ServerResponse) {
  const url = new URL(req.url ?? "/", "https://localhost");
  if (url.pathname === "/healthz") return void res.end("ok");
  const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
  if (!m) {
    res.writeHead(404).end("not found");
    return;
  }
  const [ns, name, container] = m.slice(1).map(decodeURIComponent) as [string, string, string];
  const run = findRun(ns, name);
  const c = run?.containers.find((x) => x.spec.name === container);
  // A pod that finished before the agent restarted still has its folder and log.
  const folder = readdirSync(path.join(agentDir, "pods")).find((d) =>
    d.startsWith(`${ns}_${name}_`),
  );
  const file =
    run && c
      ? logPath(run, container)
      : folder && path.join(agentDir, "pods", folder, "logs", `${container}.log`);
  if (!file || !existsSync(file)) {
    res.writeHead(404).end(`container ${container} of pod ${ns}/${name} is not on this node agent`);
    return;
  }
  let content = existsSync(file) ? readFileSync(file) : Buffer.alloc(0);
  const tailLines = url.searchParams.get("tailLines");
  if (tailLines !== null) {
    const lines = content.toString().split("\n");
    if (lines.at(-1) === "") lines.pop();
    const n = Number(tailLines);
    content = Buffer.from(
      lines
        .slice(Math.max(0, lines.length - n))
        .map((l) => `${l}\n`)
        .join(""),
    );
  }
  const limit = url.searchParams.get("limitBytes");
  if (limit !== null) content = content.subarray(0, Number(limit));
  res.writeHead(200, { "content-type": "text/plain" });
  res.write(content);
  if (url.searchParams.get("follow") !== "true") return void res.end();
  // Follow: stream what is appended until the container is no longer running.
  let offset = existsSync(file) ? statSync(file).size : 0;
  const timer = setInterval(() => {
    const size = existsSync(file) ? statSync(file).size : 0;
    if (size > offset) {
      createReadStream(file, { start: offset, end: size - 1 }).pipe(res, { end: false });
      offset = size;
    } else if (!c?.proc && !c?.restartTimer) {
      clearInterval(timer);
      res.end();
    }
  }, 250);
  req.on("close", () => clearInterval(timer));
}

// ---------------------------------------------------------------------------------------
// The control API on loopback: add/remove nodes, make them NotReady (tests, `herd dev`).

async function control(req: http.IncomingMessage, res: http.ServerResponse) {
  const reply = (code: number, body: unknown) => {
    res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(body));
  };
  try {
    const url = new URL(req.url ?? "/", "http://localhost");
    let body = "";
    for await (const chunk of req) body += chunk;
    if (url.pathname === "/readyz") return reply(synced ? 200 : 503, { synced });
    if (url.pathname === "/nodes" && req.method === "GET") {
      return reply(
        200,
        [...nodes.values()].map((n) => ({ ...n.spec, ready: n.ready })),
      );
    }
    if (url.pathname === "/nodes" && req.method === "POST") {
      const spec = JSON.parse(body) as NodeSpec;
      const errors = nodeSpecErrors(spec, "node");
      if (errors.length > 0) return reply(400, { error: errors.join("; ") });
      await registerNode(spec);
      return reply(201, spec);
    }
    const m = /^\/nodes\/([^/]+)(\/ready)?$/.exec(url.pathname);
    if (m && !nodes.has(m[1]!)) return reply(404, { error: `no node ${m[1]} on this agent` });
    if (m && m[2] && req.method === "POST") {
      const { ready } = JSON.parse(body || "{}") as { ready?: boolean };
      if (typeof ready !== "boolean")
        return reply(400, { error: 'body must be {"ready": true|false}' });
      await setNodeReady(m[1]!, ready);
      return reply(200, { name: m[1], ready });
    }
    if (m && !m[2] && req.method === "DELETE") {
      await removeNode(m[1]!);
      return reply(200, { name: m[1] });
    }
    reply(404, { error: `no route ${req.method} ${url.pathname}` });
  } catch (err) {
    reply(500, { error: errText(err) });
  }
}

// ---------------------------------------------------------------------------------------

let synced = false;

async function main() {
  // Processes left by an agent that was killed belong to pods it can no longer report.
  for (const f of readdirSync(pidDir)) {
    const pid = Number(readFileSync(path.join(pidDir, f), "utf8"));
    try {
      if (pid > 0) process.kill(-pid, "SIGKILL");
    } catch {
      /* gone */
    }
    rmSync(path.join(pidDir, f), { force: true });
  }
  // Docker containers such an agent left; their clients were among those processes.
  const removed = await removeAgentContainers(stateDir);
  if (removed > 0) log(`removed ${removed} docker container(s) of an earlier agent`);
  https
    .createServer(
      {
        cert: readFileSync(pki("kubelet.crt")),
        key: readFileSync(pki("kubelet.key")),
        ca: readFileSync(pki("ca.crt")),
        requestCert: true,
        rejectUnauthorized: true,
      },
      serveLogs,
    )
    .listen(ports.kubelet, hostIP);
  http.createServer((req, res) => void control(req, res)).listen(ports.agent, hostIP);

  for (;;) {
    try {
      await removeStaleNodes();
      for (const n of config.nodes) await registerNode(n);
      break;
    } catch (err) {
      log(`registering nodes: ${errText(err)}; retrying`);
      await sleep(1000);
    }
  }
  // Pods bound to our nodes that the API already has (the agent restarted): recover them.
  const existing = await core.listPodForAllNamespaces();
  for (const pod of existing.items) reconcile(pod, true);

  const informer = makeInformer<V1Pod>(kc, "/api/v1/pods", () => core.listPodForAllNamespaces());
  informer.on("add", (pod) => reconcile(pod));
  informer.on("update", (pod) => reconcile(pod));
  informer.on("delete", (pod) => {
    const run = pod.metadata?.uid ? pods.get(pod.metadata.uid) : undefined;
    if (run) void killPod(run, 2, "pod object gone").then(() => forget(run));
  });
  informer.on("error", (err) => {
    log(`pod watch: ${errText(err)}; restarting`);
    setTimeout(() => void informer.start().catch(() => {}), 1000);
  });
  await informer.start();

  await ensureStorageClass();
  const claims = makeInformer<V1PersistentVolumeClaim>(kc, "/api/v1/persistentvolumeclaims", () =>
    core.listPersistentVolumeClaimForAllNamespaces(),
  );
  for (const verb of ["add", "update"] as const) {
    claims.on(verb, (pvc) => void provisionClaim(pvc));
  }
  claims.on("error", () => setTimeout(() => void claims.start().catch(() => {}), 1000));
  await claims.start();
  const volumes = makeInformer<V1PersistentVolume>(kc, "/api/v1/persistentvolumes", () =>
    core.listPersistentVolume(),
  );
  for (const verb of ["add", "update"] as const) {
    volumes.on(
      verb,
      (pv) => void reclaimVolume(pv).catch((err) => log(`reclaim: ${errText(err)}`)),
    );
  }
  volumes.on("error", () => setTimeout(() => void volumes.start().catch(() => {}), 1000));
  await volumes.start();
  setInterval(evictForLocalStorage, storageCheckMs);
  synced = true;
  log(`node agent ready: kubelet port ${ports.kubelet}, control port ${ports.agent}`);
}

// ---------------------------------------------------------------------------------------
// Local storage: the kubelet's eviction manager, for pods past their own limits.

/** How often pods' disk use is measured (the kubelet's housekeeping is 10 s; tests want less). */
const storageCheckMs = 1_000;

/** Bytes of the files under `dir`: their apparent sizes (the kubelet counts blocks). */
function diskUsage(dir: string): number {
  let total = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0; // not made yet, or removed meanwhile
  }
  for (const e of entries) {
    const file = path.join(dir, e.name);
    if (e.isDirectory()) total += diskUsage(file);
    else if (e.isFile()) total += statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  }
  return total;
}

/**
 * Why a running pod is to be evicted for its local storage, in the kubelet's words
 * (pkg/kubelet/eviction), if it is: an emptyDir over its sizeLimit, or the emptyDirs together
 * over the sum of the containers' ephemeral-storage limits. Containers here have no writable
 * layer of their own to count (they run in the node's filesystem, or in Docker's).
 */
function storageViolation(run: PodRun): string | undefined {
  let total = 0;
  for (const v of run.pod.spec?.volumes ?? []) {
    if (!v.emptyDir || v.emptyDir.medium === "Memory") continue;
    const used = diskUsage(path.join(run.dir, "volumes", v.name));
    total += used;
    const limit = v.emptyDir.sizeLimit;
    if (limit && used > quantity(limit, `volume ${v.name}: emptyDir.sizeLimit`))
      return `Usage of EmptyDir volume "${v.name}" exceeds the limit "${limit}". `;
  }
  const limits = (run.pod.spec?.containers ?? []).map(
    (c) => c.resources?.limits?.["ephemeral-storage"],
  );
  if (limits.length === 0 || !limits.every((q) => q !== undefined)) return undefined;
  const sum = limits.reduce((n, q) => n + quantity(q, "ephemeral-storage"), 0);
  if (total <= sum) return undefined;
  const shown = limits.length === 1 ? limits[0] : String(sum);
  return `Pod ephemeral local storage usage exceeds the total limit of containers ${shown}. `;
}

/**
 * Evicts the running pods past their limits as the kubelet does: at once (1 s of grace), the
 * pod Failed with reason Evicted and the message, DisruptionTarget TerminationByKubelet. The
 * pod object stays, as an evicted pod's does.
 */
function evictForLocalStorage(): void {
  for (const run of pods.values()) {
    if (run.deleting || !run.containers.some((c) => c.proc)) continue;
    let why: string | undefined;
    try {
      why = storageViolation(run);
    } catch (err) {
      log(`local storage of ${podLabel(run.pod)}: ${errText(err)}`); // a quantity we cannot read
    }
    if (!why) continue;
    run.byKubelet = true;
    run.failure = { reason: "Evicted", message: why };
    log(`evicting ${podLabel(run.pod)}: ${why}`);
    void killPod(run, 1, "evicted");
  }
}

/**
 * `herd dev down` is a node shutdown: as the kubelet's graceful node shutdown does, running
 * pods get SIGTERM and end Failed with DisruptionTarget (reason TerminationByKubelet).
 */
async function shutdown() {
  log("stopping: SIGTERM to every pod process");
  for (const n of nodes.values()) clearInterval(n.timer);
  const runs = [...pods.values()].filter((r) => r.containers.some((c) => c.proc || c.restartTimer));
  for (const r of runs) {
    r.deleting = true;
    r.byKubelet = true;
    r.failure = {
      reason: "Terminated",
      message: "Pod was terminated in response to imminent node shutdown.",
    };
    for (const c of r.containers) {
      clearTimeout(c.restartTimer);
      c.restartTimer = undefined;
      stopContainer(c, 3);
    }
  }
  const until = Date.now() + 3000;
  while (runs.some((r) => r.containers.some((c) => c.proc)) && Date.now() < until) await sleep(50);
  for (const r of runs) for (const c of r.containers) killContainer(c);
  while (runs.some((r) => r.containers.some((c) => c.proc)) && Date.now() < until + 1000) {
    await sleep(50);
  }
  await Promise.race([Promise.all(runs.map((r) => writeStatus(r))), sleep(3000)]);
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());

main().catch((err) => {
  log(`node agent failed: ${errText(err)}`);
  process.exit(1);
});
