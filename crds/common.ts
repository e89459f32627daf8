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
  .max(2048)
  .regex(
    /^(s3:\/\/[^/]+(\/.*)?|file:\/\/\/.*|[^:]+)$/,
    "must be a path, file:///path or s3://bucket/prefix",
  )
  .describe(
    "A local path (relative paths resolve against the manifest's folder in --local runs), file:///path, or s3://bucket/prefix.",
  );

/** The image of jobs that name none; the worker may stand its own in (HERD_TRAINER_IMAGE). */
export const defaultTrainerImage = "herd/trainer:latest";

export const quantity = z
  .string()
  .max(64)
  .regex(
    /^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$/,
    "must be a Kubernetes quantity such as 500m, 4 or 16Gi",
  )
  .describe("A Kubernetes resource quantity, e.g. 500m, 4 or 16Gi.");

export const toleration = z
  .object({
    key: z
      .string()
      .max(253)
      .optional()
      .describe("Taint key the toleration applies to; empty matches all keys."),
    operator: z.enum(["Exists", "Equal"]).default("Equal").describe("Exists or Equal."),
    value: z.string().max(253).optional().describe("Taint value to match when operator is Equal."),
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
      .max(512)
      .default(defaultTrainerImage)
      .describe("Container image of the trainer or evaluator pods."),
    gpuResource: z
      .string()
      .min(1)
      .max(253)
      .default("nvidia.com/gpu")
      .describe("Extended resource name that counts GPUs on the nodes."),
    cpu: quantity.default("2").describe("CPU request and limit per worker pod."),
    memory: quantity.default("4Gi").describe("Memory request and limit per worker pod."),
    ephemeralStorage: quantity
      .optional()
      .describe(
        "Local disk per pod for its scratch space (/scratch: the staging copy of S3 checkpoints, the cache of S3 shards, an evaluator's downloaded model): the pod's ephemeral-storage request and limit, and the scratch volume's sizeLimit. A pod that outgrows it is evicted by the kubelet and the job fails, naming this field. Unset: no limit, and the node's disk is shared with whatever else runs there.",
      ),
    nodeSelector: z
      .record(z.string(), z.string())
      .optional()
      .describe("Node labels the pods must match."),
    tolerations: z.array(toleration).max(32).optional().describe("Tolerations for the pods."),
    priorityClassName: z
      .string()
      .max(253)
      .optional()
      .describe("PriorityClass of the pods; lower priority can be preempted by the scheduler."),
  })
  .describe("Where and how the worker pods run.");

export const condition = z
  .object({
    type: z.string().max(316).describe("Condition type, e.g. Ready, Progressing, Failed."),
    status: z.enum(["True", "False", "Unknown"]).describe("True, False or Unknown."),
    reason: z.string().max(1024).describe("One CamelCase word saying why."),
    message: z.string().max(32768).default("").describe("Human-readable detail."),
    lastTransitionTime: z.string().max(64).describe("When the status last changed (RFC 3339)."),
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

/** The name of another object in the same namespace (a DNS subdomain name). */
export const objectName = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
    "must be a lower-case DNS name: letters, digits, '-' and '.'",
  )
  .describe("Name of an object in the same namespace.");

/** Status fields every herd kind carries: written by the object's workflow only. */
export const workflowStatusFields = {
  conditions: z.array(condition).max(32).optional().describe("Observations of the object's state."),
  workflowId: z
    .string()
    .max(1024)
    .optional()
    .describe(
      "The Temporal workflow that drives this object: herd/<kind>/<namespace>/<name>/<uid>.",
    ),
  observedGeneration: z
    .int()
    .min(0)
    .optional()
    .describe("The metadata.generation of the spec this status reflects."),
  message: z.string().max(32768).optional().describe("Why the object is in its phase, in words."),
  recoveries: z
    .int()
    .min(0)
    .optional()
    .describe(
      "Times the operator started the workflow again after Temporal lost it or something other than herd ended it.",
    ),
};
