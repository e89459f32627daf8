// A training job of many simulated days, run by the real trainingJobWorkflow on Temporal's
// time-skipping test server: its activities are stand-ins whose pods train one step per
// simulated second, checkpoint every hour and are preempted when asked. What it measures is
// the workflow's history: every run's events and bytes, however long the job. Shared by
// test/workflows/long-run.test.ts and bench/long-run.ts.
import path from "node:path";
import { Worker } from "@temporalio/worker";
import { TestWorkflowEnvironment } from "@temporalio/testing";
import proto from "@temporalio/proto";
import { workflowsPath } from "../../workers/main.ts";
import {
  controlTaskQueue,
  specChangedSignal,
  type ObjectRef,
  type WorkflowState,
} from "../../workflows/types.ts";
import type {
  CheckpointInfo,
  RankProgress,
  TrainingActivities,
  TrainingWorkflowInput,
  WatchReport,
} from "../../workflows/training-types.ts";
import type { ControlActivities } from "../../workflows/types.ts";

const cache = process.env.HERD_CACHE ?? path.join(process.env.HOME ?? "/root", ".cache/herd");
/** Written by scripts/provision.d/24-temporal-test-server.sh. */
export const testServerPath = path.join(cache, "bin/temporal-test-server");

export interface LongRunOptions {
  days: number;
  /** Simulated hours after which the running attempt is preempted (once each). */
  preemptAtHours?: number[];
  checkpointEverySeconds?: number;
  /** A simulated hour at which the operator signals spec generation 2 (a new retry budget). */
  specChangeAtHour?: number;
}

export interface RunHistory {
  runId: string;
  events: number;
  bytes: number;
}

export interface LongRunResult {
  state: WorkflowState;
  /** The status the workflow last wrote. */
  status: Record<string, unknown>;
  runs: RunHistory[];
  statusWrites: number;
  attempts: number;
  /** Wall-clock seconds the simulation took. */
  seconds: number;
}

const simulationStart = Date.UTC(2026, 0, 1);

export async function simulateLongRun(o: LongRunOptions): Promise<LongRunResult> {
  const started = performance.now();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: "existing-path", path: testServerPath } },
  });
  try {
    const steps = o.days * 86_400; // one step a simulated second
    const checkpointEvery = o.checkpointEverySeconds ?? 3600;
    const preemptions = [...(o.preemptAtHours ?? [])].sort((a, b) => a - b);
    let specChangeAt = o.specChangeAtHour;
    // The pods' clock: a watch that waits N seconds moves it N seconds on. (The test server
    // skips the workflow's own timers, such as back-off; a watch is an activity, and an
    // activity's waits are real time there.)
    let clockMs = 0;
    const retry = { preemptionBudget: 10, failureLimit: 3, backoffSeconds: 10 };
    const spec = { training: { steps, globalBatchTokens: 1 }, retry };
    const workflowId = `long-run-${Date.now()}`;
    let attempt = { number: 0, startedMs: 0, fromStep: 0 };
    let durable: CheckpointInfo | undefined;
    let status: Record<string, unknown> = {};
    let statusWrites = 0;

    /** The simulated trainer's step now, and the newest checkpoint it has written. */
    const trainerAt = (nowMs: number) => {
      const step = Math.min(
        steps,
        attempt.fromStep + Math.floor((nowMs - attempt.startedMs) / 1000),
      );
      const ckptStep =
        step === steps ? steps : Math.floor(step / checkpointEvery) * checkpointEvery;
      if (ckptStep > (durable?.step ?? 0))
        durable = {
          step: ckptStep,
          uri: `sim://ckpt/step-${ckptStep}`,
          time: new Date(simulationStart + nowMs).toISOString(),
        };
      return step;
    };

    const activities: ControlActivities & TrainingActivities = {
      async patchStatus(p) {
        statusWrites++;
        status = { ...status, ...p.status };
        return "written";
      },
      async cleanUp() {},
      async recordEvent() {},
      async latestCheckpoint() {
        return durable;
      },
      async deleteAttempt() {},
      async createAttempt(a) {
        attempt = { number: a.attempt, startedMs: clockMs, fromStep: durable?.step ?? 0 };
        return ["rank-0", "rank-1"];
      },
      async watchAttempt(w): Promise<WatchReport> {
        if (w.attempt !== attempt.number) throw new Error(`attempt ${w.attempt} is not running`);
        clockMs += (w.progressEverySeconds ?? 60) * 1000;
        const now = clockMs;
        const step = trainerAt(now);
        const hours = now / 3_600_000;
        if (specChangeAt !== undefined && hours >= specChangeAt) {
          specChangeAt = undefined;
          await env.client.workflow.getHandle(workflowId).signal(specChangedSignal, {
            generation: 2,
            spec: { ...spec, retry: { ...retry, preemptionBudget: 20 } },
          });
        }
        if (preemptions.length > 0 && hours >= preemptions[0]!) {
          preemptions.shift();
          return { kind: "preempted", reason: "Preempted", message: "preempted by the simulation" };
        }
        if (step >= steps) return { kind: "succeeded", reason: "Completed", message: "exit 0" };
        const progress: RankProgress = {
          step,
          loss: 10 / Math.log(step + 3),
          ...(durable && { checkpoint: durable }),
        };
        return { kind: "progress", progress };
      },
    };

    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: controlTaskQueue,
      workflowsPath,
      activities,
      bundlerOptions: { ignoreModules: [] },
    });
    const object: ObjectRef = { kind: "TrainingJob", namespace: "sim", name: "week", uid: "sim-1" };
    const input: TrainingWorkflowInput = { object, generation: 1, spec };
    let firstRunId = "";
    const state = await worker.runUntil(async () => {
      const handle = await env.client.workflow.start("trainingJobWorkflow", {
        taskQueue: controlTaskQueue,
        workflowId,
        args: [input],
      });
      firstRunId = handle.firstExecutionRunId;
      return (await handle.result()) as WorkflowState;
    });
    return {
      state,
      status,
      runs: await runHistories(env, workflowId, firstRunId),
      statusWrites,
      attempts: attempt.number,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await env.teardown();
  }
}

/** Every run of the workflow, first to last, with its history's size. */
async function runHistories(
  env: TestWorkflowEnvironment,
  workflowId: string,
  firstRunId: string,
): Promise<RunHistory[]> {
  const runs: RunHistory[] = [];
  let runId: string | undefined = firstRunId;
  while (runId) {
    const history: proto.temporal.api.history.v1.IHistory = await env.client.workflow
      .getHandle(workflowId, runId)
      .fetchHistory();
    const events = history.events ?? [];
    runs.push({
      runId,
      events: events.length,
      bytes: proto.temporal.api.history.v1.History.encode(history).finish().length,
    });
    const last: proto.temporal.api.history.v1.IHistoryEvent | undefined = events.at(-1);
    runId = last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return runs;
}
