// The test harness: the local control plane (the same code as `herd dev up`), started once
// per test run and shared by every test file. Test files run in parallel processes, so the
// start happens under a lock file; a plane that is already up (a developer's `herd dev up`)
// is reused. When the harness started it, it leaves a marker so scripts/test.sh stops it
// after the run (`herd dev down` does the same by hand).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import { CoreV1Api, KubeConfig, Watch } from "@kubernetes/client-node";
import type { V1Pod, V1Toleration } from "@kubernetes/client-node";
import { Connection } from "@temporalio/client";
import { S3 } from "../../workers/s3.ts";
import type { NodeSpec } from "./agent-config.ts";
import {
  defaultStateDir,
  endpoints,
  startedByTestsMarker,
  status,
  toolPath,
  up,
} from "./controlplane.ts";
import type { Endpoints } from "./controlplane.ts";

export interface Cluster extends Endpoints {
  kc: KubeConfig;
  core: CoreV1Api;
  /** Runs the real kubectl against the cluster. */
  kubectl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** A new connection to the dev server's Temporal; the caller closes it. */
  temporal(): Promise<Connection>;
  /** The S3 client for the checkpoint bucket. */
  s3Client(): S3;
  addNode(spec: NodeSpec): Promise<void>;
  removeNode(name: string): Promise<void>;
  setNodeReady(name: string, ready: boolean): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** An exclusive lock file beside the state folder; a holder that died leaves it stale. */
async function withLock<T>(lock: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(path.dirname(lock), { recursive: true });
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      const fd = openSync(lock, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = Number(readFileSync(lock, "utf8") || 0);
      if (holder > 0 && !pidAlive(holder)) rmSync(lock, { force: true });
      else if (Date.now() > deadline) throw new Error(`lock ${lock} held by pid ${holder}`);
      else await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

let shared: Promise<Cluster> | undefined;

/** The running control plane, started if need be. Safe to call from parallel test files. */
export function cluster(dir = defaultStateDir()): Promise<Cluster> {
  shared ??= withLock(`${dir}.lock`, async () => {
    const all = await status(dir);
    if (!all.every((c) => c.state === "ready")) {
      // Marked first, so that what a failed start left running is stopped after the run too.
      mkdirSync(path.dirname(startedByTestsMarker(dir)), { recursive: true });
      writeFileSync(startedByTestsMarker(dir), `${process.pid}\n`);
      await up(dir);
    }
    return connect(endpoints(dir));
  });
  return shared;
}

function connect(e: Endpoints): Cluster {
  const kc = new KubeConfig();
  kc.loadFromFile(e.kubeconfig);
  const control = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${e.agent}${route}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!res.ok) throw new Error(`node agent ${method} ${route}: ${await res.text()}`);
  };
  return {
    ...e,
    kc,
    core: kc.makeApiClient(CoreV1Api),
    kubectl: (...args) =>
      new Promise((resolve) => {
        const env = { ...process.env, PATH: [...toolPath, process.env.PATH].join(":") };
        execFile(
          "kubectl",
          ["--kubeconfig", e.kubeconfig, ...args],
          { env },
          (err, stdout, stderr) =>
            resolve({
              code: err ? Number((err as { code?: number }).code ?? 1) : 0,
              stdout,
              stderr,
            }),
        );
      }),
    temporal: () => Connection.connect({ address: e.temporalAddress }),
    s3Client: () => new S3(e.s3),
    addNode: (spec) => control("POST", "/nodes", spec),
    removeNode: (name) => control("DELETE", `/nodes/${encodeURIComponent(name)}`),
    setNodeReady: (name, ready) =>
      control("POST", `/nodes/${encodeURIComponent(name)}/ready`, { ready }),
  };
}

/** A short random suffix, so parallel tests and repeated runs never share names. */
export const unique = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

/**
 * A node of the test's own: tainted so only pods that ask for it (with `placement`) land
 * there, and nothing of the test lands anywhere else.
 */
export async function testNode(
  c: Cluster,
  name: string,
  capacity: Record<string, string>,
  more: Pick<NodeSpec, "runtime" | "hostMounts" | "cudaLibrary"> = {},
) {
  const taint = { key: "herd.dev/test-node", value: name, effect: "NoSchedule" as const };
  await c.addNode({ name, capacity: { pods: "20", ...capacity }, taints: [taint], ...more });
  const placement = {
    nodeSelector: { "kubernetes.io/hostname": name },
    tolerations: [
      { key: taint.key, operator: "Equal", value: name, effect: taint.effect },
    ] as V1Toleration[],
  };
  return { name, placement };
}

/** A pod that runs a shell script on the node agent, with restartPolicy Never. */
export function shellPod(name: string, script: string, extra: Partial<V1Pod["spec"]> = {}): V1Pod {
  return {
    metadata: { name },
    spec: {
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 10,
      containers: [{ name: "main", image: "busybox", command: ["sh", "-c", script] }],
      ...extra,
    },
  };
}

export async function createNamespace(c: Cluster, prefix: string): Promise<string> {
  const name = unique(prefix);
  await c.core.createNamespace({ body: { metadata: { name } } });
  // The ServiceAccount admission plugin refuses pods until the default account exists.
  for (let i = 0; i < 100; i++) {
    try {
      await c.core.readNamespacedServiceAccount({ name: "default", namespace: name });
      return name;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`namespace ${name}: no default service account after 10 s`);
}

/** Removes the test's pods (the agent stops them), its node, then its namespace. */
export async function cleanup(c: Cluster, namespace: string, nodes: string[] = []) {
  await c.core.deleteCollectionNamespacedPod({ namespace, gracePeriodSeconds: 1 }).catch(() => {});
  for (let i = 0; i < 100; i++) {
    const left = await c.core.listNamespacedPod({ namespace });
    if (left.items.length === 0) break;
    await sleep(100);
  }
  for (const n of nodes) await c.removeNode(n).catch(() => {});
  await c.core.deleteNamespace({ name: namespace }).catch(() => {});
}

export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await sleep(200);
  }
}

/** Every version of every pod in a namespace, as a watch delivers them (conditions that last
 * only moments, like DisruptionTarget on a pod being deleted, are seen here). */
export async function recordPods(c: Cluster, namespace: string) {
  const seen: { type: string; pod: V1Pod }[] = [];
  const closed: string[] = [];
  const watch = new Watch(c.kc);
  let resourceVersion: string | undefined;
  let stopped = false;
  let req: AbortController | undefined;
  // A watch that closes is resumed from the last version seen, so no event is lost.
  const start = async (): Promise<void> => {
    req = await watch.watch(
      `/api/v1/namespaces/${namespace}/pods`,
      resourceVersion
        ? { resourceVersion, allowWatchBookmarks: true }
        : { allowWatchBookmarks: true },
      (type, pod: V1Pod) => {
        resourceVersion = pod.metadata?.resourceVersion ?? resourceVersion;
        if (type !== "BOOKMARK") seen.push({ type, pod });
      },
      (err) => {
        if (stopped) return;
        closed.push(err ? String(err) : "closed");
        setTimeout(() => void start().catch((e) => closed.push(String(e))), 200);
      },
    );
  };
  await start();
  return {
    seen,
    versions: (name: string) => seen.filter((s) => s.pod.metadata?.name === name).map((s) => s.pod),
    /** Waits until the watch, which can trail a GET, has delivered the pod's deletion. */
    deleted: async (name: string) => {
      try {
        await waitFor(`the watch to deliver ${name}'s deletion`, async () =>
          seen.some((s) => s.type === "DELETED" && s.pod.metadata?.name === name)
            ? true
            : undefined,
        );
      } catch (err) {
        throw new Error(`${String(err)} (watch closed: ${closed.join("; ") || "never"})`);
      }
    },
    stop: () => {
      stopped = true;
      req?.abort();
    },
  };
}
