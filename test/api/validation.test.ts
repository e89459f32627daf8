// The API server rejects every invalid manifest of the shared list (test/crds/cases.ts) with
// a message naming the field: OpenAPI bounds, enums and types, and the CEL rules, immutable
// fields included. The zod schemas reject the same list in test/crds/schemas.test.ts.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ApiException, CoreV1Api } from "@kubernetes/client-node";
import { randomBytes } from "node:crypto";
import { invalidCases, trainingJobObject, evalJobObject, evalSweepObject } from "../crds/cases.ts";
import { clusterEnv, skipReason } from "./env.ts";
import { apiMessage, applyCrds, createObject, getObject } from "./helpers.ts";
import type { KindName } from "../../crds/kinds.ts";
import { kindInfo } from "../../crds/kinds.ts";
import { CustomObjectsApi } from "@kubernetes/client-node";

const env = await clusterEnv();
const namespace = `herd-validation-${randomBytes(3).toString("hex")}`;

before(async () => {
  if (!env) return;
  await applyCrds(env);
  await env.kubeconfig
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name: namespace } } });
});
after(async () => {
  if (!env) return;
  await env.kubeconfig
    .makeApiClient(CoreV1Api)
    .deleteNamespace({ name: namespace })
    .catch(() => {});
});

test(
  "valid objects of all three kinds are accepted, with defaults applied",
  { skip: env ? false : skipReason },
  async () => {
    for (const obj of [
      trainingJobObject("ok-tj"),
      evalJobObject("ok-ej"),
      evalSweepObject("ok-es"),
    ]) {
      const created = await createObject(env!, namespace, obj);
      assert.ok(created.metadata.uid);
    }
    const tj = await getObject(env!, "TrainingJob", namespace, "ok-tj");
    const spec = tj!.spec as {
      retry: { preemptionBudget: number };
      training: { optimizer: { beta2: number } };
    };
    assert.equal(spec.retry.preemptionBudget, 100, "nested default under a defaulted {}");
    assert.equal(spec.training.optimizer.beta2, 0.95);
  },
);

test(
  `the API server rejects all ${invalidCases.length} invalid manifests, naming the field`,
  { skip: env ? false : skipReason },
  async () => {
    assert.ok(invalidCases.length >= 25);
    const custom = env!.kubeconfig.makeApiClient(CustomObjectsApi);
    const failures: string[] = [];
    let i = 0;
    for (const c of invalidCases) {
      const obj = c.make();
      obj.metadata.name = `case-${i++}`;
      const plural = kindInfo(obj.kind as KindName).plural;
      let message: string | undefined;
      try {
        if (c.update) {
          await createObject(env!, namespace, obj);
          const stored = (await getObject(
            env!,
            obj.kind as KindName,
            namespace,
            obj.metadata.name,
          ))!;
          c.update(stored as unknown as Record<string, never>);
          await custom.replaceNamespacedCustomObject({
            group: "herd.dev",
            version: "v1alpha1",
            namespace,
            plural,
            name: obj.metadata.name,
            body: stored,
          });
        } else await createObject(env!, namespace, obj);
      } catch (err) {
        assert.ok(err instanceof ApiException, `${c.name}: ${String(err)}`);
        assert.equal(err.code, 422, `${c.name}: ${apiMessage(err)}`);
        message = apiMessage(err);
      }
      if (message === undefined) failures.push(`${c.name}: accepted`);
      else if (!c.field.test(message)) failures.push(`${c.name}: ${message}`);
    }
    assert.deepEqual(failures, []);
  },
);
