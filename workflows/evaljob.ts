// evalJobWorkflow — MINIMAL PLACEHOLDER for the operator plumbing; the evaluation issue
// replaces it with the real one (resolve checkpoint, run the evaluator pod, record results).
import { runPlaceholder } from "./placeholder.ts";
import type { WorkflowInput, WorkflowState } from "./types.ts";

export async function evalJobWorkflow(input: WorkflowInput): Promise<WorkflowState> {
  return runPlaceholder(input, { running: "Running", suspended: "Running" });
}
