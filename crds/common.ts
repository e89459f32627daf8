// Schema pieces shared by the herd kinds. Every field carries a description: the generated
// CRDs use them, so `kubectl explain` documents the API from this one source.
import { z } from "zod";

export const group = "herd.dev";
export const version = "v1alpha1";
export const apiVersion = `${group}/${version}`;

/** Where a checkpoint, shard folder or tokenizer lives: a local path, file://, or s3://. */
export const storageUri = z
  .string()
  .min(1)
  .regex(
    /^(s3:\/\/[^/]+(\/.*)?|file:\/\/\/.*|[^:]+)$/,
    "must be a path, file:///path or s3://bucket/prefix",
  )
  .describe(
    "A local path (relative paths resolve against the manifest's folder in --local runs), file:///path, or s3://bucket/prefix.",
  );

export const quantity = z
  .string()
  .regex(
    /^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$/,
    "must be a Kubernetes quantity such as 500m, 4 or 16Gi",
  )
  .describe("A Kubernetes resource quantity, e.g. 500m, 4 or 16Gi.");

export const toleration = z
  .object({
    key: z
      .string()
      .optional()
      .describe("Taint key the toleration applies to; empty matches all keys."),
    operator: z.enum(["Exists", "Equal"]).default("Equal").describe("Exists or Equal."),
    value: z.string().optional().describe("Taint value to match when operator is Equal."),
    effect: z
      .enum(["NoSchedule", "PreferNoSchedule", "NoExecute"])
      .optional()
      .describe("Taint effect to match; empty matches all effects."),
    tolerationSeconds: z
      .int()
      .min(0)
      .optional()
      .describe("For NoExecute: how long the pod stays bound after the taint appears."),
  })
  .describe("A pod toleration, as in the Pod API.");

export const resources = z
  .object({
    image: z
      .string()
      .min(1)
      .default("herd/trainer:latest")
      .describe("Container image of the trainer or evaluator pods."),
    gpuResource: z
      .string()
      .default("nvidia.com/gpu")
      .describe("Extended resource name that counts GPUs on the nodes."),
    cpu: quantity.default("2").describe("CPU request and limit per worker pod."),
    memory: quantity.default("4Gi").describe("Memory request and limit per worker pod."),
    nodeSelector: z
      .record(z.string(), z.string())
      .optional()
      .describe("Node labels the pods must match."),
    tolerations: z.array(toleration).optional().describe("Tolerations for the pods."),
    priorityClassName: z
      .string()
      .optional()
      .describe("PriorityClass of the pods; lower priority can be preempted by the scheduler."),
  })
  .describe("Where and how the worker pods run.");

export const condition = z
  .object({
    type: z.string().describe("Condition type, e.g. Ready, Progressing, Failed."),
    status: z.enum(["True", "False", "Unknown"]).describe("True, False or Unknown."),
    reason: z.string().describe("One CamelCase word saying why."),
    message: z.string().default("").describe("Human-readable detail."),
    lastTransitionTime: z.string().describe("When the status last changed (RFC 3339)."),
    observedGeneration: z
      .int()
      .min(0)
      .optional()
      .describe("The spec generation this condition describes."),
  })
  .describe("A status condition, as in metav1.Condition.");

/** Standard object metadata as far as herd reads it. */
export const objectMeta = z
  .object({
    name: z.string().min(1).max(253),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    generation: z.int().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  })
  .loose();
