// TEMPORARY STAND-IN, to be replaced by test/cluster's harness when the local control plane
// lands in main: starts etcd, kube-apiserver (from the control-plane helper's build cache)
// and a Temporal dev server on free loopback ports with a throwaway state folder, for running
// test/api and bench/operator.ts by hand.
//
//   node --import tsx test/api/standin.ts up     # prints `export KUBECONFIG=... TEMPORAL_ADDRESS=...`
//   node --import tsx test/api/standin.ts down
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const cache = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "herd");
const state = process.env.HERD_API_STANDIN ?? path.join(os.tmpdir(), "herd-api-standin");

function findBinary(name: string): string {
  const candidates = [
    path.join(cache, "bin", name),
    path.join(cache, "k8s", "v1.37.2", "bin", name),
    path.join(cache, "venv", "bin", name),
  ];
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`${name} not found in ${candidates.join(", ")}`);
  return found;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function launch(name: string, bin: string, args: string[]): number {
  const log = openSync(path.join(state, `${name}.log`), "a");
  const child = spawn(bin, args, { cwd: state, detached: true, stdio: ["ignore", log, log] });
  child.unref();
  writeFileSync(path.join(state, `${name}.pid`), `${child.pid}\n`);
  return child.pid!;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${what} not ready in ${timeoutMs / 1000}s (logs in ${state})`);
}

const tcpOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => {
      s.end();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });

async function up(): Promise<void> {
  rmSync(state, { recursive: true, force: true });
  mkdirSync(state, { recursive: true });
  const [etcdPort, peerPort, apiPort, temporalPort] = await Promise.all(
    [0, 1, 2, 3].map(() => freePort()),
  );
  launch("etcd", "etcd", [
    "--data-dir",
    path.join(state, "etcd"),
    "--listen-client-urls",
    `http://127.0.0.1:${etcdPort}`,
    "--advertise-client-urls",
    `http://127.0.0.1:${etcdPort}`,
    "--listen-peer-urls",
    `http://127.0.0.1:${peerPort}`,
    "--initial-advertise-peer-urls",
    `http://127.0.0.1:${peerPort}`,
    "--initial-cluster",
    `default=http://127.0.0.1:${peerPort}`,
    "--name",
    "default",
  ]);
  execFileSync("openssl", ["genrsa", "-out", path.join(state, "sa.key"), "2048"], {
    stdio: "ignore",
  });
  const token = Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  writeFileSync(path.join(state, "tokens.csv"), `${token},admin,admin,system:masters\n`);
  await waitFor("etcd", () => tcpOpen(etcdPort!));
  launch("kube-apiserver", findBinary("kube-apiserver"), [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    `--secure-port=${apiPort}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--cert-dir=${path.join(state, "certs")}`,
    `--token-auth-file=${path.join(state, "tokens.csv")}`,
    "--authorization-mode=AlwaysAllow",
    "--service-account-issuer=https://kubernetes.default.svc",
    `--service-account-key-file=${path.join(state, "sa.key")}`,
    `--service-account-signing-key-file=${path.join(state, "sa.key")}`,
    "--service-cluster-ip-range=10.0.0.0/24",
    "--endpoint-reconciler-type=none",
  ]);
  launch("temporal", findBinary("temporal"), [
    "server",
    "start-dev",
    "--ip",
    "127.0.0.1",
    "--port",
    String(temporalPort),
    "--headless",
    "--log-level",
    "warn",
  ]);
  const kubeconfig = path.join(state, "kubeconfig");
  writeFileSync(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      `- name: standin\n  cluster:\n    server: https://127.0.0.1:${apiPort}\n    insecure-skip-tls-verify: true`,
      `users:\n- name: admin\n  user:\n    token: ${token}`,
      "contexts:\n- name: standin\n  context:\n    cluster: standin\n    user: admin\n    namespace: default",
      "current-context: standin",
      "",
    ].join("\n"),
  );
  const kubectl = findBinary("kubectl");
  await waitFor("kube-apiserver", async () => {
    execFileSync(kubectl, ["--kubeconfig", kubeconfig, "get", "--raw", "/readyz"], {
      stdio: "ignore",
    });
    return true;
  });
  await waitFor("temporal", () => tcpOpen(temporalPort!));
  const env = `export KUBECONFIG=${kubeconfig}\nexport TEMPORAL_ADDRESS=127.0.0.1:${temporalPort}\n`;
  writeFileSync(path.join(state, "env.sh"), env);
  process.stdout.write(env);
}

function down(): void {
  for (const name of ["temporal", "kube-apiserver", "etcd"]) {
    const file = path.join(state, `${name}.pid`);
    if (!existsSync(file)) continue;
    const pid = Number(readFileSync(file, "utf8"));
    try {
      process.kill(-pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const action = process.argv[2];
  if (action === "up") await up();
  else if (action === "down") down();
  else {
    console.error("usage: standin.ts up | down");
    process.exitCode = 2;
  }
}
