// EvalJob (herd.dev/v1alpha1): evaluate one checkpoint on a set of tasks, as in the LLaMA
// paper's zero- and few-shot evaluations: multiple choice scored by log-likelihood (acc and
// acc_norm) and perplexity. Single source of truth for the kind, like trainingjob.ts.
import { z } from "zod";
import {
  apiVersion,
  objectMeta,
  objectName,
  resources,
  storageUri,
  workflowStatusFields,
} from "./common.ts";
import { immutable, validated } from "./rules.ts";
import { tokenizerSpecChecked } from "./trainingjob.ts";
import { evalTasks, metricName } from "./evaltask.ts";

export const checkpointFormat = z
  .enum(["herd", "safetensors", "gguf", "llama2c"])
  .describe(
    "herd: a herd checkpoint directory (step-NNNNNNNNN/ or a folder with LATEST); safetensors: a Hugging Face LLaMA folder with config.json; gguf: a GGUF file; llama2c: a llama2.c .bin file.",
  );

export const checkpointRef = z
  .object({
    trainingJob: z
      .object({
        name: objectName.describe("The TrainingJob, in the same namespace."),
        step: z
          .int()
          .min(0)
          .optional()
          .describe(
            "Checkpoint step to evaluate; omit for the latest durable checkpoint when the job runs.",
          ),
      })
      .optional()
      .describe("Evaluate a checkpoint of a TrainingJob."),
    uri: storageUri
      .optional()
      .describe("Evaluate the checkpoint at this path or s3:// URI instead of a TrainingJob's."),
    format: checkpointFormat.default("herd"),
  })
  .describe("Which checkpoint to evaluate: a TrainingJob's (a step or the latest) or a URI.");

export const checkpointRefChecked = validated(checkpointRef, [
  {
    rule: "has(self.trainingJob) != has(self.uri)",
    message: "give exactly one of checkpoint.trainingJob and checkpoint.uri",
    fieldPath: ".uri",
    check: (c) => (c.trainingJob !== undefined) !== (c.uri !== undefined),
  },
  {
    rule: "!has(self.trainingJob) || self.format == 'herd'",
    message: "checkpoint.format must be herd for a TrainingJob's checkpoints",
    fieldPath: ".format",
    check: (c) => c.trainingJob === undefined || c.format === "herd",
  },
]);

/** Everything an EvalJob needs besides the checkpoint: also the EvalSweep's template. */
const evalJobSettings = {
  tokenizer: tokenizerSpecChecked
    .optional()
    .describe(
      "Tokenizer of the checkpoint; defaults to the TrainingJob's. Required for a uri in herd or llama2c format.",
    ),
  tasks: evalTasks,
  batchSize: z.int().positive().max(4096).default(8).describe("Sequences scored per forward pass."),
  gpus: z
    .int()
    .min(0)
    .max(64)
    .default(0)
    .describe(
      "GPUs requested for the evaluator pod. Evaluation runs on the CPU engine for now (there is no CUDA inference path yet), so GPUs only reserve devices.",
    ),
  resources: resources.prefault({}).describe("Where and how the evaluator pod runs."),
};

export const evalJobTemplateSpec = z
  .object(evalJobSettings)
  .describe("An EvalJob spec without the checkpoint, which the sweep fills in.");

const evalJobSpecFields = z
  .object({
    checkpoint: immutable(checkpointRefChecked, "spec.checkpoint"),
    ...evalJobSettings,
    tokenizer: immutable(evalJobSettings.tokenizer, "spec.tokenizer"),
    tasks: immutable(evalTasks, "spec.tasks"),
  })
  .describe("Which checkpoint to evaluate, on which tasks, where.");

export const evalJobSpec = validated(evalJobSpecFields, [
  {
    rule: "has(self.tokenizer) || has(self.checkpoint.trainingJob) || self.checkpoint.format in ['safetensors', 'gguf']",
    message: "tokenizer is required when checkpoint.uri is in herd or llama2c format",
    fieldPath: ".tokenizer",
    reason: "FieldValueRequired",
    check: (s) =>
      s.tokenizer !== undefined ||
      s.checkpoint.trainingJob !== undefined ||
      s.checkpoint.format === "safetensors" ||
      s.checkpoint.format === "gguf",
  },
]);

export const metricResult = z
  .object({
    name: metricName.describe(
      "acc, acc_norm, acc_per_token, acc_uncond, mc2, pct_stereotype, likelihood_diff (multiple choice; for a task with groups, the macro average over them); perplexity, byte_perplexity, bits_per_byte (perplexity tasks).",
    ),
    value: z.number().describe("The metric over the evaluated examples."),
    stderr: z
      .number()
      .min(0)
      .optional()
      .describe("Standard error of the mean (bootstrap for perplexity)."),
  })
  .describe("One metric of one task.");

export const taskResult = z
  .object({
    task: z.string().max(63).describe("The task's name."),
    examples: z.int().min(0).describe("Examples evaluated."),
    metrics: z.array(metricResult).max(8).describe("The task's metrics."),
  })
  .describe("Results of one task.");

export const evalJobPhase = z.enum(["Pending", "Running", "Succeeded", "Failed"]);

export const evalJobStatus = z
  .object({
    phase: evalJobPhase.optional().describe("Pending, Running, Succeeded or Failed."),
    ...workflowStatusFields,
    checkpoint: z
      .object({
        uri: z.string().max(2048).describe("The checkpoint that was evaluated."),
        step: z.int().min(0).optional().describe("Its training step, when known."),
        tokensSeen: z.int().min(0).optional().describe("Training tokens it had seen, when known."),
      })
      .optional()
      .describe("The checkpoint resolved from spec.checkpoint."),
    results: z.array(taskResult).max(32).optional().describe("Per-task results."),
    resultsUri: z
      .string()
      .max(2048)
      .optional()
      .describe("The results file beside the checkpoint (<checkpoint>.eval-<name>.json)."),
    attempts: z.int().min(0).optional().describe("Evaluator pods started so far."),
    preemptions: z
      .int()
      .min(0)
      .optional()
      .describe("Attempts ended by preemption (each evaluated again)."),
    headline: z
      .object({
        task: z.string().max(63).describe("Task of the headline metric."),
        metric: z.string().max(32).describe("Name of the headline metric."),
        value: z.number().describe("Its value."),
      })
      .optional()
      .describe(
        "The first task's main metric (acc_norm or perplexity), for kubectl get's columns.",
      ),
    startTime: z.string().max(64).optional().describe("When evaluation started."),
    completionTime: z.string().max(64).optional().describe("When it succeeded or failed."),
  })
  .describe("Observed state, written by the job's workflow only.");

export const evalJob = z
  .object({
    apiVersion: z.literal(apiVersion).describe("herd.dev/v1alpha1"),
    kind: z.literal("EvalJob").describe("EvalJob"),
    metadata: objectMeta,
    spec: evalJobSpec,
    status: evalJobStatus.optional(),
  })
  .describe("Evaluates one checkpoint on zero- and few-shot tasks.");

export type EvalJob = z.output<typeof evalJob>;
export type EvalJobSpec = z.output<typeof evalJobSpec>;
export type EvalJobStatus = z.output<typeof evalJobStatus>;
