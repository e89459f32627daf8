// trainingJobWorkflow: one TrainingJob, from apply to Succeeded or Failed. Each attempt is a
// set of trainer pods (one per worker rank); how the attempt ends decides what comes next,
// following the outcome table of DESIGN.md:
//   succeeded        → Succeeded, with the final checkpoint
//   preempted        → new attempt at once, resumed from the last durable checkpoint
//                      (counts against retry.preemptionBudget only)
//   userError, OOM   → Failed at once, with the trainer's message
//   failed           → new attempt after exponential back-off, up to retry.failureLimit
//   stuck            → condition and event; keep waiting
// Suspension deletes the pods (SIGTERM: the trainer checkpoints) and waits for resume. The
// pods signal progress (step, loss, checkpoints); status is written through the status
// activity, one write at a time. Long runs continue as new, carrying the counters.
import {
  CancellationScope,
  condition,
  continueAsNew,
  defineSignal,
  isCancellation,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from "@temporalio/workflow";
import {
  activities,
  callOptions,
  changedFields,
  cleanUp,
  setCondition,
  specChanged,
  state,
  watchOptions,
} from "./plumbing.ts";
import type { Condition, SpecChanged, StatusWriteResult, WorkflowState } from "./types.ts";
import {
  progressSignal,
  type CheckpointInfo,
  type Outcome,
  type Progress,
  type TrainingActivities,
  type TrainingWorkflowInput,
} from "./training-types.ts";

export const progress = defineSignal<[Progress]>(progressSignal);

const training = proxyActivities<TrainingActivities>(callOptions("2 minutes"));
// The watch lasts as long as the attempt.
const watcher = proxyActivities<TrainingActivities>(watchOptions("30 days"));

/** Attempts per workflow run before continuing as new (keeps the history short). */
export const attemptsPerRun = 25;
/** Longest back-off between failed attempts. */
const maxBackoffSeconds = 3600;
/** Pods unschedulable this long make the attempt "stuck" (a condition; it keeps waiting). */
const stuckAfterSeconds = 300;

interface RetrySpec {
  preemptionBudget: number;
  failureLimit: number;
  backoffSeconds: number;
}

function retryOf(spec: Record<string, unknown>): RetrySpec {
  const r = (spec.retry ?? {}) as Partial<RetrySpec>;
  return {
    preemptionBudget: r.preemptionBudget ?? 100,
    failureLimit: r.failureLimit ?? 3,
    backoffSeconds: r.backoffSeconds ?? 10,
  };
}

function totalStepsOf(spec: Record<string, unknown>): number | undefined {
  const t = spec.training as { steps?: number; tokens?: number; globalBatchTokens: number };
  if (!t) return undefined;
  return t.steps ?? (t.tokens ? Math.ceil(t.tokens / t.globalBatchTokens) : undefined);
}

function ignoreCancellation(err: unknown): void {
  if (!isCancellation(err)) throw err;
}

/** Back-off before the retry after the n-th failure (n ≥ 1): base · 2^(n−1), capped. */
export function backoffSeconds(base: number, failures: number): number {
  return Math.min(base * 2 ** Math.max(failures - 1, 0), maxBackoffSeconds);
}

export async function trainingJobWorkflow(input: TrainingWorkflowInput): Promise<WorkflowState> {
  const { object } = input;
  const workflowId = workflowInfo().workflowId;
  const carry = input.carry;
  let generation = input.generation;
  let spec = input.spec;
  let pending: SpecChanged | undefined;
  const applied: string[] = [];
  let conditions: Condition[] = carry?.conditions ?? [];
  let phase = carry ? "Running" : "Pending";
  let attempts = carry?.attempts ?? 0;
  let preemptions = carry?.preemptions ?? 0;
  let failures = carry?.failures ?? 0;
  let attemptsThisRun = 0;
  let current = 0; // the attempt whose pods run now (progress of older ones is ignored)
  let step = carry?.step;
  let loss = carry?.loss;
  let learningRate: number | undefined;
  let tokensPerSecond: number | undefined;
  let tokensSeen: number | undefined;
  let lastCheckpoint: CheckpointInfo | undefined = carry?.lastCheckpoint;
  let message = "";
  let progressed = false;
  const startTime = carry?.startTime ?? new Date().toISOString();
  const suspended = () => spec.suspend === true;

  setHandler(specChanged, (update) => {
    if (update.generation > (pending?.generation ?? generation)) pending = update;
  });
  setHandler(state, () => ({
    phase,
    observedGeneration: generation,
    suspended: suspended(),
    applied: [...applied],
  }));
  setHandler(progress, (p) => {
    if (p.attempt !== current || p.rank !== 0) return;
    if (step === undefined || p.step >= step) {
      step = p.step;
      loss = p.loss ?? loss;
      learningRate = p.learningRate ?? learningRate;
      tokensPerSecond = p.tokensPerSecond ?? tokensPerSecond;
      tokensSeen = p.tokensSeen ?? tokensSeen;
    }
    if (p.checkpoint && (!lastCheckpoint || p.checkpoint.step >= lastCheckpoint.step))
      lastCheckpoint = p.checkpoint;
    progressed = true;
  });

  // Status writes go one at a time, each with everything known then, so a late write never
  // lands after a newer one.
  let chain: Promise<StatusWriteResult> = Promise.resolve("written");
  let gone = false;
  const writeStatus = (extra: Record<string, unknown> = {}): Promise<StatusWriteResult> => {
    const status = {
      phase,
      conditions,
      workflowId,
      observedGeneration: generation,
      message,
      startTime,
      totalSteps: totalStepsOf(spec),
      attempts,
      preemptions,
      failures,
      ...(step !== undefined && { step }),
      ...(loss !== undefined && { loss }),
      ...(learningRate !== undefined && { learningRate }),
      ...(tokensPerSecond !== undefined && { tokensPerSecond }),
      ...(tokensSeen !== undefined && { tokensSeen }),
      ...(lastCheckpoint && { lastCheckpoint }),
      ...extra,
    };
    // A write before this one that was cut short (cancellation) does not stop this one.
    chain = chain
      .then(
        () => undefined,
        () => undefined,
      )
      .then(async () => {
        const r = await activities.patchStatus({ object, status });
        if (r === "gone") gone = true;
        return r;
      });
    chain.catch(ignoreCancellation); // a write cut short by cancellation is not waited for
    return chain;
  };
  const progressing = (status: "True" | "False", reason: string, text: string) => {
    message = text;
    conditions = setCondition(conditions, {
      type: "Progressing",
      status,
      reason,
      message: text,
      observedGeneration: generation,
    });
  };
  const event = (type: "Normal" | "Warning", reason: string, text: string) =>
    training.recordEvent({ object, type, reason, message: text });

  // Progress from the pods reaches status at most every 2 seconds.
  let finished = false;
  // (Cancellation ends it with the workflow; the main loop handles it.)
  void (async () => {
    for (;;) {
      await condition(() => progressed || finished);
      if (finished) return;
      progressed = false;
      await writeStatus();
      await sleep("2 seconds");
    }
  })().catch(ignoreCancellation);

  const applyPending = (): boolean => {
    if (!pending) return false;
    const update = pending;
    pending = undefined;
    const fields = changedFields(spec, update.spec);
    const wasSuspended = suspended();
    spec = update.spec;
    generation = update.generation;
    for (const f of fields) if (!applied.includes(f)) applied.push(f);
    if (wasSuspended !== suspended()) return true;
    progressing(
      "True",
      "SpecApplied",
      `generation ${generation} applied: ${fields.join(", ") || "no field changed"}`,
    );
    return false;
  };

  const finish = async (
    final: "Succeeded" | "Failed",
    reason: string,
    text: string,
  ): Promise<WorkflowState> => {
    finished = true;
    phase = final;
    progressing("False", reason, text);
    conditions = setCondition(conditions, {
      type: final,
      status: "True",
      reason,
      message: text,
      observedGeneration: generation,
    });
    await writeStatus({ completionTime: new Date().toISOString() });
    await event(final === "Succeeded" ? "Normal" : "Warning", reason, text);
    return { phase, observedGeneration: generation, suspended: suspended(), applied };
  };

  try {
    if (!carry) {
      progressing("True", suspended() ? "Suspended" : "WorkflowStarted", "workflow started");
      if ((await writeStatus()) === "gone") return finishGone();
    }
    for (;;) {
      applyPending();
      if (gone) return finishGone();

      if (suspended()) {
        await training.deleteAttempt(object);
        phase = "Suspended";
        progressing(
          "False",
          "Suspended",
          lastCheckpoint
            ? `suspended; resumes from checkpoint step ${lastCheckpoint.step}`
            : "suspended",
        );
        await writeStatus();
        await condition(() => pending !== undefined);
        if (applyPending() && !suspended()) {
          phase = "Running";
          progressing("True", "Resumed", "resumed");
          await writeStatus();
        }
        continue;
      }

      if (attemptsThisRun >= attemptsPerRun || workflowInfo().continueAsNewSuggested) {
        finished = true;
        await chain;
        return await continueAsNew<typeof trainingJobWorkflow>({
          object,
          generation,
          spec,
          carry: {
            attempts,
            preemptions,
            failures,
            step,
            loss,
            totalSteps: totalStepsOf(spec),
            lastCheckpoint,
            startTime,
            conditions,
          },
        });
      }

      // ---- one attempt ----
      attempts++;
      attemptsThisRun++;
      current = attempts;
      lastCheckpoint = (await training.latestCheckpoint(spec)) ?? lastCheckpoint;
      const pods = await training.createAttempt({ object, spec, attempt: current, workflowId });
      phase = "Running";
      progressing(
        "True",
        "AttemptStarted",
        `attempt ${current}: ${pods.length} pod(s)` +
          (lastCheckpoint ? `, resuming from step ${lastCheckpoint.step}` : ""),
      );
      await writeStatus();

      const outcome = await watchUntilEnd(current, pods.length);
      if (outcome === "suspend") {
        // The pods are deleted with their grace period: SIGTERM makes the trainer checkpoint.
        await training.deleteAttempt(object);
        continue;
      }
      // A preempted or failed attempt's pods go before the next attempt (SIGTERM first: the
      // trainer checkpoints); the last attempt's pods stay, ended, for `kubectl logs`.
      const retry = retryOf(spec);
      const retrying =
        (outcome.kind === "preempted" && preemptions + 1 <= retry.preemptionBudget) ||
        (outcome.kind === "failed" && failures + 1 <= retry.failureLimit);
      if (retrying) await training.deleteAttempt(object);
      lastCheckpoint = (await training.latestCheckpoint(spec)) ?? lastCheckpoint;
      if (lastCheckpoint && (step === undefined || lastCheckpoint.step > step))
        step = lastCheckpoint.step;
      const what = `attempt ${current}: ${outcome.message}`;

      switch (outcome.kind) {
        case "succeeded":
          if (lastCheckpoint) step = lastCheckpoint.step;
          return await finish("Succeeded", "TrainingSucceeded", `${what}`);
        case "userError":
          return await finish("Failed", outcome.reason, what);
        case "oomKilled":
          return await finish(
            "Failed",
            "OOMKilled",
            `${what}; lower spec.training.microBatch or raise spec.resources.memory`,
          );
        case "preempted":
          preemptions++;
          await event("Warning", outcome.reason, what);
          if (preemptions > retry.preemptionBudget)
            return await finish(
              "Failed",
              "PreemptionBudgetExhausted",
              `${what}; ${preemptions} preemptions exceed the budget of ${retry.preemptionBudget}`,
            );
          progressing("True", "Preempted", `${what}; resuming`);
          await writeStatus();
          break;
        case "failed":
        case "stuck": {
          failures++;
          await event("Warning", outcome.reason, what);
          if (failures > retry.failureLimit)
            return await finish(
              "Failed",
              "FailureLimitExceeded",
              `${what}; ${failures} failures exceed the limit of ${retry.failureLimit}`,
            );
          const wait = backoffSeconds(retry.backoffSeconds, failures);
          progressing("True", "BackOff", `${what}; retrying in ${wait} s`);
          await writeStatus();
          await condition(
            () => pending !== undefined && pending.spec.suspend === true,
            wait * 1000,
          );
          break;
        }
      }
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Deletion: the pods go (the trainer checkpoints on SIGTERM); checkpoints are kept.
    await CancellationScope.nonCancellable(async () => {
      finished = true;
      await cleanUp(object);
      progressing("False", "Deleting", "workflow cancelled; pods deleted, checkpoints kept");
      await writeStatus();
    });
    throw err;
  }

  function finishGone(): WorkflowState {
    finished = true;
    return { phase, observedGeneration: generation, suspended: suspended(), applied };
  }

  // Waits for the attempt's end, or for a request to suspend ("suspend"). A "stuck" report
  // becomes a condition and an event, and the watch goes on.
  async function watchUntilEnd(attempt: number, ranks: number): Promise<Outcome | "suspend"> {
    let stuckReported = false;
    for (;;) {
      const scope = new CancellationScope();
      const watch = scope.run(() =>
        watcher.watchAttempt({ object, attempt, ranks, stuckAfterSeconds, stuckReported }),
      );
      const suspendAsked = condition(() => pending !== undefined && pending.spec.suspend === true);
      suspendAsked.catch(ignoreCancellation); // left waiting when the watch ends first
      const first = await Promise.race([watch, suspendAsked.then(() => "suspend" as const)]);
      if (first === "suspend") {
        scope.cancel();
        await watch.catch(() => undefined);
        return "suspend";
      }
      if (first.kind !== "stuck") {
        if (stuckReported)
          conditions = setCondition(conditions, {
            type: "Stuck",
            status: "False",
            reason: "AttemptEnded",
            message: `attempt ${attempt} ended: ${first.message}`,
            observedGeneration: generation,
          });
        return first;
      }
      stuckReported = true;
      conditions = setCondition(conditions, {
        type: "Stuck",
        status: "True",
        reason: first.reason,
        message: first.message,
        observedGeneration: generation,
      });
      await event("Warning", first.reason, `attempt ${attempt}: ${first.message}`);
      await writeStatus();
    }
  }
}
