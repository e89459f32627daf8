// Types and names shared by the workflows (deterministic code), their activities and the
// operator that starts and signals them. Only plain data and string constants here: this
// file is bundled into the workflow sandbox.

export type HerdKind = "TrainingJob" | "EvalJob" | "EvalSweep";

/** The Temporal task queue the control worker polls. */
export const controlTaskQueue = "herd-control";

/** Identifies the Kubernetes object a workflow belongs to; uid tells apart a recreated name. */
export interface ObjectRef {
  kind: HerdKind;
  namespace: string;
  name: string;
  uid: string;
}

/** The workflow's input: the object and the spec generation it starts from. */
export interface WorkflowInput {
  object: ObjectRef;
  generation: number;
  /** The validated spec (crds/ zod output) at that generation. */
  spec: Record<string, unknown>;
  /** Set when the operator starts the workflow again because Temporal lost or ended it. */
  recovery?: Recovery;
}

/**
 * Why the operator started an object's workflow again: the last one is missing from Temporal,
 * or ended by something other than herd (terminated, timed out, failed) while the object's
 * phase was not final. The new workflow picks up from the object's status.
 */
export interface Recovery {
  /** CamelCase, for the condition and the event: WorkflowMissing, WorkflowTerminated, … */
  reason: string;
  /** The how-manieth recovery of this object (status.recoveries + 1). */
  count: number;
  /** The object's status when the loss was noticed. */
  status: Record<string, unknown>;
}

/** Recoveries after which a workflow ends its object Failed (reason WorkflowLost). */
export const maxRecoveries = 3;

/**
 * Signal: the spec changed. Sent by the operator whenever metadata.generation is ahead of
 * status.observedGeneration; the workflow ignores generations it has already seen, so
 * repeats (a restart, a second replica, a resync) are harmless.
 */
export const specChangedSignal = "specChanged";
export interface SpecChanged {
  generation: number;
  spec: Record<string, unknown>;
}

/** Query: what the workflow currently believes (tests and `herd status`). */
export const stateQuery = "state";
export interface WorkflowState {
  phase: string;
  observedGeneration: number;
  suspended: boolean;
  /** Spec fields applied while running, e.g. "retry", "schedule". */
  applied: string[];
}

export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** A status patch: merged into the object's status subresource. */
export interface StatusPatch {
  object: ObjectRef;
  status: Record<string, unknown>;
}

/** What the status activity did: written, or skipped because the object is gone or replaced. */
export type StatusWriteResult = "written" | "gone";

/** The workflow id of an object: herd/<kind>/<namespace>/<name>/<uid>. */
export function workflowIdOf(o: ObjectRef): string {
  return `herd/${o.kind}/${o.namespace}/${o.name}/${o.uid}`;
}

/** The activities the control worker registers (workers/activities/). */
export interface ControlActivities {
  /** Merges a status patch into the object's status subresource. */
  patchStatus(patch: StatusPatch): Promise<StatusWriteResult>;
  /** Removes what the object's workflow created (pods, schedules); safe to repeat. */
  cleanUp(object: ObjectRef): Promise<void>;
}

/** The workflow type the operator starts for each kind. */
export const workflowTypeOf: Record<HerdKind, string> = {
  TrainingJob: "trainingJobWorkflow",
  EvalJob: "evalJobWorkflow",
  EvalSweep: "evalSweepWorkflow",
};

/**
 * The failure type of an activity whose create the API server refused in a way no retry
 * mends (workers/kube-errors.ts): the workflow reports it instead of retrying.
 */
export const apiRejectedType = "ApiRejected";
export interface Rejection {
  /**
   * CamelCase: QuotaExceeded, QuotaNotCounted, Forbidden (waited on); PodSecurityViolation,
   * AdmissionWebhookDenied, Invalid, BadRequest, Refused, NameTaken (the end).
   */
  reason: string;
  /** What was refused and the API server's own message. */
  message: string;
  /** True when the refusal can pass on its own (a quota): wait and try again. */
  waits: boolean;
}
