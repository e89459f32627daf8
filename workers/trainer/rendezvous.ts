// Where a rank finds rank 0's rendezvous store. On a cluster HERD_RENDEZVOUS names rank 0's
// pod through the job's headless Service (`<pod>.<service>.<ns>.svc:29500`), which cluster
// DNS resolves once the pod has an IP; the engine's store client resolves it and retries.
// The dev plane has no cluster DNS: its node agent keeps a hosts file of the pods it runs and
// names it in HERD_DEV_HOSTS (dev-plane only, see docs/dev-cluster.md), which is read here
// until rank 0's name appears in it.
import { readFileSync } from "node:fs";

export interface Endpoint {
  host: string;
  port: number;
}

/** host:port (or host, with the default port) → its parts. */
export function parseEndpoint(value: string, defaultPort: number, what: string): Endpoint {
  const m = /^([^\s:]+)(?::(\d+))?$/.exec(value);
  const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
  if (!m || port < 1 || port > 65535)
    throw new Error(`${what}: '${value}' must be host or host:port with a port in [1, 65535]`);
  return { host: m[1]!, port };
}

const clusterName = /\.svc(\.cluster\.local)?$/;

/** The address `name` has in a hosts file ("address name..." lines), if any. */
export function lookUpHostsFile(file: string, name: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined; // not written yet
  }
  for (const line of text.split("\n")) {
    const [address, ...names] = line.replace(/#.*/, "").trim().split(/\s+/);
    if (address && names.includes(name)) return address;
  }
  return undefined;
}

/**
 * The host to connect to: in the dev plane, a cluster name's address from HERD_DEV_HOSTS,
 * waited for until the deadline; anywhere else the name itself (DNS resolves it).
 */
export async function resolveHost(
  host: string,
  timeoutMs: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const file = env.HERD_DEV_HOSTS;
  if (!file || !clusterName.test(host)) return host;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const address = lookUpHostsFile(file, host);
    if (address) return address;
    if (Date.now() >= deadline)
      throw new Error(
        `rendezvous: ${host} has no address in HERD_DEV_HOSTS (${file}) after ${timeoutMs / 1000} s: ` +
          `rank 0's pod never started`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}
