// The operator process: `herd operator` (cli/operator.ts) or `node --import tsx operator/main.ts`.
// Reads the kubeconfig as kubectl does (KUBECONFIG, ~/.kube/config, or in-cluster), connects
// to Temporal, and runs until SIGTERM/SIGINT, then stops gracefully.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { LeaderElector, type LeaderElectionOptions } from "./leader.ts";
import { Operator } from "./operator.ts";
import { TemporalWorkflows } from "./temporal.ts";

/** The namespace a pod runs in, from its service account mount; undefined outside a pod. */
function podNamespace(): string | undefined {
  try {
    return readFileSync("/var/run/secrets/kubernetes.io/serviceaccount/namespace", "utf8").trim();
  } catch {
    return undefined;
  }
}

/** A duration in seconds from the environment, as milliseconds; `fallback` when unset. */
function secondsFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback * 1000;
  const s = Number(raw);
  if (!Number.isFinite(s) || s <= 0)
    throw new Error(`${name} must be a positive number of seconds, got ${raw}`);
  return s * 1000;
}

type Election = Omit<LeaderElectionOptions, "logger">;

/** Leader election settings, when HERD_LEADER_ELECT is true (the Helm chart sets it). */
export function electionFromEnv(env = process.env): Election | undefined {
  if (!/^(1|true|yes)$/i.test(env.HERD_LEADER_ELECT ?? "")) return undefined;
  return {
    namespace: env.HERD_LEADER_ELECTION_NAMESPACE || podNamespace() || "default",
    name: env.HERD_LEADER_ELECTION_NAME || "herd-operator",
    identity: `${os.hostname()}_${randomBytes(4).toString("hex")}`,
    leaseDurationMs: secondsFromEnv(env, "HERD_LEADER_ELECTION_LEASE_SECONDS", 15),
    renewDeadlineMs: secondsFromEnv(env, "HERD_LEADER_ELECTION_RENEW_SECONDS", 10),
    retryPeriodMs: secondsFromEnv(env, "HERD_LEADER_ELECTION_RETRY_SECONDS", 2),
  };
}

export interface OperatorProcessOptions {
  kubeconfig?: string;
  /** Watch one namespace only; all namespaces when undefined. */
  namespace?: string;
  temporalAddress: string;
  temporalNamespace: string;
  httpPort: number;
  concurrency: number;
  /** Only the replica holding this Lease reconciles; every replica reconciles when unset. */
  leaderElection?: Election;
}

export function optionsFromEnv(env = process.env): OperatorProcessOptions {
  return {
    kubeconfig: env.KUBECONFIG,
    namespace: env.HERD_OPERATOR_NAMESPACE || undefined,
    temporalAddress: env.TEMPORAL_ADDRESS ?? "127.0.0.1:7233",
    temporalNamespace: env.TEMPORAL_NAMESPACE ?? "default",
    httpPort: Number(env.HERD_OPERATOR_PORT ?? 8080),
    concurrency: Number(env.HERD_OPERATOR_CONCURRENCY ?? 64),
    leaderElection: electionFromEnv(env),
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
    standby: o.leaderElection !== undefined,
  });
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  await operator.start();
  const elector = o.leaderElection && new LeaderElector(kc, { ...o.leaderElection, logger });
  // Leading: acquire the Lease, then reconcile until a signal or until the Lease is lost.
  const lost = elector
    ? elector.acquire().then(async (acquired) => {
        if (!acquired) return new Promise<string>(() => {}); // stopped while standing by
        operator.startReconciling();
        return elector.keepLeading();
      })
    : new Promise<string>(() => {});
  const end = await Promise.race([
    signal.then((s) => ({ signal: s })),
    lost.then((why) => ({ lost: why })),
  ]);
  if ("lost" in end) {
    // Another replica may already lead: stop at once and let the Deployment restart this
    // one as a standby, rather than reconcile beside the new leader.
    logger.error({ reason: end.lost }, "lost the leader lease; exiting");
    elector?.stop();
    await operator.stop();
    await workflows.close();
    return 1;
  }
  logger.info(end, "shutting down");
  elector?.stop();
  await operator.stop();
  // Only after the reconciles in flight have finished: the next leader starts at once.
  await elector?.release();
  await workflows.close();
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1])
  process.exitCode = await runOperator(optionsFromEnv());
