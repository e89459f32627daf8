// EvalSweep (herd.dev/v1alpha1): evaluate a TrainingJob's checkpoints on a schedule (a
// Temporal Schedule underneath) and keep a bounded history of results per checkpoint step:
// metric against training tokens, as in Figure 2 of the LLaMA paper.
import { z } from "zod";
import { apiVersion, objectMeta, objectName, workflowStatusFields } from "./common.ts";
import { evalJobTemplateSpec } from "./evaljob.ts";
import { immutable, validated } from "./rules.ts";
import { cron, duration, durationSeconds } from "./schedule.ts";

export const sweepSchedule = z
  .object({
    cron: cron.optional(),
    interval: duration
      .optional()
      .describe("Run every this long, e.g. 30m or 1h (instead of cron); at least 5s."),
  })
  .describe("When to evaluate: a cron expression or a fixed interval. May change at any time.");

export const sweepScheduleChecked = validated(sweepSchedule, [
  {
    rule: "has(self.cron) != has(self.interval)",
    message: "give exactly one of schedule.cron and schedule.interval",
    fieldPath: ".cron",
    check: (s) => (s.cron !== undefined) !== (s.interval !== undefined),
  },
  {
    rule: "!has(self.interval) || (self.interval != '' && duration(self.interval) >= duration('5s'))",
    message: "schedule.interval must be at least 5s",
    fieldPath: ".interval",
    check: (s) => s.interval === undefined || durationSeconds(s.interval) >= 5,
  },
]);

export const evalJobTemplate = z
  .object({
    metadata: z
      .object({
        labels: z
          .record(z.string().max(317), z.string().max(63))
          .optional()
          .describe("Labels for the EvalJobs the sweep creates."),
        annotations: z
          .record(z.string().max(317), z.string().max(4096))
          .optional()
          .describe("Annotations for the EvalJobs the sweep creates."),
      })
      .optional()
      .describe("Labels and annotations of the created EvalJobs."),
    spec: evalJobTemplateSpec,
  })
  .describe("The EvalJob to run for each checkpoint; the sweep fills in spec.checkpoint.");

const evalSweepSpecFields = z
  .object({
    trainingJob: immutable(
      z
        .object({ name: objectName.describe("The TrainingJob, in the same namespace.") })
        .describe("The TrainingJob whose checkpoints are evaluated. Immutable."),
      "spec.trainingJob",
    ),
    schedule: sweepScheduleChecked,
    checkpoints: z
      .enum(["latest", "everyNew"])
      .default("latest")
      .describe(
        "latest: each run evaluates the newest durable checkpoint if it was not evaluated yet; everyNew: each run evaluates every durable checkpoint not evaluated yet, oldest first.",
      ),
    template: evalJobTemplate,
    suspend: z
      .boolean()
      .default(false)
      .describe("Pause the schedule; runs already started finish. Clear to resume."),
    overlapPolicy: z
      .enum(["Skip", "BufferOne", "BufferAll", "CancelOther", "TerminateOther", "AllowAll"])
      .default("Skip")
      .describe(
        "What a run does when the previous one is still going (Temporal's schedule overlap policy).",
      ),
    catchupWindow: duration
      .default("10m")
      .describe("Runs missed while the scheduler was down are made up only within this window."),
    retries: z
      .int()
      .min(0)
      .max(10)
      .default(2)
      .describe(
        "Times a checkpoint's EvalJob that failed is deleted and created again, at the sweep's next runs, before the checkpoint is given up (delete its EvalJob to try again).",
      ),
    historyLimit: z
      .int()
      .min(1)
      .max(1000)
      .default(100)
      .describe("Checkpoint steps whose results status.history keeps; the oldest go first."),
  })
  .describe("Which TrainingJob to evaluate, when, and with which EvalJob template.");

export const evalSweepSpec = validated(evalSweepSpecFields, [
  {
    rule: "self.catchupWindow != '' && duration(self.catchupWindow) >= duration('10s')",
    message: "catchupWindow must be at least 10s",
    fieldPath: ".catchupWindow",
    check: (s) => durationSeconds(s.catchupWindow) >= 10,
  },
]);

export const sweepHistoryEntry = z
  .object({
    step: z.int().min(0).describe("Checkpoint step evaluated."),
    tokensSeen: z.int().min(0).optional().describe("Training tokens at that step."),
    evalJob: z.string().max(253).describe("The EvalJob that evaluated it."),
    time: z.string().max(64).describe("When the evaluation finished (RFC 3339)."),
    metrics: z
      .array(
        z
          .object({
            task: z.string().max(63).describe("Task name."),
            metric: z.string().max(32).describe("Metric name."),
            value: z.number().describe("Metric value."),
            stderr: z.number().min(0).optional().describe("Standard error."),
          })
          .describe("One metric of one task."),
      )
      .max(256)
      .describe("Every task's metrics at this step."),
  })
  .describe("Results of one checkpoint step.");

export const evalSweepStatus = z
  .object({
    phase: z
      .enum(["Active", "Suspended", "Failed"])
      .optional()
      .describe("Active, Suspended or Failed."),
    ...workflowStatusFields,
    scheduleId: z.string().max(1024).optional().describe("The Temporal Schedule behind the sweep."),
    lastRunTime: z.string().max(64).optional().describe("When the last run started (RFC 3339)."),
    nextRunTime: z.string().max(64).optional().describe("When the next run is due (RFC 3339)."),
    lastEvaluatedStep: z.int().min(0).optional().describe("Newest checkpoint step evaluated."),
    history: z
      .array(sweepHistoryEntry)
      .max(1000)
      .optional()
      .describe("Results per checkpoint step, oldest first, at most spec.historyLimit entries."),
  })
  .describe("Observed state, written by the sweep's workflow only.");

export const evalSweep = z
  .object({
    apiVersion: z.literal(apiVersion).describe("herd.dev/v1alpha1"),
    kind: z.literal("EvalSweep").describe("EvalSweep"),
    metadata: objectMeta,
    spec: evalSweepSpec,
    status: evalSweepStatus.optional(),
  })
  .describe("Evaluates a TrainingJob's checkpoints on a schedule and keeps the history.");

export type EvalSweep = z.output<typeof evalSweep>;
export type EvalSweepSpec = z.output<typeof evalSweepSpec>;
export type EvalSweepStatus = z.output<typeof evalSweepStatus>;
