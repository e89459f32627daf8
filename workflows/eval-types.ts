// Names and types of the evaluation workflows (EvalJob, EvalSweep and a sweep's scheduled
// runs), their activities and the evaluator pods. Plain data only: bundled into the workflow
// sandbox.
import type { ObjectRef, WorkflowInput, Condition } from "./types.ts";
import type { Outcome } from "./training-types.ts";

/** Label keys on an EvalJob's evaluator pods, and on the EvalJobs a sweep creates. */
export const evalLabels = {
  job: "herd.dev/evaljob",
  uid: "herd.dev/evaljob-uid",
  attempt: "herd.dev/attempt",
  sweep: "herd.dev/evalsweep",
} as const;

/** Annotation on a sweep's EvalJob: which creation of it this is (1 at first, +1 per retry). */
export const sweepAttemptAnnotation = "herd.dev/sweep-attempt";

/** The checkpoint an EvalJob evaluates, as resolved from spec.checkpoint. */
export interface ResolvedCheckpoint {
  /** A local path or an s3:// URI. */
  uri: string;
  format: string;
  step?: number;
  /** The tokenizer to use: the EvalJob's, else the TrainingJob's. */
  tokenizer?: Record<string, unknown>;
}

/** A checkpoint, or why none can be evaluated (bad input: the job fails at once). */
export type Resolution = { checkpoint: ResolvedCheckpoint } | { error: string };

export interface MetricValue {
  name: string;
  value: number;
  stderr?: number;
}

/** What an EvalJob's status says about its results (crds/evaljob.ts evalJobStatus). */
export interface EvalSummary {
  checkpoint: { uri: string; step?: number; tokensSeen?: number };
  results: { task: string; examples: number; metrics: MetricValue[] }[];
  headline?: { task: string; metric: string; value: number };
  /** The results file beside the checkpoint. */
  resultsUri: string;
}

export interface EvaluatorRef {
  object: ObjectRef;
  attempt: number;
}

export interface CreateEvaluator extends EvaluatorRef {
  spec: Record<string, unknown>;
  checkpoint: ResolvedCheckpoint;
}

export interface WatchEvaluator extends EvaluatorRef {
  stuckAfterSeconds: number;
  stuckReported: boolean;
}

/** The EvalJob workflow's activities (workers/activities/eval.ts). */
export interface EvalActivities {
  /** Finds the checkpoint spec.checkpoint names: a TrainingJob's step or latest, or a URI. */
  resolveCheckpoint(a: { object: ObjectRef; spec: Record<string, unknown> }): Promise<Resolution>;
  /** Creates the attempt's evaluator pod; idempotent. Returns its name. */
  createEvaluator(a: CreateEvaluator): Promise<string>;
  /** Watches the attempt's pod until it ends (heartbeating) and classifies the end. */
  watchEvaluator(a: WatchEvaluator): Promise<Outcome>;
  /** Deletes the job's evaluator pods (all attempts) and waits until they are gone. */
  deleteEvaluators(object: ObjectRef): Promise<void>;
  /** Reads the results file the evaluator wrote beside the checkpoint. */
  readResults(a: { job: string; checkpoint: ResolvedCheckpoint }): Promise<EvalSummary>;
}

/** One entry of an EvalSweep's status.history (crds/evalsweep.ts sweepHistoryEntry). */
export interface SweepHistoryEntry {
  step: number;
  tokensSeen?: number;
  evalJob: string;
  time: string;
  metrics: { task: string; metric: string; value: number; stderr?: number }[];
}

/** Signal from a scheduled run to its sweep's workflow: what the run evaluated. */
export const sweepRunSignal = "sweepRun";
export interface SweepRunReport {
  /** When the run started (RFC 3339). */
  started: string;
  entries: SweepHistoryEntry[];
  /** EvalJobs that failed, with their messages. */
  failures: string[];
}

/** The input of a scheduled run (the Schedule's action); the spec as of the last upsert. */
export interface SweepRunInput {
  sweep: ObjectRef;
  sweepWorkflowId: string;
  spec: Record<string, unknown>;
}

export interface SweepRunOutcome {
  evaluated: number[];
  failed: string[];
}

/** The EvalSweep workflows' activities (workers/activities/sweep.ts). */
export interface SweepActivities {
  /** Creates the sweep's Schedule, or updates it to the spec; returns its id and next run. */
  upsertSchedule(a: {
    object: ObjectRef;
    spec: Record<string, unknown>;
    workflowId: string;
    taskQueue: string;
  }): Promise<{ scheduleId: string; nextRunTime?: string }>;
  /** When the sweep's Schedule fires next; undefined while paused or gone. */
  nextRunTime(object: ObjectRef): Promise<string | undefined>;
  /** Deletes the sweep's Schedule; safe to repeat. */
  deleteSchedule(object: ObjectRef): Promise<void>;
  /** Checkpoint steps of the TrainingJob with no results of this sweep yet, oldest first. */
  pendingSteps(a: { sweep: ObjectRef; spec: Record<string, unknown> }): Promise<number[]>;
  /** Creates the EvalJob of one step unless it exists; returns its name. */
  ensureEvalJob(a: {
    sweep: ObjectRef;
    spec: Record<string, unknown>;
    step: number;
  }): Promise<string>;
  /** Waits for an EvalJob to end (heartbeating): its history entry, or why it failed. */
  awaitEvalJob(a: {
    namespace: string;
    name: string;
  }): Promise<{ entry: SweepHistoryEntry } | { failed: string }>;
}

/** What a sweep's workflow hands to its continuation (continue-as-new). */
export interface SweepCarry {
  history: SweepHistoryEntry[];
  lastRunTime?: string;
  scheduleId: string;
  conditions: Condition[];
}

export interface SweepWorkflowInput extends WorkflowInput {
  carry?: SweepCarry;
}

/** The Schedule of an EvalSweep: derived from its uid, so there is never a second one. */
export function scheduleIdOf(o: ObjectRef): string {
  return `herd-evalsweep-${o.uid}`;
}

/** The EvalJob a sweep creates for a checkpoint step: one name per step, so one job. */
export function sweepEvalJobName(sweep: string, step: number): string {
  const suffix = `-${step}`;
  return `${sweep.slice(0, 253 - suffix.length)}${suffix}`;
}
