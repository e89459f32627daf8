// The control worker's activities: everything workflows do to the outside world.
import type { KubeConfig } from "@kubernetes/client-node";
import type { ControlActivities, ObjectRef } from "../../workflows/types.ts";
import type { TrainingActivities } from "../../workflows/training-types.ts";
import { statusActivities } from "./status.ts";
import {
  trainerOptionsFromEnv,
  trainingActivities,
  type TrainingActivityOptions,
} from "./training.ts";

export function createActivities(
  kc: KubeConfig,
  opts: TrainingActivityOptions = {
    temporalAddress: process.env.TEMPORAL_ADDRESS ?? "127.0.0.1:7233",
    temporalNamespace: process.env.TEMPORAL_NAMESPACE ?? "default",
    ...trainerOptionsFromEnv(),
  },
): ControlActivities & TrainingActivities {
  const { cleanUpTraining, ...training } = trainingActivities(kc, opts);
  return {
    ...statusActivities(kc),
    ...training,
    // A TrainingJob's pods and Service go; its checkpoints stay. The evaluation workflows
    // create nothing outside Temporal yet.
    async cleanUp(object: ObjectRef): Promise<void> {
      if (object.kind === "TrainingJob") await cleanUpTraining(object);
    },
  };
}
