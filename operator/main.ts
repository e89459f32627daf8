// The operator process: `herd operator` (cli/operator.ts) or `node --import tsx operator/main.ts`.
// Reads the kubeconfig as kubectl does (KUBECONFIG, ~/.kube/config, or in-cluster), connects
// to Temporal, and runs until SIGTERM/SIGINT, then stops gracefully.
import { fileURLToPath } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { Operator } from "./operator.ts";
import { TemporalWorkflows } from "./temporal.ts";

export interface OperatorProcessOptions {
  kubeconfig?: string;
  /** Watch one namespace only; all namespaces when undefined. */
  namespace?: string;
  temporalAddress: string;
  temporalNamespace: string;
  httpPort: number;
  concurrency: number;
}

export function optionsFromEnv(env = process.env): OperatorProcessOptions {
  return {
    kubeconfig: env.KUBECONFIG,
    namespace: env.HERD_OPERATOR_NAMESPACE || undefined,
    temporalAddress: env.TEMPORAL_ADDRESS ?? "127.0.0.1:7233",
    temporalNamespace: env.TEMPORAL_NAMESPACE ?? "default",
    httpPort: Number(env.HERD_OPERATOR_PORT ?? 8080),
    concurrency: Number(env.HERD_OPERATOR_CONCURRENCY ?? 16),
  };
}

/** Runs the operator until a termination signal; resolves with the exit code. */
export async function runOperator(o: OperatorProcessOptions): Promise<number> {
  const logger = pino({ name: "herd-operator" });
  const kc = new KubeConfig();
  if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
  else kc.loadFromDefault();
  const workflows = await TemporalWorkflows.connect(o.temporalAddress, o.temporalNamespace);
  const operator = new Operator({
    kubeconfig: kc,
    workflows,
    logger,
    httpPort: o.httpPort,
    concurrency: o.concurrency,
    namespace: o.namespace,
  });
  await operator.start();
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  logger.info({ signal }, "shutting down");
  await operator.stop();
  await workflows.close();
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1])
  process.exitCode = await runOperator(optionsFromEnv());
