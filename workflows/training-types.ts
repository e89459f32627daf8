// Names and types of the training workflow, its activities and the trainer pods that signal
// it. Plain data only: bundled into the workflow sandbox.
import type { ObjectRef, WorkflowInput, Condition } from "./types.ts";

/** Exit codes of the trainer (workers/trainer/train.ts exitCodes; docs/engine.md). */
export const trainerExit = { ok: 0, failure: 1, userError: 64, preempted: 75 } as const;

/** Label keys on an attempt's pods and Service. */
export const labels = {
  job: "herd.dev/trainingjob",
  uid: "herd.dev/trainingjob-uid",
  attempt: "herd.dev/attempt",
  rank: "herd.dev/rank",
} as const;

/** Signal from a trainer pod to its workflow: progress of one rank of one attempt. */
export const progressSignal = "progress";
export interface Progress {
  attempt: number;
  rank: number;
  step: number;
  loss?: number;
  learningRate?: number;
  tokensPerSecond?: number;
  tokensSeen?: number;
  /** Set when a checkpoint of this step became durable. */
  checkpoint?: { step: number; uri: string; time: string };
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
}

export interface AttemptRef {
  object: ObjectRef;
  attempt: number;
}

export interface CreateAttempt extends AttemptRef {
  spec: Record<string, unknown>;
  workflowId: string;
}

export interface WatchAttempt extends AttemptRef {
  /** Pods the attempt was created with (one per rank). */
  ranks: number;
  /** Report "stuck" once when pods stay unschedulable this long (then keep watching). */
  stuckAfterSeconds: number;
  stuckReported: boolean;
}

export interface CheckpointInfo {
  step: number;
  uri: string;
  time: string;
}

/** The activities of the training workflow (workers/activities/training.ts). */
export interface TrainingActivities {
  /** Creates the attempt's headless Service and one pod per rank; idempotent. */
  createAttempt(a: CreateAttempt): Promise<string[]>;
  /** Watches the attempt's pods until they end (heartbeating) and classifies the end. */
  watchAttempt(a: WatchAttempt): Promise<Outcome>;
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
}

export interface TrainingWorkflowInput extends WorkflowInput {
  carry?: TrainingCarry;
}
