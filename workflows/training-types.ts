// Names and types of the training workflow, its activities and the trainer pods that signal
// it. Plain data only: bundled into the workflow sandbox.
import type { ObjectRef, WorkflowInput, Condition, SpecChanged } from "./types.ts";
import type { GoodputState } from "./goodput.ts";

/** Exit codes of the trainer (workers/trainer/options.ts exitCodes; docs/engine.md). */
export const trainerExit = { ok: 0, failure: 1, userError: 64, preempted: 75 } as const;

/** Label keys on an attempt's pods and Service. */
export const labels = {
  job: "herd.dev/trainingjob",
  uid: "herd.dev/trainingjob-uid",
  attempt: "herd.dev/attempt",
  rank: "herd.dev/rank",
} as const;

/** A step and when rank 0 logged it (RFC 3339, the node's clock). */
export interface Timed {
  step: number;
  time: string;
}

/** How far rank 0 of an attempt is: its newest step, and its newest durable checkpoint. */
export interface RankProgress {
  step: number;
  /** When rank 0 logged that step. */
  time?: string;
  /** The oldest step in the part of the log read: an attempt's first report has its start. */
  first?: Timed;
  loss?: number;
  learningRate?: number;
  tokensPerSecond?: number;
  tokensSeen?: number;
  /** Set when a checkpoint of this step became durable. */
  checkpoint?: { step: number; uri: string; time: string };
}

/**
 * The signal trainer pods of herd releases before 2026-12-07 sent about once a second. Pods
 * now leave progress to the watch (WatchReport); the workflow still takes the signal so that
 * attempts started before an upgrade keep reporting, and their histories replay.
 */
export const progressSignal = "progress";
export interface Progress extends RankProgress {
  attempt: number;
  rank: number;
}

/** How an attempt ended (the outcome table of DESIGN.md). */
export type OutcomeKind =
  "succeeded" | "preempted" | "userError" | "oomKilled" | "failed" | "stuck";
export interface Outcome {
  kind: OutcomeKind;
  /** Why, in words: the trainer's message, the disruption reason, the exit code. */
  message: string;
  /** A CamelCase reason for conditions and events. */
  reason: string;
  /** Rank 0's last progress, when the watch read some the workflow had not been told. */
  progress?: RankProgress;
  /**
   * When the attempt's pods were told to stop (the first DisruptionTarget condition or
   * deletion the watch saw), for the latency of the checkpoint written on SIGTERM.
   */
  stopAt?: string;
}

export interface AttemptRef {
  object: ObjectRef;
  attempt: number;
}

export interface CreateAttempt extends AttemptRef {
  spec: Record<string, unknown>;
}

export interface WatchAttempt extends AttemptRef {
  /** Pods the attempt was created with (one per rank). */
  ranks: number;
  /** Report "stuck" once when pods stay unschedulable this long (then keep watching). */
  stuckAfterSeconds: number;
  stuckReported: boolean;
  /**
   * Return rank 0's progress when it is newer than `told` and this long has passed since the
   * watch began: the workflow's only source of progress, at a rate that bounds its history.
   * Unset (workflows started before 2026-12-07), the watch reports only the end.
   */
  progressEverySeconds?: number;
  told?: RankProgress;
}

/** What a watch returns: how the attempt ended, or progress while it runs. */
export type WatchReport = Outcome | { kind: "progress"; progress: RankProgress };

export interface CheckpointInfo {
  step: number;
  uri: string;
  time: string;
}

/** The activities of the training workflow (workers/activities/training.ts). */
export interface TrainingActivities {
  /** Creates the attempt's headless Service and one pod per rank; idempotent. */
  createAttempt(a: CreateAttempt): Promise<string[]>;
  /**
   * Watches the attempt's pods (heartbeating) until they end, and classifies the end; or
   * returns their progress after progressEverySeconds.
   */
  watchAttempt(a: WatchAttempt): Promise<WatchReport>;
  /** Deletes every pod and Service of the job (all attempts) and waits until they are gone. */
  deleteAttempt(object: ObjectRef): Promise<void>;
  /** The newest durable checkpoint in the job's checkpoint storage, if any. */
  latestCheckpoint(spec: Record<string, unknown>): Promise<CheckpointInfo | undefined>;
  /** Records a core/v1 Event on the TrainingJob; best effort. */
  recordEvent(e: {
    object: ObjectRef;
    type: "Normal" | "Warning";
    reason: string;
    message: string;
  }): Promise<void>;
}

/** What a workflow hands to its continuation (continue-as-new). */
export interface TrainingCarry {
  attempts: number;
  preemptions: number;
  failures: number;
  step?: number;
  totalSteps?: number;
  loss?: number;
  lastCheckpoint?: CheckpointInfo;
  startTime: string;
  conditions: Condition[];
  /** The attempt whose pods still run: the next run watches it on instead of starting one. */
  running?: { attempt: number; ranks: number; reports?: number; told?: RankProgress };
  /** A spec change signalled to the last run and not yet applied. */
  pending?: SpecChanged;
  /** The attempts so far, for goodput (absent in runs started before 2026-12-07). */
  goodput?: GoodputState;
}

export interface TrainingWorkflowInput extends WorkflowInput {
  carry?: TrainingCarry;
}
