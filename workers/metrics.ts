// The control worker's metrics, in the operator's Prometheus text format (operator/metrics.ts):
// every activity's calls, failures and duration, and how trainer and evaluator attempts
// ended. Served with /healthz and /readyz (the worker is polling its task queue) on
// HERD_WORKER_PORT, as the operator serves its own on HERD_OPERATOR_PORT.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry } from "../operator/metrics.ts";
import type { WatchReport } from "../workflows/training-types.ts";

export function workerMetrics() {
  const registry = new Registry();
  let inFlight = 0;
  return {
    registry,
    activities: registry.register(
      new Counter(
        "herd_worker_activities_total",
        "Activity calls that ended, by activity and result.",
      ),
    ),
    duration: registry.register(
      new Histogram(
        "herd_worker_activity_duration_seconds",
        "Time one activity call took, by activity (watches last as long as their pods).",
        [0.01, 0.1, 0.5, 1, 5, 30, 120, 600, 3600, 21600, 86400],
      ),
    ),
    outcomes: registry.register(
      new Counter(
        "herd_worker_attempt_outcomes_total",
        "How trainer and evaluator attempts ended, by kind (TrainingJob, EvalJob), outcome and reason.",
      ),
    ),
    inFlight: registry.register(
      new Gauge("herd_worker_activities_in_flight", "Activity calls running now.", () => inFlight),
    ),
    started: () => inFlight++,
    ended: () => inFlight--,
  };
}

export type WorkerMetrics = ReturnType<typeof workerMetrics>;

/** The activities that watch an attempt to its end, and the kind of job each watches. */
const watches: Record<string, string> = { watchAttempt: "TrainingJob", watchEvaluator: "EvalJob" };

/** The same activities, each call counted and timed; watches also count their outcome. */
export function instrument<A extends object>(activities: A, m: WorkerMetrics): A {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    if (typeof fn !== "function") continue;
    out[name] = async (...args: unknown[]) => {
      const t0 = performance.now();
      m.started();
      try {
        const result: unknown = await (fn as (...a: unknown[]) => unknown)(...args);
        m.activities.inc({ activity: name, result: "ok" });
        const kind = watches[name];
        const o = result as WatchReport;
        // "stuck" is a report in the middle of a watch, not an end; it is counted too. Progress
        // reports are not outcomes.
        if (kind && o.kind !== "progress")
          m.outcomes.inc({ kind, outcome: o.kind, reason: o.reason });
        return result;
      } catch (err) {
        m.activities.inc({ activity: name, result: "error" });
        throw err;
      } finally {
        m.ended();
        m.duration.observe((performance.now() - t0) / 1000, { activity: name });
      }
    };
  }
  return out as A;
}

/** Serves /metrics, /healthz and /readyz; `running` says whether the worker polls its queue. */
export async function serveWorkerHttp(
  port: number,
  m: WorkerMetrics,
  running: () => boolean,
  host = "0.0.0.0",
): Promise<http.Server & { port: number }> {
  const server = http.createServer((req, res) => {
    const reply = (code: number, body: string, type = "text/plain; charset=utf-8") => {
      res.writeHead(code, { "content-type": type });
      res.end(body);
    };
    if (req.url === "/metrics")
      reply(200, m.registry.render(), "text/plain; version=0.0.4; charset=utf-8");
    else if (req.url === "/healthz" || req.url === "/readyz")
      reply(running() ? 200 : 503, running() ? "ok\n" : "worker not running\n");
    else reply(404, "not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return Object.assign(server, { port: (server.address() as AddressInfo).port });
}
