// The plumbing every herd workflow shares (training, EvalJob, EvalSweep): the spec-change
// signal and state query, the control activities (status writes, clean-up), and condition
// and spec-diff helpers.
import {
  ActivityFailure,
  ApplicationFailure,
  defineQuery,
  defineSignal,
  proxyActivities,
  type ActivityOptions,
} from "@temporalio/workflow";
import {
  apiRejectedType,
  specChangedSignal,
  stateQuery,
  type Condition,
  type ControlActivities,
  type Rejection,
  type SpecChanged,
  type WorkflowState,
} from "./types.ts";

export const specChanged = defineSignal<[SpecChanged]>(specChangedSignal);
export const state = defineQuery<WorkflowState>(stateQuery);

const retry = { initialInterval: "1 second", maximumInterval: "30 seconds" };

/** An ordinary activity call: bounded by `startToCloseTimeout`, retried with back-off. */
export const callOptions = (
  startToCloseTimeout: ActivityOptions["startToCloseTimeout"],
): ActivityOptions => ({ startToCloseTimeout, retry });

/**
 * An activity that waits as long as pods (or an EvalJob) run: the heartbeat tells a dead
 * worker apart, and the retry, on another worker, waits on the same thing again. The watches
 * heartbeat every half second; 10 s without one means the worker is gone, and status (whose
 * progress comes through the watch) resumes that soon after on another.
 */
export const watchOptions = (
  startToCloseTimeout: ActivityOptions["startToCloseTimeout"],
): ActivityOptions => ({ startToCloseTimeout, heartbeatTimeout: "10 seconds", retry });

// cleanUp is left out: it has its own proxy below, with the timeout it needs.
export const activities = proxyActivities<Omit<ControlActivities, "cleanUp">>(
  callOptions("30 seconds"),
);

/**
 * cleanUp deletes what a workflow created and waits until its pods are gone, which takes up to
 * their 30 s grace period: an ordinary call's 30 s timed out routinely. Same activity type, so
 * running workflows replay unchanged.
 */
export const { cleanUp } = proxyActivities<ControlActivities>(callOptions("3 minutes"));

/** Replaces the condition of the same type; keeps its transition time if the status holds. */
export function setCondition(
  conditions: Condition[],
  next: Omit<Condition, "lastTransitionTime">,
): Condition[] {
  const old = conditions.find((c) => c.type === next.type);
  const lastTransitionTime =
    old && old.status === next.status ? old.lastTransitionTime : new Date().toISOString();
  return [...conditions.filter((c) => c.type !== next.type), { ...next, lastTransitionTime }];
}

/** Spec fields whose value differs between two generations. */
export function changedFields(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k])).sort();
}

/**
 * Seconds to wait before creating again after the n-th refusal in a row that can pass (a
 * quota): 10 s, doubling, at most 5 min; a day of waiting costs under 300 tries of history.
 */
export const refusalWaitSeconds = (n: number) => Math.min(300, 10 * 2 ** Math.max(n - 1, 0));

/** The API server's refusal that failed an activity (workers/kube-errors.ts), if it was one. */
export function rejectionOf(err: unknown): Rejection | undefined {
  if (!(err instanceof ActivityFailure)) return undefined;
  const cause = err.cause;
  if (!(cause instanceof ApplicationFailure) || cause.type !== apiRejectedType) return undefined;
  return cause.details?.[0] as Rejection | undefined;
}
