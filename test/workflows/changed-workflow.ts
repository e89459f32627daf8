// A trainingJobWorkflow whose first command differs from the real one's: replay.test.ts
// replays the recorded history against it to show that the replay check can fail.
import { proxyActivities } from "@temporalio/workflow";
import type { ControlActivities } from "../../workflows/types.ts";
import type { TrainingWorkflowInput } from "../../workflows/training-types.ts";

const { cleanUp } = proxyActivities<ControlActivities>({ startToCloseTimeout: "1 minute" });

export async function trainingJobWorkflow(input: TrainingWorkflowInput): Promise<void> {
  await cleanUp(input.object);
}
