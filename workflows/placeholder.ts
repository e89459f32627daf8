// The plumbing every herd workflow shares, proven by the minimal per-kind workflows below it:
// record the start in status, apply spec changes that arrive as signals (suspend/resume,
// retry budgets, schedule), and on cancellation clean up, then return. The training and
// evaluation workflows replace the minimal ones and reuse these helpers.
import {
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from "@temporalio/workflow";
import {
  specChangedSignal,
  stateQuery,
  type Condition,
  type ControlActivities,
  type SpecChanged,
  type StatusWriteResult,
  type WorkflowInput,
  type WorkflowState,
} from "./types.ts";

export const specChanged = defineSignal<[SpecChanged]>(specChangedSignal);
export const state = defineQuery<WorkflowState>(stateQuery);

export const activities = proxyActivities<ControlActivities>({
  startToCloseTimeout: "30 seconds",
  retry: { initialInterval: "1 second", maximumInterval: "30 seconds" },
});

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

export interface PlaceholderPhases {
  running: string;
  suspended: string;
}

/**
 * Runs until cancelled (then cleans up and ends cancelled): writes status on start and after
 * each applied spec change. The object going away without a cancellation (status write
 * answers "gone", e.g. its finalizer was removed by hand) ends it normally.
 */
export async function runPlaceholder(
  input: WorkflowInput,
  phases: PlaceholderPhases,
): Promise<WorkflowState> {
  const workflowId = workflowInfo().workflowId;
  let generation = input.generation;
  let spec = input.spec;
  let pending: SpecChanged | undefined;
  const applied: string[] = [];
  let conditions: Condition[] = [];
  const suspended = () => spec.suspend === true;
  const phase = () => (suspended() ? phases.suspended : phases.running);
  const snapshot = (): WorkflowState => ({
    phase: phase(),
    observedGeneration: generation,
    suspended: suspended(),
    applied: [...applied],
  });

  setHandler(specChanged, (update) => {
    // Repeats and stale generations are dropped: the operator may signal more than once.
    if (update.generation > (pending?.generation ?? generation)) pending = update;
  });
  setHandler(state, snapshot);

  const writeStatus = (
    reason: string,
    message: string,
    extra: Record<string, unknown> = {},
  ): Promise<StatusWriteResult> => {
    conditions = setCondition(conditions, {
      type: "Progressing",
      status: suspended() ? "False" : "True",
      reason,
      message,
      observedGeneration: generation,
    });
    return activities.patchStatus({
      object: input.object,
      status: {
        phase: phase(),
        conditions,
        workflowId,
        observedGeneration: generation,
        message,
        ...extra,
      },
    });
  };

  try {
    const first = await writeStatus(
      suspended() ? "Suspended" : "WorkflowStarted",
      suspended() ? "created suspended" : "workflow started",
      { startTime: new Date().toISOString() },
    );
    if (first === "gone") return snapshot();
    for (;;) {
      await condition(() => pending !== undefined);
      const update = pending!;
      pending = undefined;
      const fields = changedFields(spec, update.spec);
      const wasSuspended = suspended();
      spec = update.spec;
      generation = update.generation;
      for (const f of fields) if (!applied.includes(f)) applied.push(f);
      const reason =
        wasSuspended === suspended() ? "SpecApplied" : suspended() ? "Suspended" : "Resumed";
      const result = await writeStatus(
        reason,
        `generation ${generation} applied: ${fields.join(", ") || "no field changed"}`,
      );
      if (result === "gone") return snapshot();
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Deletion: clean up even though the workflow is being cancelled, then end as
    // cancelled; the operator sees it closed and removes its finalizer.
    await CancellationScope.nonCancellable(async () => {
      await activities.cleanUp(input.object);
      await writeStatus("Deleting", "workflow cancelled; resources cleaned up");
    });
    throw err;
  }
}
