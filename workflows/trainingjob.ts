// trainingJobWorkflow — MINIMAL PLACEHOLDER. It proves the operator → Temporal → status
// plumbing (start recorded, signals honoured, cancellation cleaned up); the training issue
// replaces it with the real attempt loop (pods, outcomes, checkpoints, continue-as-new).
import { runPlaceholder } from "./placeholder.ts";
import type { WorkflowInput, WorkflowState } from "./types.ts";

export async function trainingJobWorkflow(input: WorkflowInput): Promise<WorkflowState> {
  return runPlaceholder(input, { running: "Running", suspended: "Suspended" });
}
