// The control worker's activities: everything workflows do to the outside world.
import type { KubeConfig } from "@kubernetes/client-node";
import type { ControlActivities, ObjectRef } from "../../workflows/types.ts";
import { statusActivities } from "./status.ts";

export function createActivities(kc: KubeConfig): ControlActivities {
  return {
    ...statusActivities(kc),
    // The minimal workflows create nothing outside Temporal, so there is nothing to remove
    // yet; the training and evaluation issues delete their pods and schedules here.
    async cleanUp(_object: ObjectRef): Promise<void> {},
  };
}
