// evalSweepWorkflow: one EvalSweep for as long as it exists. It owns the sweep's Temporal
// Schedule (id from the object's uid, so a restart or a second reconcile finds the same one):
// creates it, updates it on every spec change (schedule, overlap policy, catch-up window,
// paused while spec.suspend), deletes it on deletion. It is the only writer of the sweep's
// status: the scheduled runs (evalSweepRunWorkflow) signal it what they evaluated, and it
// keeps the newest spec.historyLimit steps.
//
// evalSweepRunWorkflow: one scheduled run. It evaluates the TrainingJob's checkpoints that
// have no results file of this sweep yet — the file beside each checkpoint is the record, so
// runs are idempotent — through one EvalJob per step, named after the step: a second run that
// overlaps finds the same EvalJob and waits for it instead of evaluating again.
import {
  CancellationScope,
  condition,
  continueAsNew,
  defineSignal,
  getExternalWorkflowHandle,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from "@temporalio/workflow";
import { callOptions, cleanUp, rejectionOf, watchOptions } from "./plumbing.ts";
import type { EvalSweepStatus } from "../crds/evalsweep.ts";
import { ObjectStatus } from "./object-status.ts";
import type { Condition, WorkflowState } from "./types.ts";
import {
  sweepRunSignal,
  type SweepActivities,
  type SweepHistoryEntry,
  type SweepRunInput,
  type SweepRunOutcome,
  type SweepRunReport,
  type SweepWorkflowInput,
} from "./eval-types.ts";

export const sweepRun = defineSignal<[SweepRunReport]>(sweepRunSignal);

const sweep = proxyActivities<SweepActivities>(callOptions("1 minute"));
// Waiting for an EvalJob lasts as long as its evaluation.
const waiter = proxyActivities<SweepActivities>(watchOptions("7 days"));

/** History entries by step, newest result of a step kept, oldest step first, at most `limit`. */
export function mergeHistory(
  history: SweepHistoryEntry[],
  entries: SweepHistoryEntry[],
  limit: number,
): SweepHistoryEntry[] {
  const byStep = new Map(history.map((e) => [e.step, e]));
  for (const e of entries) byStep.set(e.step, e);
  return [...byStep.values()].sort((a, b) => a.step - b.step).slice(-limit);
}

export async function evalSweepWorkflow(input: SweepWorkflowInput): Promise<WorkflowState> {
  const { object, carry } = input;
  const { workflowId, taskQueue } = workflowInfo();
  const reports: SweepRunReport[] = [];
  // Started again by the operator after Temporal lost the last workflow: its history lives on
  // in the object's status.
  const lost = input.recovery?.status as Partial<EvalSweepStatus> | undefined;
  let history: SweepHistoryEntry[] = carry?.history ?? lost?.history ?? [];
  let lastRunTime = carry?.lastRunTime ?? lost?.lastRunTime;
  let scheduleId = carry?.scheduleId;
  let nextRunTime: string | undefined;
  const suspended = () => status.spec.suspend === true;
  const status: ObjectStatus = new ObjectStatus(
    input,
    carry?.conditions ?? (lost?.conditions as Condition[] | undefined) ?? [],
    // nextRunTime null removes it (status writes are JSON merge patches): none is due.
    (): Omit<EvalSweepStatus, "nextRunTime"> & { phase: string; nextRunTime: string | null } => ({
      phase: suspended() ? "Suspended" : "Active",
      ...(scheduleId && { scheduleId }),
      ...(lastRunTime && { lastRunTime }),
      nextRunTime: nextRunTime ?? null,
      ...(history.length > 0 && {
        history,
        lastEvaluatedStep: Math.max(...history.map((e) => e.step)),
      }),
    }),
    suspended,
  );
  setHandler(sweepRun, (report) => void reports.push(report));
  const snapshot = () => status.snapshot();
  // A paused schedule makes no progress: the condition says so.
  const progressing = (reason: string, text: string) =>
    status.progressing(suspended() ? "False" : "True", reason, text);

  const upsertSchedule = async () => {
    const s = await sweep.upsertSchedule({ object, spec: status.spec, workflowId, taskQueue });
    scheduleId = s.scheduleId;
    nextRunTime = s.nextRunTime;
  };
  const historyLimit = () => (status.spec.historyLimit as number | undefined) ?? 100;

  try {
    if (!carry) {
      await upsertSchedule();
      const recovered = status.recovered();
      if (recovered) progressing(input.recovery!.reason, recovered.message);
      else
        progressing(
          suspended() ? "Suspended" : "WorkflowStarted",
          suspended() ? "created suspended; schedule paused" : `schedule ${scheduleId} created`,
        );
      if ((await status.write()) === "gone") return await gone();
    }
    for (;;) {
      await condition(() => status.pending !== undefined || reports.length > 0);
      if (status.pending) {
        const wasSuspended = suspended();
        const fields = status.applyPending()!;
        await upsertSchedule();
        const reason =
          wasSuspended === suspended() ? "SpecApplied" : suspended() ? "Suspended" : "Resumed";
        progressing(
          reason,
          `generation ${status.generation} applied: ${fields.join(", ") || "no field changed"}` +
            (suspended() ? "; schedule paused" : ""),
        );
      }
      const finished = reports.splice(0);
      if (finished.length > 0) nextRunTime = await sweep.nextRunTime(object);
      for (const report of finished) {
        history = mergeHistory(history, report.entries, historyLimit());
        lastRunTime = report.started;
        const steps = report.entries.map((e) => e.step);
        progressing(
          suspended() ? "Suspended" : "RunFinished",
          `run of ${report.started}: ` +
            (steps.length ? `evaluated step(s) ${steps.join(", ")}` : "nothing new to evaluate") +
            (report.failures.length ? `; failed: ${report.failures.join("; ")}` : ""),
        );
      }
      if ((await status.write()) === "gone") return await gone();
      // Not while a signal waits (it arrived during the write): the next round takes it first,
      // so no spec change or run report is left behind in this run.
      if (workflowInfo().continueAsNewSuggested && !status.pending && reports.length === 0)
        return await continueAsNew<typeof evalSweepWorkflow>({
          object,
          generation: status.generation,
          spec: status.spec,
          carry: { history, lastRunTime, scheduleId: scheduleId!, conditions: status.conditions },
        });
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Deletion: the schedule goes (and with the object its EvalJobs); results files stay.
    await CancellationScope.nonCancellable(async () => {
      await cleanUp(object);
      progressing("Deleting", "workflow cancelled; schedule deleted");
      await status.write();
    });
    throw err;
  }

  // The object went away without a cancellation (its finalizer removed by hand): the schedule
  // must not outlive it.
  async function gone(): Promise<WorkflowState> {
    await cleanUp(object);
    return snapshot();
  }
}

export async function evalSweepRunWorkflow(input: SweepRunInput): Promise<SweepRunOutcome> {
  const started = new Date().toISOString();
  const { sweep: object, spec } = input;
  const entries: SweepHistoryEntry[] = [];
  const failures: string[] = [];
  for (const step of await sweep.pendingSteps({ sweep: object, spec })) {
    let name: string;
    try {
      name = await sweep.ensureEvalJob({ sweep: object, spec, step });
    } catch (err) {
      // Refused (a webhook, validation of the template): a failure of this run, reported.
      const refused = rejectionOf(err);
      if (!refused) throw err;
      failures.push(`step ${step}: ${refused.message}`);
      continue;
    }
    const r = await waiter.awaitEvalJob({ namespace: object.namespace, name });
    if ("entry" in r) entries.push(r.entry);
    else failures.push(r.failed);
  }
  const report: SweepRunReport = { started, entries, failures };
  // The sweep's workflow may be gone (the object was deleted): then nobody needs the report.
  await getExternalWorkflowHandle(input.sweepWorkflowId)
    .signal(sweepRun, report)
    .catch(() => undefined);
  return { evaluated: entries.map((e) => e.step), failed: failures };
}
