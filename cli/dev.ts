// `herd dev up | down | status | env | node-ready | node-not-ready`: the local control plane
// (etcd, Kubernetes, Temporal, S3, the node agent) on loopback. See docs/dev-cluster.md.
import { parseArgs } from "node:util";
import {
  defaultStateDir,
  down,
  endpoints,
  envExports,
  status,
  up,
} from "../test/cluster/controlplane.ts";

const usage = `Usage: herd dev <command> [--state DIR]

Commands:
  up                     start every component that is not running; wait until all are ready
  down                   stop every component and every pod process
  status                 show each component; exits 1 if one is not ready
  env                    print shell exports: eval "$(herd dev env)"
  node-not-ready NODE    make a node NotReady (it stops heartbeating)
  node-ready NODE        make it Ready again

Options:
  --state DIR   state folder (default $HERD_STATE or ~/.cache/herd/dev)`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { state: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  });
  const [command, ...rest] = positionals;
  if (values.help || command === undefined) {
    console.log(usage);
    return command === undefined && !values.help ? 2 : 0;
  }
  const dir = values.state ?? defaultStateDir();
  switch (command) {
    case "up": {
      const t0 = Date.now();
      const before = await status(dir);
      if (before.every((c) => c.state === "ready")) {
        console.log(`herd dev: already up (state ${dir})`);
      } else {
        await up(dir, { log: (l) => console.log(l) });
        console.log(`herd dev: up in ${((Date.now() - t0) / 1000).toFixed(1)}s (state ${dir})`);
      }
      const e = endpoints(dir);
      console.log(`kubeconfig:  ${e.kubeconfig}`);
      console.log(`temporal:    ${e.temporalAddress}   UI ${e.temporalUi}`);
      console.log(`s3:          ${e.s3.endpoint}   bucket ${e.s3.bucket}`);
      console.log(`shell:       eval "$(herd dev env)"`);
      return 0;
    }
    case "down":
      await down(dir, (l) => console.log(l));
      console.log("herd dev: down");
      return 0;
    case "status": {
      const all = await status(dir);
      const width = Math.max(...all.map((c) => c.name.length));
      for (const c of all) {
        const pid = c.pid ? `pid ${c.pid}` : "";
        const note = c.state === "died" ? `  died: see ${c.log}` : "";
        console.log(
          `${c.name.padEnd(width)}  ${c.state.padEnd(8)}  ${pid.padEnd(11)} ${c.address}${note}`,
        );
      }
      return all.every((c) => c.state === "ready") ? 0 : 1;
    }
    case "env":
      console.log(envExports(dir));
      return 0;
    case "node-ready":
    case "node-not-ready": {
      const node = rest[0];
      if (!node) {
        console.error(`herd dev ${command}: name the node`);
        return 2;
      }
      const res = await fetch(`${endpoints(dir).agent}/nodes/${encodeURIComponent(node)}/ready`, {
        method: "POST",
        body: JSON.stringify({ ready: command === "node-ready" }),
      });
      const body = (await res.json()) as { error?: string };
      if (!res.ok) {
        console.error(`herd dev ${command}: ${body.error ?? res.statusText}`);
        return 1;
      }
      console.log(`${node}: ${command === "node-ready" ? "Ready" : "NotReady"}`);
      return 0;
    }
    default:
      console.error(`herd dev: unknown command '${command}'\n\n${usage}`);
      return 2;
  }
}
