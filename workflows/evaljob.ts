// evalJobWorkflow: one EvalJob, from apply to Succeeded or Failed. It resolves the checkpoint
// (a TrainingJob's step or latest durable one, or a URI), then runs attempts of one evaluator
// pod each, and decides on how each ended as the training workflow does:
//   succeeded        → Succeeded, the results file read into status
//   userError, OOM   → Failed at once, with the evaluator's message (bad task data, a
//                      checkpoint that does not load)
//   preempted        → a new attempt at once (the evaluation starts over)
//   failed           → a new attempt after back-off, up to failureLimit
//   stuck            → condition and event; keep waiting
// An evaluator pod the API server refuses fails the job with its message; one a quota refuses
// waits (condition Stuck) and is tried again.
// Status is written through the status activity only by this workflow.
import { CancellationScope, isCancellation, proxyActivities, sleep } from "@temporalio/workflow";
import { callOptions, cleanUp, refusalWaitSeconds, rejectionOf, watchOptions } from "./plumbing.ts";
import { ObjectStatus } from "./object-status.ts";
import type { WorkflowInput, WorkflowState } from "./types.ts";
import type { Outcome, TrainingActivities } from "./training-types.ts";
import type { EvalActivities, EvalSummary, ResolvedCheckpoint } from "./eval-types.ts";
import { backoffSeconds } from "./trainingjob.ts";
import type { EvalJobStatus } from "../crds/evaljob.ts";

const evaluation = proxyActivities<EvalActivities & Pick<TrainingActivities, "recordEvent">>(
  callOptions("2 minutes"),
);
// The watch lasts as long as the evaluation.
const watcher = proxyActivities<EvalActivities>(watchOptions("7 days"));

/** Preemptions an EvalJob survives (the spec has no retry budget: evaluations are short). */
export const evalPreemptionBudget = 20;
/** Failed attempts (not bad input) retried before the job fails. */
export const evalFailureLimit = 3;
const evalBackoffSeconds = 10;
const stuckAfterSeconds = 300;

export async function evalJobWorkflow(input: WorkflowInput): Promise<WorkflowState> {
  const { object } = input;
  let phase: NonNullable<EvalJobStatus["phase"]> = "Pending";
  let attempts = 0;
  let preemptions = 0;
  let failures = 0;
  let checkpoint: ResolvedCheckpoint | undefined;
  const startTime = new Date().toISOString();
  // An EvalJob's checkpoint and tasks are immutable; a new spec (resources, batch size)
  // applies from the next attempt on.
  const status = new ObjectStatus(input, [], (): EvalJobStatus & { phase: string } => ({
    phase,
    startTime,
    attempts,
    preemptions,
    ...(checkpoint && {
      checkpoint: {
        uri: checkpoint.uri,
        ...(checkpoint.step !== undefined && { step: checkpoint.step }),
      },
    }),
  }));
  const snapshot = () => status.snapshot();
  const event = (type: "Normal" | "Warning", reason: string, text: string) =>
    evaluation.recordEvent({ object, type, reason, message: text });

  const finish = async (
    final: "Succeeded" | "Failed",
    reason: string,
    text: string,
    summary?: EvalSummary,
  ): Promise<WorkflowState> => {
    phase = final;
    await status.end(
      final,
      reason,
      text,
      summary && {
        checkpoint: summary.checkpoint,
        results: summary.results,
        resultsUri: summary.resultsUri,
        ...(summary.headline && { headline: summary.headline }),
      },
    );
    await event(final === "Succeeded" ? "Normal" : "Warning", reason, text);
    return snapshot();
  };

  try {
    const recovered = status.recovered();
    if (recovered) {
      // Started again by the operator: the lost workflow's evaluator goes; evaluate anew.
      await evaluation.deleteEvaluators(object);
      if (recovered.exhausted) return await finish("Failed", "WorkflowLost", recovered.message);
      await event("Warning", input.recovery!.reason, recovered.message);
    } else status.progressing("True", "WorkflowStarted", "workflow started");
    if ((await status.write()) === "gone") return snapshot();
    const resolution = await evaluation.resolveCheckpoint({ object, spec: status.spec });
    if ("error" in resolution)
      return await finish("Failed", "CheckpointNotFound", resolution.error);
    checkpoint = resolution.checkpoint;

    let refusals = 0;
    for (;;) {
      status.applyPending();
      try {
        await evaluation.createEvaluator({
          object,
          spec: status.spec,
          attempt: attempts + 1,
          checkpoint,
        });
      } catch (err) {
        const refused = rejectionOf(err);
        if (!refused) throw err;
        await evaluation.deleteEvaluators(object);
        if (!refused.waits) return await finish("Failed", refused.reason, refused.message);
        const wait = refusalWaitSeconds(++refusals);
        if (status.stuck(refused.reason, `${refused.message}; trying again in ${wait} s`))
          await event("Warning", refused.reason, refused.message);
        await status.write();
        await sleep(wait * 1000);
        continue;
      }
      attempts++;
      refusals = 0;
      status.unstuck(`attempt ${attempts}: evaluator pod created`);
      phase = "Running";
      status.progressing(
        "True",
        "AttemptStarted",
        `attempt ${attempts}: evaluating ${checkpoint.uri}`,
      );
      if ((await status.write()) === "gone") return snapshot();

      const outcome = await watchUntilEnd(attempts);
      const what = `attempt ${attempts}: ${outcome.message}`;
      switch (outcome.kind) {
        case "succeeded": {
          const summary = await evaluation.readResults({ job: object.name, checkpoint });
          const headline = summary.headline
            ? `; ${summary.headline.task} ${summary.headline.metric} ${summary.headline.value.toFixed(4)}`
            : "";
          return await finish("Succeeded", "EvaluationSucceeded", `${what}${headline}`, summary);
        }
        case "userError":
          return await finish("Failed", outcome.reason, what);
        case "oomKilled":
          return await finish(
            "Failed",
            "OOMKilled",
            `${what}; lower spec.batchSize or raise spec.resources.memory`,
          );
        case "preempted":
          preemptions++;
          await event("Warning", outcome.reason, what);
          if (preemptions > evalPreemptionBudget)
            return await finish(
              "Failed",
              "PreemptionBudgetExhausted",
              `${what}; ${preemptions} preemptions exceed the budget of ${evalPreemptionBudget}`,
            );
          await evaluation.deleteEvaluators(object);
          status.progressing("True", "Preempted", `${what}; evaluating again`);
          await status.write();
          break;
        case "failed":
        case "stuck": {
          failures++;
          await event("Warning", outcome.reason, what);
          if (failures > evalFailureLimit)
            return await finish(
              "Failed",
              "FailureLimitExceeded",
              `${what}; ${failures} failures exceed the limit of ${evalFailureLimit}`,
            );
          await evaluation.deleteEvaluators(object);
          const wait = backoffSeconds(evalBackoffSeconds, failures);
          status.progressing("True", "BackOff", `${what}; retrying in ${wait} s`);
          await status.write();
          await sleep(wait * 1000);
          break;
        }
      }
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Deletion: the evaluator pods go; results files already written stay.
    await CancellationScope.nonCancellable(async () => {
      await cleanUp(object);
      status.progressing("False", "Deleting", "workflow cancelled; evaluator pods deleted");
      await status.write();
    });
    throw err;
  }

  // Waits for the attempt's end. A "stuck" report becomes a condition and an event, and the
  // watch goes on.
  async function watchUntilEnd(attempt: number): Promise<Outcome> {
    let stuckReported = false;
    for (;;) {
      const outcome = await watcher.watchEvaluator({
        object,
        attempt,
        stuckAfterSeconds,
        stuckReported,
      });
      const stuck = outcome.kind === "stuck" && !stuckReported;
      if (stuck || stuckReported)
        status.setCondition(
          "Stuck",
          stuck ? "True" : "False",
          stuck ? outcome.reason : "AttemptEnded",
          stuck ? outcome.message : `attempt ${attempt} ended: ${outcome.message}`,
        );
      if (!stuck) return outcome;
      stuckReported = true;
      await event("Warning", outcome.reason, `attempt ${attempt}: ${outcome.message}`);
      await status.write();
    }
  }
}
