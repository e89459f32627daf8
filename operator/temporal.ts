// WorkflowAccess on a real Temporal server. Starting is idempotent through the workflow id:
// the conflict policy FAIL plus the reuse policy REJECT_DUPLICATE make a second start of the
// same id (running or closed) fail with WorkflowExecutionAlreadyStartedError, which means
// "reuse the one there". Unlike USE_EXISTING, this also tells which replica really started it,
// so exactly one replica records the WorkflowStarted event.
import { Client, Connection, WorkflowNotFoundError } from "@temporalio/client";
import { WorkflowExecutionAlreadyStartedError } from "@temporalio/common";
import {
  controlTaskQueue,
  specChangedSignal,
  type SpecChanged,
  type WorkflowInput,
} from "../workflows/types.ts";
import { temporalConnectionOptions } from "../workers/temporal-tls.ts";
import type { WorkflowAccess, WorkflowState } from "./reconcile.ts";

/** True for the errors Temporal gives when signalling or cancelling a closed workflow. */
function isClosedOrMissing(err: unknown): boolean {
  if (err instanceof WorkflowNotFoundError) return true;
  const message = err instanceof Error ? err.message : String(err);
  return /already completed|not found|workflow execution already/i.test(message);
}

/** Temporal's execution status → WorkflowState (running and continued-as-new: running). */
const closedAs: Record<string, WorkflowState> = {
  COMPLETED: "completed",
  CANCELLED: "canceled",
  TERMINATED: "terminated",
  FAILED: "failed",
  TIMED_OUT: "timedOut",
};

export class TemporalWorkflows implements WorkflowAccess {
  constructor(
    private readonly client: Client,
    private readonly taskQueue = controlTaskQueue,
  ) {}

  static async connect(address: string, namespace = "default"): Promise<TemporalWorkflows> {
    const connection = await Connection.connect(temporalConnectionOptions(address));
    return new TemporalWorkflows(new Client({ connection, namespace }));
  }

  async start(
    workflowType: string,
    workflowId: string,
    input: WorkflowInput,
    replaceClosed = false,
  ) {
    try {
      await this.client.workflow.start(workflowType, {
        taskQueue: this.taskQueue,
        workflowId,
        args: [input],
        workflowIdConflictPolicy: "FAIL",
        workflowIdReusePolicy: replaceClosed ? "ALLOW_DUPLICATE" : "REJECT_DUPLICATE",
      });
      return "started" as const;
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return "exists" as const;
      throw err;
    }
  }

  async signalSpec(workflowId: string, update: SpecChanged): Promise<void> {
    try {
      await this.client.workflow.getHandle(workflowId).signal(specChangedSignal, update);
    } catch (err) {
      if (!isClosedOrMissing(err)) throw err;
    }
  }

  async cancel(workflowId: string): Promise<void> {
    try {
      await this.client.workflow.getHandle(workflowId).cancel();
    } catch (err) {
      if (!isClosedOrMissing(err)) throw err;
    }
  }

  async state(workflowId: string): Promise<WorkflowState> {
    try {
      const d = await this.client.workflow.getHandle(workflowId).describe();
      return closedAs[d.status.name] ?? "running";
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return "missing";
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.client.connection.close();
  }
}
