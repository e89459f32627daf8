// The local control plane behind `herd dev up | down | status | env` and the test harness:
// etcd, kube-apiserver, kube-scheduler, kube-controller-manager, a Temporal dev server,
// SeaweedFS with S3, and the node agent, each a detached process group on 127.0.0.1 with its
// pid file and log in the state folder. Ports are chosen free once and kept in ports.json,
// so a restart keeps the same addresses (and etcd its peer URL).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { S3 } from "../../workers/s3.ts";
import type { S3KeyConfig } from "../../workers/s3.ts";
import { ensurePki } from "./pki.ts";
import { freePort, inEphemeralRange, portFree } from "./ports.ts";
import type { Pki } from "./pki.ts";
import { defaultAgentConfig, writeAgentConfig } from "./agent-config.ts";
import { removeAgentContainers } from "./docker.ts";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const cache = process.env.XDG_CACHE_HOME
  ? path.join(process.env.XDG_CACHE_HOME, "herd")
  : path.join(os.homedir(), ".cache", "herd");
/** The tools' folders, as scripts/env.sh puts them on PATH. */
export const toolPath = [path.join(cache, "venv", "bin"), path.join(cache, "bin")];
export const checkpointBucket = "herd-checkpoints";

/** $HERD_STATE, or ~/.cache/herd/dev. */
export function defaultStateDir(): string {
  return path.resolve(process.env.HERD_STATE || path.join(cache, "dev"));
}

const portNames = [
  "etcd",
  "etcdPeer",
  "apiserver",
  "scheduler",
  "controllerManager",
  "temporal",
  "temporalUi",
  "temporalHttp",
  "temporalMetrics",
  "weedMaster",
  "weedMasterGrpc",
  "weedVolume",
  "weedVolumeGrpc",
  "weedFiler",
  "weedFilerGrpc",
  "s3",
  "s3Grpc",
  "kubelet",
  "agent",
] as const;
export type Ports = Record<(typeof portNames)[number], number>;

export interface Endpoints {
  stateDir: string;
  kubeconfig: string;
  apiserver: string;
  temporalAddress: string;
  temporalUi: string;
  s3: S3KeyConfig;
  agent: string;
}

interface Component {
  name: string;
  /** Started only once these are ready. */
  after: string[];
  command: (ctx: Ctx) => { bin: string; args: string[]; env?: NodeJS.ProcessEnv };
  ready: (ctx: Ctx) => Promise<boolean>;
  address: (ctx: Ctx) => string;
  /** How long `down` waits after SIGTERM before SIGKILL (default 10 s). */
  stopGraceMs?: number;
}

interface Ctx {
  dir: string;
  ports: Ports;
  pki: Pki;
}

const p = (ctx: Ctx, ...f: string[]) => path.join(ctx.dir, ...f);
const loop = "127.0.0.1";

/** Whether GET url answers 2xx; https with the admin certificate when asked. */
function probe(url: string, pki?: Pki, selfSigned = false): Promise<boolean> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const opts: https.RequestOptions = { method: "GET", timeout: 2000 };
    if (u.protocol === "https:" && pki) {
      const admin = pki.cert("admin");
      Object.assign(opts, {
        ca: readFileSync(pki.ca),
        cert: readFileSync(admin.cert),
        key: readFileSync(admin.key),
        // The scheduler and controller manager serve with certificates they make themselves.
        rejectUnauthorized: !selfSigned,
      });
    }
    const request = u.protocol === "https:" ? https.request : http.request;
    const req = request(u, opts, (res) => {
      res.resume();
      resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

function kubeconfigYaml(ctx: Ctx, user: "admin" | "scheduler" | "controller-manager"): string {
  const c = ctx.pki.cert(user);
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: herd-dev",
    "  cluster:",
    `    server: https://${loop}:${ctx.ports.apiserver}`,
    `    certificate-authority: ${ctx.pki.ca}`,
    "users:",
    `- name: ${user}`,
    "  user:",
    `    client-certificate: ${c.cert}`,
    `    client-key: ${c.key}`,
    "contexts:",
    "- name: herd-dev",
    "  context:",
    "    cluster: herd-dev",
    `    user: ${user}`,
    "current-context: herd-dev",
    "",
  ].join("\n");
}

const kubeComponent = (name: string, port: keyof Ports, flags: (ctx: Ctx) => string[]) =>
  ({
    name,
    after: ["kube-apiserver"],
    command: (ctx) => ({
      bin: name,
      args: [
        `--kubeconfig=${p(ctx, "kube", `${name}.kubeconfig`)}`,
        `--authentication-kubeconfig=${p(ctx, "kube", `${name}.kubeconfig`)}`,
        `--authorization-kubeconfig=${p(ctx, "kube", `${name}.kubeconfig`)}`,
        `--bind-address=${loop}`,
        `--secure-port=${ctx.ports[port]}`,
        `--cert-dir=${p(ctx, "kube", name)}`,
        "--leader-elect=false",
        ...flags(ctx),
      ],
    }),
    ready: (ctx) => probe(`https://${loop}:${ctx.ports[port]}/healthz`, ctx.pki, true),
    address: (ctx) => `https://${loop}:${ctx.ports[port]}`,
  }) satisfies Component;

export const components: Component[] = [
  {
    name: "etcd",
    after: [],
    command: (ctx) => ({
      bin: path.join(cache, "bin", "etcd"), // the build's, not an older one on PATH
      args: [
        "--name=herd",
        `--data-dir=${p(ctx, "etcd")}`,
        `--listen-client-urls=http://${loop}:${ctx.ports.etcd}`,
        `--advertise-client-urls=http://${loop}:${ctx.ports.etcd}`,
        `--listen-peer-urls=http://${loop}:${ctx.ports.etcdPeer}`,
        `--initial-advertise-peer-urls=http://${loop}:${ctx.ports.etcdPeer}`,
        `--initial-cluster=herd=http://${loop}:${ctx.ports.etcdPeer}`,
        "--quota-backend-bytes=4294967296",
        "--log-level=warn",
      ],
    }),
    ready: (ctx) => probe(`http://${loop}:${ctx.ports.etcd}/health`),
    address: (ctx) => `http://${loop}:${ctx.ports.etcd}`,
  },
  {
    name: "kube-apiserver",
    after: ["etcd"],
    command: (ctx) => {
      const kc = ctx.pki.cert("kubelet-client");
      const serving = ctx.pki.cert("apiserver");
      return {
        bin: "kube-apiserver",
        args: [
          `--etcd-servers=http://${loop}:${ctx.ports.etcd}`,
          `--bind-address=${loop}`,
          `--advertise-address=${loop}`,
          `--secure-port=${ctx.ports.apiserver}`,
          `--tls-cert-file=${serving.cert}`,
          `--tls-private-key-file=${serving.key}`,
          `--client-ca-file=${ctx.pki.ca}`,
          "--authorization-mode=RBAC",
          "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,Priority," +
            "DefaultTolerationSeconds,TaintNodesByCondition,PodSecurity,ResourceQuota," +
            "StorageObjectInUseProtection,RuntimeClass,DefaultStorageClass," +
            "MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy",
          "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
          `--service-account-key-file=${ctx.pki.serviceAccountPub}`,
          `--service-account-signing-key-file=${ctx.pki.serviceAccountKey}`,
          "--service-cluster-ip-range=10.0.0.0/24",
          `--kubelet-client-certificate=${kc.cert}`,
          `--kubelet-client-key=${kc.key}`,
          `--kubelet-certificate-authority=${ctx.pki.ca}`,
          "--kubelet-preferred-address-types=InternalIP",
          "--allow-privileged=true",
          // No front proxy; naming a CA keeps the components' authentication lookups quiet.
          `--requestheader-client-ca-file=${ctx.pki.ca}`,
          "--requestheader-allowed-names=herd-front-proxy",
          "--requestheader-username-headers=X-Remote-User",
          "--requestheader-group-headers=X-Remote-Group",
          "--requestheader-extra-headers-prefix=X-Remote-Extra-",
          // Endpoints may not hold loopback addresses, so the `kubernetes` service gets none.
          "--endpoint-reconciler-type=none",
          "--profiling=false",
        ],
      };
    },
    ready: (ctx) => probe(`https://${loop}:${ctx.ports.apiserver}/readyz`, ctx.pki),
    address: (ctx) => `https://${loop}:${ctx.ports.apiserver}`,
  },
  kubeComponent("kube-scheduler", "scheduler", () => []),
  kubeComponent("kube-controller-manager", "controllerManager", (ctx) => [
    "--controllers=*",
    "--use-service-account-credentials=true",
    `--service-account-private-key-file=${ctx.pki.serviceAccountKey}`,
    `--root-ca-file=${ctx.pki.ca}`,
    `--cluster-signing-cert-file=${ctx.pki.ca}`,
    `--cluster-signing-key-file=${ctx.pki.caKey}`,
    "--service-cluster-ip-range=10.0.0.0/24",
    // Fast node health so NotReady nodes lose their pods within seconds, not minutes.
    "--node-monitor-period=2s",
    "--node-monitor-grace-period=20s",
    "--node-eviction-rate=10",
    "--secondary-node-eviction-rate=10",
  ]),
  {
    name: "temporal",
    after: [],
    command: (ctx) => ({
      bin: "temporal",
      args: [
        "server",
        "start-dev",
        `--ip=${loop}`,
        `--port=${ctx.ports.temporal}`,
        `--ui-ip=${loop}`,
        `--ui-port=${ctx.ports.temporalUi}`,
        `--http-port=${ctx.ports.temporalHttp}`,
        `--metrics-port=${ctx.ports.temporalMetrics}`,
        `--db-filename=${p(ctx, "temporal.db")}`,
        "--log-level=warn",
      ],
    }),
    ready: (ctx) => probe(`http://${loop}:${ctx.ports.temporalHttp}/api/v1/namespaces/default`),
    address: (ctx) => `${loop}:${ctx.ports.temporal} (UI http://${loop}:${ctx.ports.temporalUi})`,
  },
  {
    name: "seaweedfs",
    after: [],
    command: (ctx) => ({
      bin: "weed",
      args: [
        "server",
        `-dir=${p(ctx, "seaweedfs")}`,
        `-ip=${loop}`,
        `-ip.bind=${loop}`,
        `-master.port=${ctx.ports.weedMaster}`,
        `-master.port.grpc=${ctx.ports.weedMasterGrpc}`,
        "-master.volumeSizeLimitMB=256",
        "-master.telemetry=false",
        // One master: no reason to wait the default 10 s election timeout before leading.
        "-master.electionTimeout=1s",
        "-volume.preStopSeconds=0",
        `-volume.port=${ctx.ports.weedVolume}`,
        `-volume.port.grpc=${ctx.ports.weedVolumeGrpc}`,
        "-volume.max=0",
        "-filer",
        `-filer.port=${ctx.ports.weedFiler}`,
        `-filer.port.grpc=${ctx.ports.weedFilerGrpc}`,
        "-s3",
        `-s3.port=${ctx.ports.s3}`,
        `-s3.port.grpc=${ctx.ports.s3Grpc}`,
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        `-s3.config=${p(ctx, "seaweedfs-s3.json")}`,
      ],
    }),
    // Ready once the S3 gateway accepts signed requests; the bucket is made here too.
    ready: async (ctx) => {
      const s3 = new S3(readS3Config(ctx.dir));
      try {
        await s3.createBucket();
        return true;
      } catch {
        return false;
      }
    },
    address: (ctx) => `http://${loop}:${ctx.ports.s3} (bucket ${checkpointBucket})`,
    // Its graceful stop waits forever on the S3 gateway's own filer subscription. Blobs are
    // append-only volume files and the filer store is journaled, so a kill loses nothing.
    stopGraceMs: 3000,
  },
  {
    name: "node-agent",
    after: ["kube-apiserver"],
    command: (ctx) => ({
      bin: process.execPath,
      args: [
        "--import",
        import.meta.resolve("tsx"),
        path.join(root, "test/cluster/node-agent.ts"),
        ctx.dir,
      ],
    }),
    ready: (ctx) => probe(`http://${loop}:${ctx.ports.agent}/readyz`),
    address: (ctx) =>
      `kubelet https://${loop}:${ctx.ports.kubelet}, control http://${loop}:${ctx.ports.agent}`,
  },
];

/**
 * Ports from ports.json where still free (or held by our own running components), new ones
 * outside the kernel's ephemeral range (test/cluster/ports.ts says why). A kept port inside
 * that range, from a state folder older than this rule, is replaced unless its server runs.
 */
export async function ensurePorts(dir: string, keepAll: boolean): Promise<Ports> {
  const file = path.join(dir, "ports.json");
  const old: Partial<Ports> = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {};
  const ports = {} as Ports;
  const taken = new Set<number>();
  for (const name of portNames) {
    const o = old[name];
    const keep =
      o !== undefined &&
      !taken.has(o) &&
      (keepAll || (!inEphemeralRange(o) && (await portFree(o, loop))));
    if (keep) ports[name] = o;
    else ports[name] = await freePort(taken, loop);
    taken.add(ports[name]);
  }
  writeFileSync(file, JSON.stringify(ports, null, 2) + "\n");
  return ports;
}

function readS3Config(dir: string): S3KeyConfig {
  return JSON.parse(readFileSync(path.join(dir, "s3.json"), "utf8")) as S3KeyConfig;
}

/** Credentials for the S3 gateway: made once per state folder. */
function ensureS3Credentials(ctx: Ctx): void {
  const file = p(ctx, "s3.json");
  const old = existsSync(file)
    ? (JSON.parse(readFileSync(file, "utf8")) as S3KeyConfig)
    : undefined;
  const config: S3KeyConfig = {
    endpoint: `http://${loop}:${ctx.ports.s3}`,
    region: "us-east-1",
    bucket: checkpointBucket,
    accessKeyId: old?.accessKeyId ?? `herd${randomBytes(8).toString("hex")}`,
    secretAccessKey: old?.secretAccessKey ?? randomBytes(24).toString("base64url"),
  };
  writeFileSync(file, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
  const identities = {
    identities: [
      {
        name: "herd",
        credentials: [{ accessKey: config.accessKeyId, secretKey: config.secretAccessKey }],
        actions: ["Admin", "Read", "Write", "List", "Tagging"],
      },
    ],
  };
  writeFileSync(p(ctx, "seaweedfs-s3.json"), JSON.stringify(identities, null, 2) + "\n", {
    mode: 0o600,
  });
}

/** Marks a plane that a test run (not a person) started, so scripts/test.sh stops it after. */
export const startedByTestsMarker = (dir: string) => path.join(dir, "run", "started-by-tests");

const pidFile = (dir: string, name: string) => path.join(dir, "run", `${name}.pid`);
export const logFile = (dir: string, name: string) => path.join(dir, "logs", `${name}.log`);

function alive(pid: number): boolean {
  try {
    // A zombie still answers kill(0); its /proc state says Z.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

function readPid(dir: string, name: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(dir, name), "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export type ComponentState = "ready" | "starting" | "died" | "stopped";
export interface ComponentStatus {
  name: string;
  state: ComponentState;
  pid?: number;
  address: string;
  log: string;
}

async function context(dir: string, keepPorts: boolean): Promise<Ctx> {
  mkdirSync(dir, { recursive: true });
  for (const sub of ["run", "logs", "kube", "seaweedfs"])
    mkdirSync(path.join(dir, sub), { recursive: true });
  const ports = await ensurePorts(dir, keepPorts);
  const pki = ensurePki(path.join(dir, "pki"));
  return { dir, ports, pki };
}

/** Each component's state; `died` means a pid file whose process is gone. */
export async function status(dir = defaultStateDir()): Promise<ComponentStatus[]> {
  if (!existsSync(path.join(dir, "ports.json"))) {
    return components.map((c) => ({
      name: c.name,
      state: "stopped",
      address: "",
      log: logFile(dir, c.name),
    }));
  }
  const ctx = await context(dir, true);
  return Promise.all(
    components.map(async (c): Promise<ComponentStatus> => {
      const pid = readPid(dir, c.name);
      const base = { name: c.name, address: c.address(ctx), log: logFile(dir, c.name) };
      if (pid === undefined) return { ...base, state: "stopped" };
      if (!alive(pid)) return { ...base, pid, state: "died" };
      return { ...base, pid, state: (await c.ready(ctx)) ? "ready" : "starting" };
    }),
  );
}

export function endpoints(dir = defaultStateDir()): Endpoints {
  if (!existsSync(path.join(dir, "ports.json")) || !existsSync(path.join(dir, "s3.json"))) {
    throw new Error(`no control plane in ${dir}: run \`herd dev up\` first`);
  }
  const ports = JSON.parse(readFileSync(path.join(dir, "ports.json"), "utf8")) as Ports;
  return {
    stateDir: dir,
    kubeconfig: path.join(dir, "kubeconfig"),
    apiserver: `https://${loop}:${ports.apiserver}`,
    temporalAddress: `${loop}:${ports.temporal}`,
    temporalUi: `http://${loop}:${ports.temporalUi}`,
    s3: readS3Config(dir),
    agent: `http://${loop}:${ports.agent}`,
  };
}

function launch(ctx: Ctx, c: Component): number {
  const { bin, args, env } = c.command(ctx);
  const log = openSync(logFile(ctx.dir, c.name), "a");
  const PATH = [...toolPath, process.env.PATH ?? ""].join(":");
  const child = spawn(bin, args, {
    cwd: ctx.dir,
    detached: true, // its own process group, so `down` stops it and everything it started
    stdio: ["ignore", log, log],
    env: { ...process.env, PATH, ...env },
  });
  closeSync(log);
  if (child.pid === undefined) throw new Error(`could not start ${c.name} (${bin})`);
  child.unref();
  writeFileSync(pidFile(ctx.dir, c.name), `${child.pid}\n`);
  return child.pid;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Starts every component that is not running, each once those it depends on are ready, and
 * waits until all are ready. Components already running are left alone.
 */
export async function up(
  dir = defaultStateDir(),
  opts: { timeoutMs?: number; log?: (line: string) => void } = {},
): Promise<Endpoints> {
  const say = opts.log ?? (() => {});
  const running = components.filter((c) => {
    const pid = readPid(dir, c.name);
    return pid !== undefined && alive(pid);
  });
  const ctx = await context(dir, running.length > 0);
  ensureS3Credentials(ctx);
  writeFileSync(p(ctx, "kubeconfig"), kubeconfigYaml(ctx, "admin"), { mode: 0o600 });
  for (const user of ["kube-scheduler", "kube-controller-manager"] as const) {
    const id = user === "kube-scheduler" ? "scheduler" : "controller-manager";
    writeFileSync(p(ctx, "kube", `${user}.kubeconfig`), kubeconfigYaml(ctx, id), { mode: 0o600 });
  }
  if (!existsSync(p(ctx, "agent.yaml")))
    writeAgentConfig(p(ctx, "agent.yaml"), defaultAgentConfig());

  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const ready = new Set<string>();
  const started = new Set(running.map((c) => c.name));
  const t0 = Date.now();
  while (ready.size < components.length) {
    for (const c of components) {
      if (started.has(c.name) || !c.after.every((a) => ready.has(a))) continue;
      const pid = launch(ctx, c);
      started.add(c.name);
      say(`started ${c.name} (pid ${pid}), log ${logFile(dir, c.name)}`);
    }
    await Promise.all(
      components
        .filter((c) => started.has(c.name) && !ready.has(c.name))
        .map(async (c) => {
          const pid = readPid(dir, c.name);
          if (pid === undefined || !alive(pid)) {
            throw new Error(
              `${c.name} exited while starting; last lines of ${logFile(dir, c.name)}:\n` +
                tail(logFile(dir, c.name)),
            );
          }
          if (await c.ready(ctx)) {
            ready.add(c.name);
            say(`${c.name} ready after ${((Date.now() - t0) / 1000).toFixed(1)}s`);
          }
        }),
    );
    if (ready.size === components.length) break;
    if (Date.now() > deadline) {
      const waiting = components.filter((c) => !ready.has(c.name)).map((c) => c.name);
      throw new Error(
        `not ready in time: ${waiting.join(", ")} (logs in ${path.join(dir, "logs")})`,
      );
    }
    await sleep(250);
  }
  return endpoints(dir);
}

/**
 * Stops the components, those that may stop together at once: SIGTERM to each process
 * group, SIGKILL after its grace.
 */
export async function down(dir = defaultStateDir(), say: (l: string) => void = () => {}) {
  const stop = async (c: Component) => {
    const pid = readPid(dir, c.name);
    if (pid === undefined) return;
    const t0 = Date.now();
    await stopGroup(pid, c.stopGraceMs ?? 10_000);
    rmSync(pidFile(dir, c.name), { force: true });
    say(`stopped ${c.name} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  };
  // The agent first (it stops its pods), etcd last (the apiserver hangs without it).
  const first = components.filter((c) => c.name === "node-agent");
  const last = components.filter((c) => c.name === "etcd");
  await Promise.all(first.map(stop));
  await Promise.all(components.filter((c) => !first.includes(c) && !last.includes(c)).map(stop));
  await Promise.all(last.map(stop));
  rmSync(startedByTestsMarker(dir), { force: true });
  // Pod processes whose agent did not get to stop them (it was killed): their pid files.
  const pods = path.join(dir, "agent", "pids");
  if (existsSync(pods)) {
    for (const f of readdirSync(pods)) {
      const pid = Number(readFileSync(path.join(pods, f), "utf8"));
      if (pid > 0) await stopGroup(pid, 2_000);
      rmSync(path.join(pods, f), { force: true });
    }
  }
  // Docker containers of docker-runtime nodes whose agent did not get to remove them.
  const left = await removeAgentContainers(dir);
  if (left > 0) say(`removed ${left} docker container(s) of pods`);
  // The Docker engine that provisioning started with its pid file here (60-docker.sh).
  const dockerd = readPid(dir, "dockerd");
  if (dockerd !== undefined) {
    const t0 = Date.now();
    await stopGroup(dockerd, 20_000); // dockerd stops its containerd and containers itself
    rmSync(pidFile(dir, "dockerd"), { force: true });
    say(`stopped dockerd (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  }
}

export async function stopGroup(pid: number, graceMs: number): Promise<void> {
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-pid, s);
    } catch {
      /* already gone */
    }
  };
  if (!alive(pid)) {
    signal("SIGKILL"); // the leader is gone; anything left in its group is not
    return;
  }
  signal("SIGTERM");
  const until = Date.now() + graceMs;
  while (alive(pid) && Date.now() < until) await sleep(100);
  signal("SIGKILL");
  while (alive(pid)) await sleep(50);
}

/** Shell exports for `eval "$(herd dev env)"`. */
export function envExports(dir = defaultStateDir()): string {
  const e = endpoints(dir);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [
    `export HERD_STATE=${q(dir)}`,
    `export KUBECONFIG=${q(e.kubeconfig)}`,
    `export TEMPORAL_ADDRESS=${q(e.temporalAddress)}`,
    `export TEMPORAL_NAMESPACE=default`,
    `export HERD_S3_ENDPOINT=${q(e.s3.endpoint)}`,
    `export HERD_S3_BUCKET=${q(e.s3.bucket)}`,
    `export AWS_ENDPOINT_URL_S3=${q(e.s3.endpoint)}`,
    `export AWS_ACCESS_KEY_ID=${q(e.s3.accessKeyId)}`,
    `export AWS_SECRET_ACCESS_KEY=${q(e.s3.secretAccessKey)}`,
    `export AWS_REGION=${q(e.s3.region)}`,
    `export PATH=${q(toolPath.join(":"))}:"$PATH"`,
    `# Temporal UI: ${e.temporalUi}`,
  ].join("\n");
}
