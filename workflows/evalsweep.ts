// evalSweepWorkflow — MINIMAL PLACEHOLDER for the operator plumbing; the evaluation issue
// replaces it with the real one (a Temporal Schedule creating EvalJobs, bounded history).
import { runPlaceholder } from "./placeholder.ts";
import type { WorkflowInput, WorkflowState } from "./types.ts";

export async function evalSweepWorkflow(input: WorkflowInput): Promise<WorkflowState> {
  return runPlaceholder(input, { running: "Active", suspended: "Suspended" });
}
