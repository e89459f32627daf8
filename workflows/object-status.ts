// What every herd workflow keeps of its object (TrainingJob, EvalJob, EvalSweep): the spec
// generation it acts on and the one signalled next, the conditions and message, and the status
// writes, which go one at a time, each with everything known then, so a late write never lands
// after a newer one. The workflow is the object's only status writer.
import { isCancellation, setHandler, workflowInfo } from "@temporalio/workflow";
import { activities, changedFields, setCondition, specChanged, state } from "./plumbing.ts";
import {
  maxRecoveries,
  type Condition,
  type ObjectRef,
  type Recovery,
  type SpecChanged,
  type StatusWriteResult,
  type WorkflowInput,
  type WorkflowState,
} from "./types.ts";

export class ObjectStatus {
  readonly object: ObjectRef;
  readonly workflowId = workflowInfo().workflowId;
  generation: number;
  spec: Record<string, unknown>;
  /** The newest generation signalled and not yet applied. */
  pending: SpecChanged | undefined;
  /** Spec fields applied while running, e.g. "retry". */
  readonly applied: string[] = [];
  conditions: Condition[];
  message = "";
  /** Set once a write found the object deleted or replaced: the workflow should end. */
  gone = false;
  /** Why the operator started this workflow again, when it did. */
  readonly recovery: Recovery | undefined;
  private chain: Promise<StatusWriteResult> = Promise.resolve("written");

  /**
   * `fields` gives the kind's own status fields (phase first) at the time of each write;
   * `suspended` whether the current spec asks to be suspended.
   */
  constructor(
    input: WorkflowInput & { pending?: SpecChanged },
    conditions: Condition[],
    private readonly fields: () => Record<string, unknown> & { phase: string },
    private readonly suspended: () => boolean = () => false,
  ) {
    this.object = input.object;
    this.generation = input.generation;
    this.spec = input.spec;
    this.pending = input.pending;
    this.recovery = input.recovery;
    this.conditions = conditions;
    // Repeats and stale generations are dropped: the operator may signal more than once.
    setHandler(specChanged, (update) => {
      if (update.generation > (this.pending?.generation ?? this.generation)) this.pending = update;
    });
    setHandler(state, () => this.snapshot());
  }

  snapshot(): WorkflowState {
    return {
      phase: this.fields().phase,
      observedGeneration: this.generation,
      suspended: this.suspended(),
      applied: [...this.applied],
    };
  }

  /** Moves to the pending generation, if any; returns the fields it changed (or undefined). */
  applyPending(): string[] | undefined {
    const update = this.pending;
    if (!update) return undefined;
    this.pending = undefined;
    const fields = changedFields(this.spec, update.spec);
    this.spec = update.spec;
    this.generation = update.generation;
    for (const f of fields) if (!this.applied.includes(f)) this.applied.push(f);
    return fields;
  }

  /** Sets a condition, at the current generation. */
  setCondition(type: string, status: Condition["status"], reason: string, message: string) {
    this.conditions = setCondition(this.conditions, {
      type,
      status,
      reason,
      message,
      observedGeneration: this.generation,
    });
  }

  /**
   * Condition Stuck for a create refused for a while (a quota); true when it was not already
   * stuck for this reason (the caller then records an event).
   */
  stuck(reason: string, message: string): boolean {
    const was = this.conditions.some(
      (c) => c.type === "Stuck" && c.status === "True" && c.reason === reason,
    );
    this.setCondition("Stuck", "True", reason, message);
    return !was;
  }

  /** Clears condition Stuck once what was refused is created. */
  unstuck(message: string) {
    if (this.conditions.some((c) => c.type === "Stuck" && c.status === "True"))
      this.setCondition("Stuck", "False", "Created", message);
  }

  /** The Progressing condition, whose message is also status.message. */
  progressing(status: "True" | "False", reason: string, text: string) {
    this.message = text;
    this.setCondition("Progressing", status, reason, text);
  }

  /** Writes status after the writes before it; a write cut short does not stop this one. */
  write(extra: Record<string, unknown> = {}): Promise<StatusWriteResult> {
    this.chain = this.chain
      .then(
        () => undefined,
        () => undefined,
      )
      .then(async () => {
        const status = {
          ...this.fields(),
          conditions: this.conditions,
          workflowId: this.workflowId,
          observedGeneration: this.generation,
          message: this.message,
          ...(this.recovery && { recoveries: this.recovery.count }),
          ...extra,
        };
        const r = await activities.patchStatus({ object: this.object, status });
        if (r === "gone") this.gone = true;
        return r;
      });
    this.chain.catch(ignoreCancellation); // a write cut short by cancellation is not waited for
    return this.chain;
  }

  /** Waits for the writes in flight. */
  async settled(): Promise<void> {
    await this.chain.catch(() => undefined);
  }

  /**
   * For a workflow started again by the operator: says so in the Progressing condition (its
   * message is returned, for the event) and returns whether the object was lost too often to
   * go on (the caller then ends it Failed, reason WorkflowLost).
   */
  recovered(): { message: string; exhausted: boolean } | undefined {
    const r = this.recovery;
    if (!r) return undefined;
    const exhausted = r.count > maxRecoveries;
    const message =
      `the workflow was lost (${r.reason}); ` +
      (exhausted
        ? `${r.count} recoveries exceed the limit of ${maxRecoveries}`
        : `started again, recovery ${r.count} of ${maxRecoveries}`);
    if (!exhausted) this.progressing("True", r.reason, message);
    return { message, exhausted };
  }

  /** The terminal condition (Succeeded or Failed) with Progressing False, written. */
  async end(
    final: "Succeeded" | "Failed",
    reason: string,
    text: string,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    this.progressing("False", reason, text);
    this.setCondition(final, "True", reason, text);
    await this.write({ completionTime: new Date().toISOString(), ...extra });
  }
}

export function ignoreCancellation(err: unknown): void {
  if (!isCancellation(err)) throw err;
}
