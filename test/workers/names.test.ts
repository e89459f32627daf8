// Names of the pods and Services herd creates (workers/activities/names.ts): valid DNS labels
// for any valid object name, distinct for objects whose names share a long prefix, and a
// create that meets an existing object takes it only if it is the owner's own.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiException } from "@kubernetes/client-node";
import type { ApplicationFailure } from "@temporalio/common";
import {
  createOwned,
  evaluatorPodName,
  objectHash,
  trainerPodName,
  workersServiceName,
} from "../../workers/activities/names.ts";
import type { ObjectRef } from "../../workflows/types.ts";

const rfc1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const rfc1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const job = (name: string, uid = `uid-of-${name}`): ObjectRef => ({
  kind: "TrainingJob",
  namespace: "ml",
  name,
  uid,
});

function names(o: ObjectRef): { pods: string[]; service: string } {
  return {
    pods: [trainerPodName(o, 1, 0), trainerPodName(o, 12, 1023), evaluatorPodName(o, 7)],
    service: workersServiceName(o),
  };
}

test("every name is a DNS label, a Service's starts with a letter", () => {
  const objectNames = [
    "tiny",
    "7b-run", // a valid object name that made an invalid Service name
    "llama.7b.run-2026", // dots are fine in object names, not in labels
    "a".repeat(253),
    `${"x".repeat(61)}-${"y".repeat(100)}`, // the cut lands on a dash
    "0",
  ];
  for (const n of objectNames) {
    const { pods, service } = names(job(n));
    for (const p of [...pods, service]) {
      assert.ok(p.length <= 63, `${p}: ${p.length} characters`);
      assert.match(p, rfc1123, `${n} → ${p}`);
    }
    assert.match(service, rfc1035, `${n} → ${service}`);
  }
  assert.equal(trainerPodName(job("tiny", "u"), 1, 0), `tiny-${objectHash("u")}-a1-r0`);
  assert.equal(workersServiceName(job("7b-run", "u")), `job-7b-run-${objectHash("u")}-workers`);
});

test("objects whose names share the first 50 characters get distinct names", () => {
  const long = "experiment-with-a-very-long-descriptive-name-for-t";
  const a = names(job(`${long}he-first-run`));
  const b = names(job(`${long}he-second-run`));
  for (const [x, y] of [...a.pods.map((p, i) => [p, b.pods[i]!]), [a.service, b.service]])
    assert.notEqual(x, y);
  // the same name again after a delete and create: a new uid, new names
  assert.notEqual(trainerPodName(job("tiny", "u1"), 1, 0), trainerPodName(job("tiny", "u2"), 1, 0));
});

test("a 409 is this owner's earlier try only if the existing object is owned by it", async () => {
  const owner = job("tiny", "u-owner");
  const conflict = () => Promise.reject(new ApiException(409, "AlreadyExists", {}, {}));
  const ownedBy = (uid: string) => () =>
    Promise.resolve({ metadata: { ownerReferences: [{ uid }] } });
  await createOwned("pod ml/p", owner, conflict, ownedBy("u-owner"));
  await assert.rejects(
    createOwned("pod ml/p", owner, conflict, ownedBy("u-other")),
    (err: ApplicationFailure) =>
      err.type === "ApiRejected" &&
      err.nonRetryable &&
      /pod ml\/p already exists and does not belong to TrainingJob ml\/tiny \(uid u-owner\)/.test(
        err.message,
      ),
  );
  await assert.rejects(
    createOwned("pod ml/p", owner, conflict, () => Promise.resolve({ metadata: {} })),
    /does not belong/,
  );
  const unavailable = () => Promise.reject(new ApiException(503, "Unavailable", "", {}));
  await assert.rejects(
    createOwned("pod ml/p", owner, unavailable, ownedBy("u-owner")),
    ApiException,
  );
  let created = false;
  await createOwned(
    "pod ml/p",
    owner,
    async () => {
      created = true;
    },
    ownedBy("nobody"),
  );
  assert.ok(created);
});
