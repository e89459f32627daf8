// The three herd kinds in one table: schema, names and printer columns. The generator, the
// operator and the workers read the kinds from here.
import type { z } from "zod";
import { group, version } from "./common.ts";
import { evalJob, evalJobSpec } from "./evaljob.ts";
import { evalSweep, evalSweepSpec } from "./evalsweep.ts";
import { trainingJob, trainingJobSpec } from "./trainingjob.ts";

export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description: string;
  priority?: number;
}

export interface KindInfo {
  kind: "TrainingJob" | "EvalJob" | "EvalSweep";
  plural: string;
  singular: string;
  shortNames: string[];
  /** The whole object, as in a manifest. */
  schema: z.ZodType;
  /** The spec alone: what the operator validates before starting a workflow. */
  spec: z.ZodType<Record<string, unknown>>;
  printerColumns: PrinterColumn[];
}

const age: PrinterColumn = {
  name: "Age",
  type: "date",
  jsonPath: ".metadata.creationTimestamp",
  description: "Time since the object was created.",
};

export const kinds: KindInfo[] = [
  {
    kind: "TrainingJob",
    plural: "trainingjobs",
    singular: "trainingjob",
    shortNames: ["tj"],
    schema: trainingJob,
    spec: trainingJobSpec,
    printerColumns: [
      { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Job phase." },
      { name: "Step", type: "integer", jsonPath: ".status.step", description: "Steps done." },
      {
        name: "Total",
        type: "integer",
        jsonPath: ".status.totalSteps",
        description: "Steps in all.",
        priority: 1,
      },
      { name: "Loss", type: "number", jsonPath: ".status.loss", description: "Training loss." },
      {
        name: "Preemptions",
        type: "integer",
        jsonPath: ".status.preemptions",
        description: "Attempts ended by preemption.",
      },
      age,
    ],
  },
  {
    kind: "EvalJob",
    plural: "evaljobs",
    singular: "evaljob",
    shortNames: ["ej"],
    schema: evalJob,
    spec: evalJobSpec,
    printerColumns: [
      { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Job phase." },
      {
        name: "Task",
        type: "string",
        jsonPath: ".status.headline.task",
        description: "Task of the headline metric.",
      },
      {
        name: "Metric",
        type: "string",
        jsonPath: ".status.headline.metric",
        description: "Headline metric.",
      },
      {
        name: "Value",
        type: "number",
        jsonPath: ".status.headline.value",
        description: "Headline metric's value.",
      },
      age,
    ],
  },
  {
    kind: "EvalSweep",
    plural: "evalsweeps",
    singular: "evalsweep",
    shortNames: ["es"],
    schema: evalSweep,
    spec: evalSweepSpec,
    printerColumns: [
      {
        name: "TrainingJob",
        type: "string",
        jsonPath: ".spec.trainingJob.name",
        description: "The TrainingJob evaluated.",
      },
      {
        name: "Last Run",
        type: "date",
        jsonPath: ".status.lastRunTime",
        description: "When the last run started.",
      },
      {
        name: "Next Run",
        type: "date",
        jsonPath: ".status.nextRunTime",
        description: "When the next run is due.",
      },
      {
        name: "Suspended",
        type: "boolean",
        jsonPath: ".spec.suspend",
        description: "Whether the schedule is paused.",
        priority: 1,
      },
      age,
    ],
  },
];

export type KindName = KindInfo["kind"];

export function kindInfo(kind: KindName): KindInfo {
  const info = kinds.find((k) => k.kind === kind);
  if (!info) throw new Error(`unknown kind ${kind}`);
  return info;
}

export const crdApi = { group, version };
