// trainingJobWorkflow: one TrainingJob, from apply to Succeeded or Failed. Each attempt is a
// set of trainer pods (one per worker rank); how the attempt ends decides what comes next,
// following the outcome table of DESIGN.md:
//   succeeded        → Succeeded, with the final checkpoint
//   preempted        → new attempt at once, resumed from the last durable checkpoint
//                      (counts against retry.preemptionBudget only)
//   userError, OOM   → Failed at once, with the trainer's message
//   failed           → new attempt after exponential back-off, up to retry.failureLimit
//   stuck            → condition and event; keep waiting
// Suspension deletes the pods (SIGTERM: the trainer checkpoints) and waits for resume.
//
// Progress (step, loss, checkpoints) comes from the watch activity, which reads rank 0's log
// and returns at most every `progressEverySeconds`; each report costs a bounded handful of
// history events. The run continues as new when its history grows past `historyBudget`,
// between attempts or in the middle of one: the next run watches the same pods on, and takes
// the counters, the attempt in flight and any spec change not yet applied with it.
import {
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineSignal,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from "@temporalio/workflow";
import { callOptions, cleanUp, refusalWaitSeconds, rejectionOf, watchOptions } from "./plumbing.ts";
import { ignoreCancellation, ObjectStatus } from "./object-status.ts";
import type { Condition, Rejection, WorkflowState } from "./types.ts";
import type { TrainingJobStatus } from "../crds/trainingjob.ts";
import { freshGoodput, goodputOfStatus, GoodputLedger } from "./goodput.ts";
import {
  progressSignal,
  type CheckpointInfo,
  type Outcome,
  type Progress,
  type RankProgress,
  type TrainingActivities,
  type TrainingCarry,
  type TrainingWorkflowInput,
} from "./training-types.ts";

/** Progress from trainer pods of older releases (training-types.ts, progressSignal). */
export const progress = defineSignal<[Progress]>(progressSignal);

const training = proxyActivities<TrainingActivities>(callOptions("2 minutes"));
// The watch lasts as long as the attempt.
const watcher = proxyActivities<TrainingActivities>(watchOptions("30 days"));

/** Attempts per workflow run before continuing as new (keeps the history short). */
export const attemptsPerRun = 25;
/**
 * How long the watch waits, at least, before it reports progress (and status shows a new
 * step), after `reports` reports in this attempt: 1 s at first, when users and tests watch an
 * attempt start, then a second more each time, to once a minute from the 60th report (about
 * half an hour in) on. A week-long job so makes about 10,000 reports.
 */
export function progressEverySeconds(reports: number): number {
  return Math.min(60, reports + 1);
}
/**
 * A run continues as new past either figure (or when Temporal suggests it), far below
 * Temporal's limits of 51,200 events and 50 MB: a progress report adds about a dozen events
 * of about 1 KB each.
 */
export const historyBudget = { events: 5000, bytes: 5 * 1024 * 1024 };
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

/** Back-off before the retry after the n-th failure (n ≥ 1): base · 2^(n−1), capped. */
export function backoffSeconds(base: number, failures: number): number {
  return Math.min(base * 2 ** Math.max(failures - 1, 0), maxBackoffSeconds);
}

/** True when this run's history has grown enough to continue as new. */
function historyFull(): boolean {
  const info = workflowInfo();
  return (
    info.continueAsNewSuggested ||
    info.historyLength >= historyBudget.events ||
    info.historySize >= historyBudget.bytes
  );
}

export async function trainingJobWorkflow(input: TrainingWorkflowInput): Promise<WorkflowState> {
  return new TrainingRun(input).run();
}

/** What a workflow started again by the operator takes over from the object's status. */
function carryOfStatus(s: Record<string, unknown> | undefined): TrainingCarry | undefined {
  if (!s) return undefined;
  const count = (k: string) => (typeof s[k] === "number" ? (s[k] as number) : 0);
  const startTime = (s.startTime as string | undefined) ?? new Date().toISOString();
  return {
    attempts: count("attempts"),
    preemptions: count("preemptions"),
    failures: count("failures"),
    step: s.step as number | undefined,
    loss: s.loss as number | undefined,
    lastCheckpoint: s.lastCheckpoint as CheckpointInfo | undefined,
    startTime,
    conditions: (s.conditions as Condition[] | undefined) ?? [],
    goodput: goodputOfStatus(s, startTime),
  };
}

const now = () => new Date().toISOString();

/** How a watch ended: the attempt's outcome, a request to suspend, or a full history. */
type WatchEnd = Outcome | "suspend" | "continueAsNew";

/** One run of the workflow (until it ends or continues as new), as small steps. */
class TrainingRun {
  private readonly status: ObjectStatus;
  private readonly carry: TrainingCarry | undefined;
  private phase: NonNullable<TrainingJobStatus["phase"]>;
  private attempts: number;
  private preemptions: number;
  private failures: number;
  private attemptsThisRun = 0;
  /** The attempt whose pods run now (progress of older ones is ignored). */
  private current = 0;
  private ranks = 0;
  /** What the current attempt's watch has reported so far. */
  private told: RankProgress | undefined;
  /** Progress reports of the current attempt so far. */
  private reports = 0;
  /** When the pods were told to stop for a suspension (for the checkpoint's latency). */
  private stopAt: string | undefined;
  /** Refusals in a row of the next attempt's pods that can pass (a quota). */
  private refusals = 0;
  private step: number | undefined;
  private loss: number | undefined;
  private learningRate: number | undefined;
  private tokensPerSecond: number | undefined;
  private tokensSeen: number | undefined;
  private lastCheckpoint: CheckpointInfo | undefined;
  private readonly startTime: string;
  /** Each attempt's start, end and steps, for status.attemptHistory and status.goodput. */
  private readonly goodput: GoodputLedger;
  /** Set by the progress signal of older trainer pods; the writer loop below writes it. */
  private progressed = false;
  private finished = false;

  constructor(private readonly input: TrainingWorkflowInput) {
    const carry = (this.carry = input.carry ?? carryOfStatus(input.recovery?.status));
    this.status = new ObjectStatus(
      { ...input, pending: carry?.pending },
      carry?.conditions ?? [],
      () => this.fields(),
      () => this.suspended(),
    );
    this.phase = carry ? "Running" : "Pending";
    this.attempts = carry?.attempts ?? 0;
    this.preemptions = carry?.preemptions ?? 0;
    this.failures = carry?.failures ?? 0;
    this.step = carry?.step;
    this.loss = carry?.loss;
    this.lastCheckpoint = carry?.lastCheckpoint;
    this.startTime = carry?.startTime ?? new Date().toISOString();
    this.goodput = new GoodputLedger(
      carry?.goodput ?? freshGoodput(this.startTime),
      this.startTime,
    );
    setHandler(progress, (p) => {
      if (p.attempt !== this.current || p.rank !== 0) return;
      this.takeProgress(p);
      this.progressed = true;
    });
  }

  private suspended = () => this.status.spec.suspend === true;
  private get object() {
    return this.input.object;
  }

  /** The status fields of a TrainingJob, as its schema (crds/trainingjob.ts) types them. */
  private fields(): TrainingJobStatus & { phase: TrainingJobStatus["phase"] & string } {
    return {
      phase: this.phase,
      startTime: this.startTime,
      totalSteps: totalStepsOf(this.status.spec),
      attempts: this.attempts,
      preemptions: this.preemptions,
      failures: this.failures,
      ...(this.step !== undefined && { step: this.step }),
      ...(this.loss !== undefined && { loss: this.loss }),
      ...(this.learningRate !== undefined && { learningRate: this.learningRate }),
      ...(this.tokensPerSecond !== undefined && { tokensPerSecond: this.tokensPerSecond }),
      ...(this.tokensSeen !== undefined && { tokensSeen: this.tokensSeen }),
      ...(this.lastCheckpoint && { lastCheckpoint: this.lastCheckpoint }),
      ...this.goodput.status(now()),
    };
  }

  /** Rank 0's progress: the step only moves forward, the checkpoint too. */
  private takeProgress(p: RankProgress) {
    if (this.step === undefined || p.step >= this.step) {
      this.step = p.step;
      this.loss = p.loss ?? this.loss;
      this.learningRate = p.learningRate ?? this.learningRate;
      this.tokensPerSecond = p.tokensPerSecond ?? this.tokensPerSecond;
      this.tokensSeen = p.tokensSeen ?? this.tokensSeen;
    }
    this.goodput.progress(p);
    if (p.checkpoint && (!this.lastCheckpoint || p.checkpoint.step >= this.lastCheckpoint.step))
      this.lastCheckpoint = p.checkpoint;
  }

  private event(type: "Normal" | "Warning", reason: string, text: string) {
    return training.recordEvent({ object: this.object, type, reason, message: text });
  }

  private snapshot(): WorkflowState {
    return this.status.snapshot();
  }

  async run(): Promise<WorkflowState> {
    this.writeSignalledProgress();
    const { status } = this;
    try {
      const recovered = status.recovered();
      if (recovered) {
        // The lost workflow's pods go first (SIGTERM: they checkpoint); the next attempt
        // resumes from the newest durable checkpoint.
        await training.deleteAttempt(this.object);
        if (recovered.exhausted)
          return await this.finish("Failed", "WorkflowLost", recovered.message);
        await this.event("Warning", this.input.recovery!.reason, recovered.message);
        if ((await status.write()) === "gone") return this.stop();
      } else if (!this.carry) {
        status.progressing(
          "True",
          this.suspended() ? "Suspended" : "WorkflowStarted",
          "workflow started",
        );
        if ((await status.write()) === "gone") return this.stop();
      }
      // A run that continued as new in the middle of an attempt watches its pods on.
      let resumed = this.carry?.running;
      for (;;) {
        this.applyPending();
        if (status.gone) return this.stop();
        if (this.suspended()) {
          resumed = undefined;
          await this.suspend();
          continue;
        }
        if (resumed) {
          this.current = resumed.attempt;
          this.ranks = resumed.ranks;
          this.told = resumed.told;
          this.reports = resumed.reports ?? 0;
          resumed = undefined;
        } else {
          if (this.attemptsThisRun >= attemptsPerRun || historyFull())
            return await this.continueAsNew(false);
          const started = await this.startAttempt();
          if (started === "waiting") continue;
          if (started !== "started") return started;
        }
        const end = await this.watchUntilEnd();
        if (end === "continueAsNew") return await this.continueAsNew(true);
        if (end === "suspend") {
          // The pods are deleted with their grace period: SIGTERM makes the trainer checkpoint.
          this.stopAt = now();
          await training.deleteAttempt(this.object);
          continue;
        }
        const final = await this.afterAttempt(end);
        if (final) return final;
      }
    } catch (err) {
      if (!isCancellation(err)) throw err;
      // Deletion: the pods go (the trainer checkpoints on SIGTERM); checkpoints are kept.
      await CancellationScope.nonCancellable(async () => {
        this.finished = true;
        await cleanUp(this.object);
        status.progressing(
          "False",
          "Deleting",
          "workflow cancelled; pods deleted, checkpoints kept",
        );
        await status.write();
      });
      throw err;
    }
  }

  /**
   * Progress signalled by trainer pods of older releases reaches status at most every 2
   * seconds. (Cancellation ends it with the workflow; the main loop handles it.)
   */
  private writeSignalledProgress() {
    void (async () => {
      for (;;) {
        await condition(() => this.progressed || this.finished);
        if (this.finished) return;
        this.progressed = false;
        await this.status.write();
        await sleep("2 seconds");
      }
    })().catch(ignoreCancellation);
  }

  /** Applies a pending spec change; true when it changed whether the job is suspended. */
  private applyPending(): boolean {
    const wasSuspended = this.suspended();
    const fields = this.status.applyPending();
    if (!fields) return false;
    if (wasSuspended !== this.suspended()) return true;
    this.status.progressing(
      "True",
      "SpecApplied",
      `generation ${this.status.generation} applied: ${fields.join(", ") || "no field changed"}`,
    );
    return false;
  }

  /** Deletes the pods and waits for a spec that resumes. */
  private async suspend() {
    const { status } = this;
    await training.deleteAttempt(this.object);
    // The SIGTERM checkpoint: pods signalled it before 2026-12-07; now it is read here.
    if (patched("suspend-reads-checkpoint"))
      this.lastCheckpoint = (await training.latestCheckpoint(status.spec)) ?? this.lastCheckpoint;
    const { stopAt } = this;
    this.stopAt = undefined;
    this.goodput.ended(
      { kind: "suspended", reason: "Suspended", ...(stopAt && { stopAt }) },
      this.step ?? 0,
      this.lastCheckpoint,
      now(),
    );
    this.goodput.suspended(now());
    this.phase = "Suspended";
    status.progressing(
      "False",
      "Suspended",
      this.lastCheckpoint
        ? `suspended; resumes from checkpoint step ${this.lastCheckpoint.step}`
        : "suspended",
    );
    await status.write();
    await condition(() => status.pending !== undefined);
    if (this.applyPending() && !this.suspended()) {
      this.goodput.resumed(now());
      this.phase = "Running";
      status.progressing("True", "Resumed", "resumed");
      await status.write();
    }
  }

  /**
   * Creates the next attempt's pods, resuming from the newest durable checkpoint. When the API
   * server refuses them, the job ends Failed with its message, or, for a refusal that can pass
   * (a quota), waits and says "waiting": the main loop then tries again.
   */
  private async startAttempt(): Promise<"started" | "waiting" | WorkflowState> {
    const attempt = this.attempts + 1;
    const { spec } = this.status;
    this.lastCheckpoint = (await training.latestCheckpoint(spec)) ?? this.lastCheckpoint;
    let pods: string[];
    try {
      pods = await training.createAttempt({ object: this.object, spec, attempt });
    } catch (err) {
      const refused = rejectionOf(err);
      if (!refused) throw err;
      return this.refused(refused);
    }
    this.attempts = this.current = attempt;
    this.goodput.started(attempt, this.lastCheckpoint?.step ?? 0, now());
    this.attemptsThisRun++;
    this.told = undefined;
    this.reports = 0;
    this.refusals = 0;
    this.ranks = pods.length;
    this.phase = "Running";
    this.status.unstuck(`attempt ${attempt}: pods created`);
    this.status.progressing(
      "True",
      "AttemptStarted",
      `attempt ${attempt}: ${pods.length} pod(s)` +
        (this.lastCheckpoint ? `, resuming from step ${this.lastCheckpoint.step}` : ""),
    );
    await this.status.write();
    return "started";
  }

  /** Pods the API server refused: what was created goes; then fail, or wait (a quota). */
  private async refused(r: Rejection): Promise<"waiting" | WorkflowState> {
    const { status } = this;
    await training.deleteAttempt(this.object);
    if (!r.waits) return this.finish("Failed", r.reason, r.message);
    const wait = refusalWaitSeconds(++this.refusals);
    if (status.stuck(r.reason, `${r.message}; trying again in ${wait} s`))
      await this.event("Warning", r.reason, r.message);
    await status.write();
    await condition(() => status.pending !== undefined, wait * 1000);
    return "waiting";
  }

  /**
   * Waits for the attempt's end, for a request to suspend, or for a full history. Progress
   * reports are written to status; a "stuck" report becomes a condition and an event, and the
   * watch goes on.
   */
  private async watchUntilEnd(): Promise<WatchEnd> {
    const { status } = this;
    const attempt = this.current;
    let stuckReported = false;
    for (;;) {
      const scope = new CancellationScope();
      const watch = scope.run(() =>
        watcher.watchAttempt({
          object: this.object,
          attempt,
          ranks: this.ranks,
          stuckAfterSeconds,
          stuckReported,
          progressEverySeconds: progressEverySeconds(this.reports),
          ...(this.told && { told: this.told }),
        }),
      );
      const suspendAsked = condition(
        () => status.pending !== undefined && status.pending.spec.suspend === true,
      );
      suspendAsked.catch(ignoreCancellation); // left waiting when the watch ends first
      const first = await Promise.race([watch, suspendAsked.then(() => "suspend" as const)]);
      if (first === "suspend") {
        scope.cancel();
        await watch.catch(() => undefined);
        return "suspend";
      }
      if (first.kind === "progress") {
        this.reports++;
        this.told = first.progress;
        this.takeProgress(first.progress);
        // Not awaited: the next watch starts in the same workflow task (writes stay ordered).
        void status.write();
        if (historyFull()) return "continueAsNew";
        continue;
      }
      if (first.kind !== "stuck") {
        if (first.progress) this.takeProgress(first.progress);
        if (stuckReported)
          status.setCondition(
            "Stuck",
            "False",
            "AttemptEnded",
            `attempt ${attempt} ended: ${first.message}`,
          );
        return first;
      }
      stuckReported = true;
      status.setCondition("Stuck", "True", first.reason, first.message);
      await this.event("Warning", first.reason, `attempt ${attempt}: ${first.message}`);
      await status.write();
    }
  }

  /** Decides on an ended attempt: the final state, or undefined to start the next one. */
  private async afterAttempt(outcome: Outcome): Promise<WorkflowState | undefined> {
    const { status } = this;
    // A preempted or failed attempt's pods go before the next attempt (SIGTERM first: the
    // trainer checkpoints); the last attempt's pods stay, ended, for `kubectl logs`.
    const retry = retryOf(status.spec);
    const retrying =
      (outcome.kind === "preempted" && this.preemptions + 1 <= retry.preemptionBudget) ||
      (outcome.kind === "failed" && this.failures + 1 <= retry.failureLimit);
    if (retrying) await training.deleteAttempt(this.object);
    this.lastCheckpoint = (await training.latestCheckpoint(status.spec)) ?? this.lastCheckpoint;
    if (this.lastCheckpoint && (this.step === undefined || this.lastCheckpoint.step > this.step))
      this.step = this.lastCheckpoint.step;
    this.goodput.ended(outcome, this.step ?? 0, this.lastCheckpoint, now());
    const what = `attempt ${this.current}: ${outcome.message}`;

    switch (outcome.kind) {
      case "succeeded":
        if (this.lastCheckpoint) this.step = this.lastCheckpoint.step;
        return this.finish("Succeeded", "TrainingSucceeded", what);
      case "userError":
        return this.finish("Failed", outcome.reason, what);
      case "oomKilled":
        return this.finish(
          "Failed",
          "OOMKilled",
          `${what}; lower spec.training.microBatch or raise spec.resources.memory`,
        );
      case "preempted":
        this.preemptions++;
        await this.event("Warning", outcome.reason, what);
        if (this.preemptions > retry.preemptionBudget)
          return this.finish(
            "Failed",
            "PreemptionBudgetExhausted",
            `${what}; ${this.preemptions} preemptions exceed the budget of ${retry.preemptionBudget}`,
          );
        status.progressing("True", "Preempted", `${what}; resuming`);
        await status.write();
        return undefined;
      case "failed":
      case "stuck": {
        this.failures++;
        await this.event("Warning", outcome.reason, what);
        if (this.failures > retry.failureLimit)
          return this.finish(
            "Failed",
            "FailureLimitExceeded",
            `${what}; ${this.failures} failures exceed the limit of ${retry.failureLimit}`,
          );
        const wait = backoffSeconds(retry.backoffSeconds, this.failures);
        status.progressing("True", "BackOff", `${what}; retrying in ${wait} s`);
        await status.write();
        await condition(
          () => status.pending !== undefined && status.pending.spec.suspend === true,
          wait * 1000,
        );
        return undefined;
      }
    }
  }

  private async finish(
    final: "Succeeded" | "Failed",
    reason: string,
    text: string,
  ): Promise<WorkflowState> {
    this.finished = true;
    this.phase = final;
    await this.status.end(final, reason, text);
    await this.event(final === "Succeeded" ? "Normal" : "Warning", reason, text);
    return this.snapshot();
  }

  /** Ends this run without a final status (the object is gone). */
  private stop(): WorkflowState {
    this.finished = true;
    return this.snapshot();
  }

  /**
   * Hands everything on to a fresh run: the counters, the attempt whose pods run now (when
   * the history filled up during its watch), and a spec change signalled but not applied.
   */
  private async continueAsNew(midAttempt: boolean): Promise<never> {
    this.finished = true;
    await this.status.settled();
    await condition(allHandlersFinished);
    const { status } = this;
    const running = midAttempt
      ? {
          attempt: this.current,
          ranks: this.ranks,
          reports: this.reports,
          ...(this.told && { told: this.told }),
        }
      : undefined;
    return continueAsNew<typeof trainingJobWorkflow>({
      object: this.object,
      generation: status.generation,
      spec: status.spec,
      carry: {
        attempts: this.attempts,
        preemptions: this.preemptions,
        failures: this.failures,
        step: this.step,
        loss: this.loss,
        totalSteps: totalStepsOf(status.spec),
        lastCheckpoint: this.lastCheckpoint,
        startTime: this.startTime,
        conditions: status.conditions,
        ...(running && { running }),
        ...(status.pending && { pending: status.pending }),
        goodput: this.goodput.state,
      },
    });
  }
}
