// The control worker: runs herd's workflows and their activities on the herd-control task
// queue. Started by `herd worker`; stops gracefully on SIGTERM/SIGINT (in-flight activities
// finish, workflows resume on another worker).
import { fileURLToPath } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import { NativeConnection, Runtime, Worker, makeTelemetryFilterString } from "@temporalio/worker";
import { pino, type Logger } from "pino";
import { createActivities } from "./activities/index.ts";
import { trainerOptionsFromEnv, type ObjectStorage } from "./activities/training.ts";
import { temporalConnectionOptions } from "./temporal-tls.ts";
import { instrument, serveWorkerHttp, workerMetrics, type WorkerMetrics } from "./metrics.ts";
import { controlTaskQueue, type ControlActivities } from "../workflows/types.ts";

export const workflowsPath = fileURLToPath(new URL("../workflows/index.ts", import.meta.url));

export interface WorkerOptions {
  kubeconfig: KubeConfig;
  temporalAddress: string;
  temporalNamespace?: string;
  taskQueue?: string;
  logger: Logger;
  /** Object storage for s3:// URIs; default: from the environment (objectStorageFromEnv). */
  s3?: ObjectStorage;
  /** Replaces the real activities (tests of the workflows alone). */
  activities?: ControlActivities;
  /** Counts and times every activity call (workers/metrics.ts). */
  metrics?: WorkerMetrics;
}

let runtimeInstalled = false;

const instrumented = <A extends object>(a: A, m: WorkerMetrics | undefined) =>
  m ? instrument(a, m) : a;

/** Creates the worker (bundling the workflows) and starts it; `run` settles when it stops. */
export async function startControlWorker(
  opts: WorkerOptions,
): Promise<{ worker: Worker; run: Promise<void>; connection: NativeConnection }> {
  if (!runtimeInstalled) {
    Runtime.install({
      logger: {
        log: (level, message, meta) =>
          opts.logger[level === "TRACE" ? "trace" : (level.toLowerCase() as "info")](
            { ...meta },
            message,
          ),
        trace: (m, meta) => opts.logger.trace(meta ?? {}, m),
        debug: (m, meta) => opts.logger.debug(meta ?? {}, m),
        info: (m, meta) => opts.logger.info(meta ?? {}, m),
        warn: (m, meta) => opts.logger.warn(meta ?? {}, m),
        error: (m, meta) => opts.logger.error(meta ?? {}, m),
      },
      telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: "WARN" }) } },
    });
    runtimeInstalled = true;
  }
  const connection = await NativeConnection.connect(
    temporalConnectionOptions(opts.temporalAddress),
  );
  const worker = await Worker.create({
    connection,
    namespace: opts.temporalNamespace ?? "default",
    taskQueue: opts.taskQueue ?? controlTaskQueue,
    workflowsPath,
    activities: instrumented(
      opts.activities ??
        createActivities(opts.kubeconfig, {
          temporalAddress: opts.temporalAddress,
          temporalNamespace: opts.temporalNamespace ?? "default",
          ...trainerOptionsFromEnv(),
          ...(opts.s3 && { s3: opts.s3 }),
        }),
      opts.metrics,
    ),
    bundlerOptions: { ignoreModules: [] },
  });
  const run = worker.run().finally(() => connection.close());
  return { worker, run, connection };
}

/** Runs the control worker until SIGTERM/SIGINT; resolves with the exit code. */
export async function runWorker(o: {
  kubeconfig?: string;
  temporalAddress: string;
  temporalNamespace: string;
  /** Port for /metrics, /healthz, /readyz (HERD_WORKER_PORT); undefined serves none. */
  port?: number;
}): Promise<number> {
  const logger = pino({ name: "herd-worker" });
  const kc = new KubeConfig();
  if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
  else kc.loadFromDefault();
  const metrics = workerMetrics();
  const { worker, run } = await startControlWorker({
    kubeconfig: kc,
    temporalAddress: o.temporalAddress,
    temporalNamespace: o.temporalNamespace,
    logger,
    metrics,
  });
  const server =
    o.port === undefined
      ? undefined
      : await serveWorkerHttp(o.port, metrics, () => worker.getState() === "RUNNING");
  logger.info({ taskQueue: controlTaskQueue, port: server?.port }, "worker started");
  const stop = () => worker.shutdown();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  await run;
  server?.close();
  logger.info("worker stopped");
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1])
  process.exitCode = await runWorker({
    kubeconfig: process.env.KUBECONFIG,
    temporalAddress: process.env.TEMPORAL_ADDRESS ?? "127.0.0.1:7233",
    temporalNamespace: process.env.TEMPORAL_NAMESPACE ?? "default",
  });
