// The API server's refusals, as herd classifies them (workers/kube-errors.ts): the Status
// bodies below are the ones kube-apiserver returns for each (messages as Kubernetes 1.33
// words them). What no retry mends fails the activity once; what can pass is waited on.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiException } from "@kubernetes/client-node";
import { ApplicationFailure } from "@temporalio/common";
import { apiMessage, refusedOnce, rejectionOf } from "../../workers/kube-errors.ts";

const status = (code: number, reason: string, message: string) =>
  new ApiException(
    code,
    "Unknown API Status Code!",
    JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, reason, code }),
    {},
  );

const podSecurity = status(
  403,
  "Forbidden",
  'pods "t-1a2b3c4d-a1-r0" is forbidden: violates PodSecurity "restricted:latest": restricted volume types (volume "checkpoints" uses restricted volume type "hostPath")',
);
const quota = status(
  403,
  "Forbidden",
  'pods "t-1a2b3c4d-a1-r0" is forbidden: exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=8, used: requests.nvidia.com/gpu=8, limited: requests.nvidia.com/gpu=8',
);
const quotaNew = status(
  403,
  "Forbidden",
  'pods "t-1a2b3c4d-a1-r0" is forbidden: status unknown for quota: team-quota, resource: pods',
);
const rbac = status(
  403,
  "Forbidden",
  'pods is forbidden: User "system:serviceaccount:herd:herd-worker" cannot create resource "pods" in API group "" in the namespace "ml"',
);
const webhook = status(
  400,
  "BadRequest",
  'admission webhook "validate.kyverno.svc" denied the request: images must come from registry.corp',
);
const invalid = status(
  422,
  "Invalid",
  'Pod "t-1a2b3c4d-a1-r0" is invalid: spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1',
);

test("the API server's message is read from its Status body; other bodies are kept whole", () => {
  assert.match(apiMessage(podSecurity), /^pods "t-1a2b3c4d-a1-r0" is forbidden: violates/);
  assert.equal(
    apiMessage(new ApiException(502, "Bad Gateway", "upstream died\n", {})),
    "upstream died",
  );
  assert.equal(apiMessage(new ApiException(401, "Unauthorized", undefined, {})), "HTTP 401");
});

test("refusals that end the job, with the API's message; refusals that are waited on", () => {
  const of = (err: unknown) => rejectionOf("pod ml/t", err);
  assert.deepEqual(
    [podSecurity, webhook, invalid].map((e) => [of(e)?.reason, of(e)?.waits]),
    [
      ["PodSecurityViolation", false],
      ["AdmissionWebhookDenied", false],
      ["Invalid", false],
    ],
  );
  assert.deepEqual(
    [quota, quotaNew, rbac].map((e) => [of(e)?.reason, of(e)?.waits]),
    [
      ["QuotaExceeded", true],
      ["QuotaNotCounted", true],
      ["Forbidden", true],
    ],
  );
  assert.equal(
    of(invalid)?.message,
    `pod ml/t: the API server refused it (422): ${apiMessage(invalid)}`,
  );
  // Everything else is for the activity's retries: server errors, throttling, conflicts,
  // network errors.
  for (const err of [
    status(500, "InternalError", "etcdserver: request timed out"),
    status(429, "TooManyRequests", "too many requests"),
    status(409, "AlreadyExists", "exists"),
    new Error("connect ECONNREFUSED 127.0.0.1:6443"),
  ])
    assert.equal(of(err), undefined);
});

test("refusedOnce: a refusal fails once (not retried); anything else is thrown as it was", async () => {
  await assert.rejects(
    refusedOnce("pod ml/t", () => Promise.reject(podSecurity)),
    (err: unknown) =>
      err instanceof ApplicationFailure &&
      err.type === "ApiRejected" &&
      err.nonRetryable &&
      (err.details?.[0] as { reason: string }).reason === "PodSecurityViolation" &&
      /hostPath/.test(err.message),
  );
  const down = new Error("socket hang up");
  await assert.rejects(
    refusedOnce("pod ml/t", () => Promise.reject(down)),
    (err) => err === down,
  );
  assert.equal(await refusedOnce("pod ml/t", () => Promise.resolve(7)), 7);
});
