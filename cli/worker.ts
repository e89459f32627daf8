// `herd worker`: run the control worker (herd's workflows and their activities).
import { parseArgs } from "node:util";
import { runWorker } from "../workers/main.ts";

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: "string" },
      "temporal-address": {
        type: "string",
        default: process.env.TEMPORAL_ADDRESS ?? "127.0.0.1:7233",
      },
      "temporal-namespace": {
        type: "string",
        default: process.env.TEMPORAL_NAMESPACE ?? "default",
      },
      // /metrics, /healthz, /readyz; none unless given (the chart sets HERD_WORKER_PORT).
      port: { type: "string", default: process.env.HERD_WORKER_PORT },
    },
  });
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535))
    throw new Error(`--port must be a port number, got ${values.port}`);
  return runWorker({
    kubeconfig: values.kubeconfig ?? process.env.KUBECONFIG,
    temporalAddress: values["temporal-address"],
    temporalNamespace: values["temporal-namespace"],
    port,
  });
}
