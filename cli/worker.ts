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
    },
  });
  return runWorker({
    kubeconfig: values.kubeconfig ?? process.env.KUBECONFIG,
    temporalAddress: values["temporal-address"],
    temporalNamespace: values["temporal-namespace"],
  });
}
