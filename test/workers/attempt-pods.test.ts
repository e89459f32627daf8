// The trainer pods the worker creates, as the Helm chart configures it: the trainer's
// ServiceAccount, the release's trainer image for jobs that keep the default, the Temporal
// client certificate mounted from a Secret, and the restricted Pod Security settings.
import assert from "node:assert/strict";
import { test } from "node:test";
import { trainingJob } from "../../crds/trainingjob.ts";
import {
  attemptPods,
  objectStorageEnv,
  trainerOptionsFromEnv,
  type ObjectStorage,
  type TrainingActivityOptions,
} from "../../workers/activities/training.ts";
import { trainingJobObject } from "../crds/cases.ts";
import { evalJobSpec } from "../../crds/evaljob.ts";
import { evaluatorPod, type EvalActivityOptions } from "../../workers/activities/eval.ts";

function attempt(image?: string) {
  const job = trainingJobObject("tj");
  if (image) (job.spec as { resources?: unknown }).resources = { image };
  return {
    object: { kind: "TrainingJob" as const, namespace: "ml", name: "tj", uid: "u1" },
    attempt: 0,
    spec: trainingJob.parse(job).spec as unknown as Record<string, unknown>,
  };
}
const base: TrainingActivityOptions = {};

/** The evaluator pod of an EvalJob of one task, its checkpoint resolved to an S3 step. */
function evaluator(spec: Record<string, unknown>, opts: EvalActivityOptions) {
  const parsed = evalJobSpec.parse({
    checkpoint: { trainingJob: { name: "tj" } },
    tasks: [{ name: "piqa", type: "multipleChoice", uri: "/data/piqa.jsonl" }],
    ...spec,
  });
  return evaluatorPod(
    {
      object: { kind: "EvalJob", namespace: "ml", name: "ev", uid: "u2" },
      attempt: 1,
      spec: parsed as unknown as Record<string, unknown>,
      checkpoint: { uri: "s3://ckpt/tj/step-000000100", format: "herd", step: 100 },
    },
    opts,
  );
}

test("without the chart's settings: the namespace's default account, the job's image", () => {
  const [pod] = attemptPods(attempt(), base);
  assert.equal(pod!.spec!.serviceAccountName, undefined);
  assert.equal(pod!.spec!.imagePullSecrets, undefined);
  assert.equal(pod!.spec!.automountServiceAccountToken, false);
  assert.equal(pod!.spec!.containers[0]!.image, "herd/trainer:latest");
});

test("trainer pods get no way to Temporal: progress goes through the worker", () => {
  const [pod] = attemptPods(attempt(), {
    ...base,
    ...trainerOptionsFromEnv({
      TEMPORAL_ADDRESS: "temporal:7233",
      TEMPORAL_TLS_CERT: "/etc/tls/tls.crt",
      TEMPORAL_TLS_KEY: "/etc/tls/tls.key",
    }),
  });
  const names = pod!.spec!.containers[0]!.env!.map((e) => e.name);
  assert.deepEqual(
    names.filter((n) => n.startsWith("TEMPORAL") || n === "HERD_WORKFLOW_ID"),
    [],
  );
  assert.equal(
    pod!.spec!.volumes!.find((v) => v.secret),
    undefined,
  );
});

test("the worker's environment: trainer account, release image, pull secrets", () => {
  const opts = {
    ...base,
    ...trainerOptionsFromEnv({
      HERD_TRAINER_SERVICE_ACCOUNT: "herd-trainer",
      HERD_TRAINER_IMAGE: "registry.example/trainer:0.1.0-cpu",
      HERD_TRAINER_IMAGE_PULL_SECRETS: "regcred, mirror",
    }),
  };
  const [pod] = attemptPods(attempt(), opts);
  const spec = pod!.spec!;
  const c = spec.containers[0]!;
  assert.equal(spec.serviceAccountName, "herd-trainer");
  assert.deepEqual(spec.imagePullSecrets, [{ name: "regcred" }, { name: "mirror" }]);
  assert.equal(c.image, "registry.example/trainer:0.1.0-cpu");
  // A job that names its own image keeps it.
  const [own] = attemptPods(attempt("mine/trainer:7"), opts);
  assert.equal(own!.spec!.containers[0]!.image, "mine/trainer:7");
});

test("trainer pods meet the restricted Pod Security Standard (but for a hostPath checkpoint)", () => {
  const [pod] = attemptPods(attempt(), base);
  const spec = pod!.spec!;
  // Scratch space for S3 staging and shard caches: an emptyDir named by HERD_POD_DIR.
  assert.deepEqual(spec.volumes?.[0], { name: "scratch", emptyDir: {} });
  assert.deepEqual(spec.containers[0]!.volumeMounts?.[0], {
    name: "scratch",
    mountPath: "/scratch",
  });
  assert.equal(spec.containers[0]!.env!.find((e) => e.name === "HERD_POD_DIR")?.value, "/scratch");
  assert.equal(spec.securityContext?.runAsNonRoot, true);
  assert.ok((spec.securityContext?.runAsUser ?? 0) > 0, "a non-root uid");
  assert.equal(spec.securityContext?.seccompProfile?.type, "RuntimeDefault");
  const c = spec.containers[0]!;
  assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"]);
});

test("evaluator pods run as trainer pods do: account, image, pull secrets, restricted, S3 by secretKeyRef", () => {
  const opts = trainerOptionsFromEnv({
    HERD_TRAINER_SERVICE_ACCOUNT: "herd-trainer",
    HERD_TRAINER_IMAGE: "registry.example/trainer:0.1.0-cpu",
    HERD_TRAINER_IMAGE_PULL_SECRETS: "regcred",
    HERD_S3_ENDPOINT: "https://s3.example",
    AWS_ACCESS_KEY_ID: "worker-key",
    AWS_SECRET_ACCESS_KEY: "worker-secret",
    HERD_S3_CREDENTIALS_SECRET: "s3-trainers",
  });
  const pod = evaluator({}, opts);
  const p = pod.spec!;
  const c = p.containers[0]!;
  assert.equal(p.serviceAccountName, "herd-trainer");
  assert.equal(p.automountServiceAccountToken, false);
  assert.deepEqual(p.imagePullSecrets, [{ name: "regcred" }]);
  assert.equal(c.image, "registry.example/trainer:0.1.0-cpu");
  assert.equal(p.securityContext?.runAsNonRoot, true);
  assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"]);
  // An S3 checkpoint: only the scratch space is mounted (the download goes there); the
  // endpoint and the trainers' keys, never the worker's.
  assert.deepEqual(p.volumes, [{ name: "scratch", emptyDir: {} }]);
  assert.deepEqual(c.volumeMounts, [{ name: "scratch", mountPath: "/scratch" }]);
  const env = new Map(c.env!.map((e) => [e.name, e]));
  assert.equal(env.get("HERD_POD_DIR")?.value, "/scratch");
  assert.equal(env.get("HERD_S3_ENDPOINT")?.value, "https://s3.example");
  assert.deepEqual(env.get("AWS_SECRET_ACCESS_KEY")?.valueFrom, {
    secretKeyRef: { name: "s3-trainers", key: "AWS_SECRET_ACCESS_KEY" },
  });
  // Temporary keys work too: the Secret's session token, if it holds one.
  assert.deepEqual(env.get("AWS_SESSION_TOKEN")?.valueFrom, {
    secretKeyRef: { name: "s3-trainers", key: "AWS_SESSION_TOKEN", optional: true },
  });
  assert.ok(!JSON.stringify(pod).includes("worker-secret"), "the worker's key leaked");
  const job = JSON.parse(env.get("HERD_EVAL_JOB")!.value!) as { spec: { checkpoint: unknown } };
  assert.deepEqual(job.spec.checkpoint, { uri: "s3://ckpt/tj/step-000000100", format: "herd" });
});

test("spec.resources.ephemeralStorage: the scratch volume's sizeLimit and the container's request and limit", () => {
  const sized = (ephemeralStorage?: string) => {
    const job = trainingJobObject("tj");
    (job.spec as { resources?: unknown }).resources = {
      cpu: "4",
      memory: "16Gi",
      ...(ephemeralStorage && { ephemeralStorage }),
    };
    (job.spec as { parallelism?: unknown }).parallelism = { workers: 1, gpusPerWorker: 2 };
    const spec = trainingJob.parse(job).spec as unknown as Record<string, unknown>;
    return attemptPods({ ...attempt(), spec }, base)[0]!.spec!;
  };
  const withLimit = sized("40Gi");
  assert.deepEqual(withLimit.volumes?.[0], { name: "scratch", emptyDir: { sizeLimit: "40Gi" } });
  const limits = {
    cpu: "4",
    memory: "16Gi",
    "nvidia.com/gpu": "2",
    "ephemeral-storage": "40Gi",
  };
  assert.deepEqual(withLimit.containers[0]!.resources, { requests: limits, limits });
  // Unset: no limit at all, as before the field existed.
  const without = sized();
  assert.deepEqual(without.volumes?.[0], { name: "scratch", emptyDir: {} });
  assert.equal(without.containers[0]!.resources?.limits?.["ephemeral-storage"], undefined);
  // The same for an evaluator.
  const ev = evaluator({ resources: { ephemeralStorage: "8Gi" } }, base).spec!;
  assert.deepEqual(ev.volumes, [{ name: "scratch", emptyDir: { sizeLimit: "8Gi" } }]);
  assert.equal(ev.containers[0]!.resources?.limits?.["ephemeral-storage"], "8Gi");
});

test("object storage in pods: keys only when there are some; none at all leaves the pod's own chain", () => {
  const names = (config: ObjectStorage["config"]) =>
    objectStorageEnv({ config }).map((e) => `${e.name}=${e.value ?? ""}`);
  assert.deepEqual(
    names({ endpoint: "http://s3:8333", region: "r", accessKeyId: "k", secretAccessKey: "s" }),
    [
      "HERD_S3_ENDPOINT=http://s3:8333",
      "AWS_REGION=r",
      "AWS_ACCESS_KEY_ID=k",
      "AWS_SECRET_ACCESS_KEY=s",
    ],
  );
  // AWS's own endpoint, an IAM role for the service account: region only.
  assert.deepEqual(names({ region: "eu-west-1" }), ["AWS_REGION=eu-west-1"]);
});
