// Ports for servers that a test or the local control plane starts a moment later.
//
// Why not listen(0): the kernel hands out such a port from its ephemeral range, the same range
// it takes the source ports of outbound connections from, and the port is free again the moment
// we close it. Until the server binds it, any connection (kube-apiserver's to etcd, say) or
// any other listen(0) may take it: Temporal's dev server picks its internal services' ports
// that way, and once took the HTTP port chosen for it (`bind: address already in use`, and a
// control plane that failed to start in CI). Ports below the ephemeral range are handed out by
// nobody, so a port chosen there stays free until its server binds it.
import { readFileSync } from "node:fs";
import net from "node:net";

let range: { low: number; high: number } | undefined;

/** The kernel's ephemeral port range (Linux's default where /proc does not say), read once. */
export function ephemeralRange(): { low: number; high: number } {
  return (range ??= readEphemeralRange());
}

function readEphemeralRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low! > 0 && high! >= low!) return { low: low!, high: high! };
  } catch {
    // Not Linux: fall through to the default.
  }
  return { low: 32768, high: 60999 };
}

/** Whether nothing listens on `port` of `host` now. */
export function portFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** The ports outside the ephemeral range that servers may use: above 1023, below 65536. */
function candidateRanges(): [number, number][] {
  const { low, high } = ephemeralRange();
  return [
    [10_000, low],
    [high + 1, 65_536],
  ].filter(([a, b]) => b! > a!) as [number, number][];
}

/**
 * A port that is free on `host` now, outside the ephemeral range and not in `taken` (ports
 * already promised to other servers of the same start). Random, so parallel test processes
 * rarely try the same one.
 */
export async function freePort(taken: Set<number> = new Set(), host = "127.0.0.1") {
  const ranges = candidateRanges();
  const size = ranges.reduce((n, [a, b]) => n + b - a, 0);
  for (let attempt = 0; attempt < 1000; attempt++) {
    let i = Math.floor(Math.random() * size);
    const [a] = ranges.find(([a, b]) => (i < b - a ? true : ((i -= b - a), false)))!;
    const port = a + i;
    if (!taken.has(port) && (await portFree(port, host))) return port;
  }
  throw new Error(`no free port on ${host} outside the ephemeral range after 1000 tries`);
}

/** Whether `port` is one the kernel may hand out on its own (so not safe to keep for later). */
export function inEphemeralRange(port: number): boolean {
  const { low, high } = ephemeralRange();
  return port >= low && port <= high;
}
