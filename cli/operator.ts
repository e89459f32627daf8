// `herd operator`: watch TrainingJobs, EvalJobs and EvalSweeps and drive their workflows.
import { parseArgs } from "node:util";
import { electionFromEnv, optionsFromEnv, runOperator } from "../operator/main.ts";

export async function run(argv: string[]): Promise<number> {
  const defaults = optionsFromEnv();
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: "string" },
      namespace: { type: "string" },
      "temporal-address": { type: "string", default: defaults.temporalAddress },
      "temporal-namespace": { type: "string", default: defaults.temporalNamespace },
      port: { type: "string", default: String(defaults.httpPort) },
      concurrency: { type: "string", default: String(defaults.concurrency) },
      "leader-elect": { type: "boolean" },
    },
  });
  const port = Number(values.port);
  const concurrency = Number(values.concurrency);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port must be a port number, got ${values.port}`);
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new Error(`--concurrency must be a positive integer, got ${values.concurrency}`);
  return runOperator({
    kubeconfig: values.kubeconfig ?? defaults.kubeconfig,
    namespace: values.namespace ?? defaults.namespace,
    temporalAddress: values["temporal-address"],
    temporalNamespace: values["temporal-namespace"],
    httpPort: port,
    concurrency,
    leaderElection: values["leader-elect"]
      ? electionFromEnv({ ...process.env, HERD_LEADER_ELECT: "true" })
      : defaults.leaderElection,
  });
}
