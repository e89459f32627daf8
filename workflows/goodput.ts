// Goodput: how much of a TrainingJob's wall time went into training that was kept. Each
// attempt is recorded when it ends (start, end, outcome, the steps it made and lost, how long
// the checkpoint on SIGTERM took, how long it took to get back to training), and the job's
// goodput is the productive time of all its attempts over its wall time, less the time it was
// suspended on purpose. Plain functions of plain data: the workflow calls them, a test checks
// them.
//
// Times come from two clocks: the workflow's (pods created, attempt ended) and rank 0's node
// (the step times in its log, the checkpoint's time in storage). Seconds between the two are as
// good as the nodes' clock synchronisation.
import type { CheckpointInfo, Timed } from "./training-types.ts";

/** Attempts kept in status.attemptHistory (the newest); the totals count them all. */
export const attemptHistoryLimit = 20;

export interface AttemptRecord {
  attempt: number;
  /** When its pods were created. */
  start: string;
  /** When the workflow learned how it ended. */
  end: string;
  /** How it ended: an outcome kind (succeeded, preempted, failed, …) or "suspended". */
  outcome: string;
  reason: string;
  /** The step it resumed from (0: the job's start) and the last step it made. */
  fromStep: number;
  toStep: number;
  /** Steps it made that no durable checkpoint kept: trained again by the next attempt. */
  stepsLost: number;
  /** From the end of the attempt before (the job's start, for the first) to its first step. */
  resumeSeconds?: number;
  /** From the stop request (SIGTERM) to its checkpoint being durable. */
  checkpointSeconds?: number;
  /** Time spent on the steps that were kept. */
  productiveSeconds: number;
}

export interface Goodput {
  /** productiveSeconds / wallSeconds. */
  ratio: number;
  productiveSeconds: number;
  /** From the job's start to now (or its end), less the time it was suspended. */
  wallSeconds: number;
  /** Time the job was suspended (not counted in wallSeconds). */
  suspendedSeconds: number;
  /** Steps trained again because an attempt ended after its last durable checkpoint. */
  stepsLost: number;
}

/** What the workflow knows of an attempt when it ends. */
export interface EndedAttempt {
  attempt: number;
  start: string;
  end: string;
  outcome: { kind: string; reason: string; stopAt?: string };
  fromStep: number;
  /** The first and the last step rank 0 logged, as far as the watch read them. */
  first?: Timed;
  last?: Timed;
  /** The step it reached by the workflow's count (progress reports, the final log read). */
  step: number;
  /** The newest durable checkpoint now: the next attempt resumes from it. */
  checkpoint?: CheckpointInfo;
  /** When the attempt before ended, or the job started. */
  previousEnd: string;
}

const seconds = (from: string, to: string) => (Date.parse(to) - Date.parse(from)) / 1000;
const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Seconds per step between two logged steps; undefined without two distinct steps. */
function secondsPerStep(first?: Timed, last?: Timed): number | undefined {
  if (!first || !last || last.step <= first.step) return undefined;
  return seconds(first.time, last.time) / (last.step - first.step);
}

/**
 * Time spent on `kept` steps, at the pace between the first and last logged step (0 when the
 * log gave fewer than two).
 */
const productiveSeconds = (kept: number, first?: Timed, last?: Timed) =>
  round(Math.max(0, kept) * (secondsPerStep(first, last) ?? 0));

export function attemptRecord(a: EndedAttempt): AttemptRecord {
  const toStep = Math.max(a.step, a.last?.step ?? 0, a.fromStep);
  const kept = a.outcome.kind === "succeeded" ? toStep : (a.checkpoint?.step ?? 0);
  const stepsLost = Math.max(0, toStep - Math.max(kept, a.fromStep));
  // The first step's own time: back from the first one logged, at the attempt's pace.
  const perStep = secondsPerStep(a.first, a.last) ?? 0;
  const firstStepTime =
    a.first && Date.parse(a.first.time) - (a.first.step - a.fromStep - 1) * perStep * 1000;
  const stopAt = a.outcome.stopAt;
  const checkpointSeconds =
    stopAt && a.checkpoint && a.checkpoint.time >= stopAt
      ? seconds(stopAt, a.checkpoint.time)
      : undefined;
  return {
    attempt: a.attempt,
    start: a.start,
    end: a.end,
    outcome: a.outcome.kind,
    reason: a.outcome.reason,
    fromStep: a.fromStep,
    toStep,
    stepsLost,
    ...(firstStepTime !== undefined && {
      resumeSeconds: round(Math.max(0, (firstStepTime - Date.parse(a.previousEnd)) / 1000)),
    }),
    ...(checkpointSeconds !== undefined && { checkpointSeconds: round(checkpointSeconds) }),
    productiveSeconds: productiveSeconds(toStep - a.fromStep - stepsLost, a.first, a.last),
  };
}

/** What a workflow run hands on (continue-as-new) or takes back from status (recovery). */
export interface GoodputState {
  history: AttemptRecord[];
  productiveSeconds: number;
  stepsLost: number;
  suspendedSeconds: number;
  previousEnd: string;
  /** The attempt running now. */
  current?: { attempt: number; start: string; fromStep: number; first?: Timed; last?: Timed };
  /** Set while the job is suspended. */
  suspendedSince?: string;
}

/** The goodput state of a job that starts at `startTime` with no attempt yet. */
export const freshGoodput = (startTime: string): GoodputState => ({
  history: [],
  productiveSeconds: 0,
  stepsLost: 0,
  suspendedSeconds: 0,
  previousEnd: startTime,
});

/** The state a recovered workflow takes back from the object's status. */
export function goodputOfStatus(s: Record<string, unknown>, startTime: string): GoodputState {
  const g = s.goodput as Partial<Goodput> | undefined;
  const history = (s.attemptHistory as AttemptRecord[] | undefined) ?? [];
  return {
    ...freshGoodput(startTime),
    history,
    productiveSeconds: g?.productiveSeconds ?? 0,
    stepsLost: g?.stepsLost ?? 0,
    suspendedSeconds: g?.suspendedSeconds ?? 0,
    previousEnd: history.at(-1)?.end ?? startTime,
  };
}

/**
 * The ledger the training workflow keeps: told when an attempt starts, how far it got, when
 * it ends and when the job is suspended; writes status.attemptHistory and status.goodput.
 * `now` is the workflow's clock.
 */
export class GoodputLedger {
  constructor(
    readonly state: GoodputState,
    private readonly startTime: string,
  ) {}

  started(attempt: number, fromStep: number, now: string) {
    this.state.current = { attempt, start: now, fromStep };
  }

  /** A report of the running attempt: its first logged step is kept, its last updated. */
  progress(p: { step: number; time?: string; first?: Timed }) {
    const c = this.state.current;
    if (!c) return;
    c.first ??= p.first;
    if (p.time && p.step >= (c.last?.step ?? -1)) c.last = { step: p.step, time: p.time };
  }

  /** The running attempt ended: recorded, and its productive time and lost steps counted. */
  ended(
    outcome: EndedAttempt["outcome"],
    step: number,
    checkpoint: CheckpointInfo | undefined,
    now: string,
  ) {
    const c = this.state.current;
    if (!c) return;
    const r = attemptRecord({
      ...c,
      end: now,
      outcome,
      step,
      checkpoint,
      previousEnd: this.state.previousEnd,
    });
    this.state.history = [...this.state.history, r].slice(-attemptHistoryLimit);
    this.state.productiveSeconds += r.productiveSeconds;
    this.state.stepsLost += r.stepsLost;
    this.state.previousEnd = now;
    this.state.current = undefined;
  }

  suspended(now: string) {
    this.state.suspendedSince ??= now;
  }

  /** Resumed: the suspension does not count as wall time, nor in the next attempt's resume. */
  resumed(now: string) {
    const since = this.state.suspendedSince;
    if (!since) return;
    this.state.suspendedSeconds += seconds(since, now);
    this.state.previousEnd = now;
    this.state.suspendedSince = undefined;
  }

  /** status.attemptHistory and status.goodput at `now` (a running attempt counts so far). */
  status(now: string): { attemptHistory?: AttemptRecord[]; goodput: Goodput } {
    const { state } = this;
    const c = state.current;
    const running = c ? productiveSeconds((c.last?.step ?? 0) - c.fromStep, c.first, c.last) : 0;
    const suspendedNow = state.suspendedSince ? seconds(state.suspendedSince, now) : 0;
    const suspendedSeconds = state.suspendedSeconds + suspendedNow;
    const wallSeconds = Math.max(0, seconds(this.startTime, now) - suspendedSeconds);
    const productive = state.productiveSeconds + running;
    return {
      ...(state.history.length > 0 && { attemptHistory: state.history }),
      goodput: {
        ratio: wallSeconds > 0 ? round(Math.min(1, productive / wallSeconds), 4) : 0,
        productiveSeconds: round(productive),
        wallSeconds: round(wallSeconds),
        suspendedSeconds: round(suspendedSeconds),
        stepsLost: state.stepsLost,
      },
    };
  }
}
