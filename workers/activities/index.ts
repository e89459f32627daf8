// The control worker's activities: everything workflows do to the outside world.
import type { KubeConfig } from "@kubernetes/client-node";
import type { ControlActivities, ObjectRef } from "../../workflows/types.ts";
import type { TrainingActivities } from "../../workflows/training-types.ts";
import type { EvalActivities, SweepActivities } from "../../workflows/eval-types.ts";
import { statusActivities } from "./status.ts";
import {
  trainerOptionsFromEnv,
  trainingActivities,
  type TrainingActivityOptions,
} from "./training.ts";
import { evalActivities } from "./eval.ts";
import { sweepActivities, type SweepActivityOptions } from "./sweep.ts";

/** What the activities are configured with: the trainer pods' settings and Temporal's address. */
export type WorkerActivityOptions = TrainingActivityOptions & SweepActivityOptions;

export function createActivities(
  kc: KubeConfig,
  opts: WorkerActivityOptions = {
    temporalAddress: process.env.TEMPORAL_ADDRESS ?? "127.0.0.1:7233",
    temporalNamespace: process.env.TEMPORAL_NAMESPACE ?? "default",
    ...trainerOptionsFromEnv(),
  },
): ControlActivities & TrainingActivities & EvalActivities & SweepActivities {
  const { cleanUpTraining, ...training } = trainingActivities(kc, opts);
  const evaluation = evalActivities(kc, opts);
  const sweep = sweepActivities(kc, opts);
  return {
    ...statusActivities(kc),
    ...training,
    ...evaluation,
    ...sweep,
    // What each kind's workflow created outside Temporal goes; checkpoints and results files
    // stay. A sweep's EvalJobs go with it through their owner references.
    async cleanUp(object: ObjectRef): Promise<void> {
      if (object.kind === "TrainingJob") await cleanUpTraining(object);
      else if (object.kind === "EvalJob") await evaluation.deleteEvaluators(object);
      else await sweep.deleteSchedule(object);
    },
  };
}
