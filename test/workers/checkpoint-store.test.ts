// Checkpoints in object storage, against the local plane's real S3 store (SeaweedFS): the
// upload order (LATEST last), pruning, resume from a fresh staging folder, fallback past a
// damaged or half-uploaded checkpoint, and the workflow's view of the newest one.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { cluster, type Cluster } from "../cluster/harness.ts";
import type { S3 } from "../../workers/s3.ts";
import {
  durableCheckpoints,
  hasResults,
  readResultsText,
  writeResults,
} from "../../workers/eval/checkpoints.ts";
import { loadCheckpoint, stepName, type VerifiedFiles } from "../../workers/trainer/checkpoint.ts";
import {
  latestPublished,
  s3Store,
  StaleAttemptError,
  type CheckpointStore,
} from "../../workers/trainer/checkpoint-store.ts";

let c: Cluster;
let s3: S3;
let scratch: string;
const prefix = `tests/checkpoint-store-${randomBytes(4).toString("hex")}`;
const uri = `s3://herd-checkpoints/${prefix}`;

before(async () => {
  c = await cluster();
  s3 = c.s3Client();
  scratch = mkdtempSync(path.join(os.tmpdir(), "herd-ckpt-s3-"));
});

after(async () => {
  for (const o of (await s3?.list(prefix + "/")) ?? []) await s3.delete(o.key);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const config = () => ({
  endpoint: c.s3.endpoint,
  region: c.s3.region,
  accessKeyId: c.s3.accessKeyId,
  secretAccessKey: c.s3.secretAccessKey,
});
const store = (staging: string): CheckpointStore =>
  s3Store(uri, path.join(scratch, staging), config());
const files = (step: number) => ({
  "model.safetensors": randomBytes(1000 + step),
  "trainer.json": JSON.stringify({ step }),
});
const openStep = (f: VerifiedFiles) =>
  (JSON.parse(f.get("trainer.json")!.toString()) as { step: number }).step;
const keys = async () => (await s3.list(prefix + "/")).map((o) => o.key.slice(prefix.length + 1));

test("saving uploads each checkpoint whole, then LATEST, and prunes beyond keep", async () => {
  const writer = store("writer");
  for (const step of [10, 20, 30])
    assert.equal(await writer.save(step, files(step), 2), `${uri}/${stepName(step)}`);
  await writer.flush(); // uploads run in the background; each save waits for the one before
  assert.deepEqual((await keys()).sort(), [
    "LATEST",
    `${stepName(20)}/manifest.json`,
    `${stepName(20)}/model.safetensors`,
    `${stepName(20)}/trainer.json`,
    `${stepName(30)}/manifest.json`,
    `${stepName(30)}/model.safetensors`,
    `${stepName(30)}/trainer.json`,
  ]);
  assert.equal((await s3.get(`${prefix}/LATEST`)).toString(), `${stepName(30)}\n`);
  // The staging folder keeps only the newest checkpoint: S3 is the durable copy.
  assert.deepEqual(
    readdirSync(path.join(scratch, "writer")).sort(),
    ["LATEST", stepName(30)].sort(),
  );
  const latest = await latestPublished(uri, config());
  assert.equal(latest?.step, 30);
  assert.equal(latest?.uri, `${uri}/${stepName(30)}`);
});

test("resume downloads the newest published checkpoint into a fresh staging folder", async () => {
  const reader = store("reader");
  const warnings: string[] = [];
  await reader.prepareResume((w) => warnings.push(w));
  const loaded = loadCheckpoint(reader.localDir, ["model.safetensors"], openStep, (w) =>
    warnings.push(w),
  );
  assert.equal(loaded?.value, 30);
  assert.deepEqual(warnings, []);
  assert.equal(
    readFileSync(path.join(reader.localDir, stepName(30), "model.safetensors")).length,
    1030,
  );
});

test("a half-uploaded newer checkpoint is ignored; a damaged latest one falls back with a warning", async () => {
  // A crash mid-upload of step 40: its model file arrived, its manifest and LATEST did not.
  await s3.put(`${prefix}/${stepName(40)}/model.safetensors`, randomBytes(64));
  let warnings: string[] = [];
  const first = store("after-crash");
  await first.prepareResume((w) => warnings.push(w));
  assert.equal(loadCheckpoint(first.localDir, [], openStep, () => {})?.value, 30);
  assert.deepEqual(warnings, []);
  assert.equal((await latestPublished(uri, config()))?.step, 30);
  // Evaluation's view of the same prefix: the published checkpoints only, oldest first.
  assert.deepEqual(
    (await durableCheckpoints(uri, { s3: config() })).map((c) => [c.step, c.uri]),
    [20, 30].map((step) => [step, `${uri}/${stepName(step)}`]),
  );

  // Step 30's model is damaged in the store: resume falls back to step 20 and says why.
  await s3.put(`${prefix}/${stepName(30)}/model.safetensors`, randomBytes(1030));
  warnings = [];
  const second = store("after-damage");
  await second.prepareResume((w) => warnings.push(w));
  assert.equal(loadCheckpoint(second.localDir, [], openStep, () => {})?.value, 20);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /falling back to checkpoint step-000000020: .*SHA-256 does not match/);
  assert.ok(warnings[0]!.startsWith(uri), warnings[0]);
});

test("an empty prefix is a fresh start; a prefix of damaged checkpoints fails naming each", async () => {
  const fresh = s3Store(`${uri}-empty`, path.join(scratch, "empty"), config());
  await fresh.prepareResume(() => {});
  assert.equal(
    loadCheckpoint(fresh.localDir, [], openStep, () => {}),
    undefined,
  );
  assert.equal(await latestPublished(`${uri}-empty`, config()), undefined);

  await s3.put(`${prefix}/${stepName(20)}/trainer.json`, "{}");
  await assert.rejects(
    store("hopeless").prepareResume(() => {}),
    (err: Error) => {
      assert.match(err.message, new RegExp(`no usable checkpoint in ${uri}`));
      assert.match(err.message, /step-000000030\/model.safetensors: SHA-256/);
      assert.match(err.message, /step-000000020\/trainer.json: size 2/);
      return true;
    },
  );
});

test("results files beside S3 checkpoints: written whole, found, read back; pruning keeps them", async () => {
  const writer = store("results");
  const at = `${uri}/${stepName(30)}`;
  assert.equal(await hasResults(at, "job", { s3: config() }), false);
  const text = JSON.stringify({ format: "herd-eval-results", step: 30 });
  assert.equal(await writeResults(at, "job", text, { s3: config() }), `${at}.eval-job.json`);
  assert.equal(await hasResults(at, "job", { s3: config() }), true);
  assert.equal(await hasResults(at, "other", { s3: config() }), false);
  assert.equal(await readResultsText(at, "job", { s3: config() }), text);
  await assert.rejects(
    readResultsText(at, "other", { s3: config() }),
    new RegExp(`${at}\\.eval-other\\.json: the evaluator wrote no results file`),
  );
  // Checkpoints beyond keep go; the results file is not a checkpoint and stays.
  for (const step of [50, 60]) await writer.save(step, files(step), 1);
  await writer.flush();
  assert.deepEqual(
    (await durableCheckpoints(uri, { s3: config() })).map((c) => c.step),
    [60],
  );
  assert.equal(await hasResults(at, "job", { s3: config() }), true);
});

test("fencing in S3: an attempt that lost the prefix publishes nothing; a newer one is not displaced", async () => {
  const fenced = `${uri}-fenced`;
  const at = (staging: string) => s3Store(fenced, path.join(scratch, staging), config());
  const first = at("fence-1");
  await first.claim({ uid: "u", attempt: 1 });
  await first.save(10, files(10), 5);
  await first.flush();
  const second = at("fence-2");
  await second.claim({ uid: "u", attempt: 2 });
  await first.save(20, files(20), 5); // durable locally; the refusal comes with the publish
  await assert.rejects(
    first.flush(),
    (err: Error) =>
      err instanceof StaleAttemptError &&
      err.message ===
        `${fenced}: attempt 1 no longer owns this checkpoint folder (attempt 2 does); ` +
          "this trainer is stale and stops without publishing",
  );
  assert.equal((await latestPublished(fenced, config()))?.step, 10, "LATEST did not move");
  assert.equal(await second.save(20, files(20), 5), `${fenced}/${stepName(20)}`);
  await second.flush();
  await assert.rejects(at("fence-1b").claim({ uid: "u", attempt: 1 }), StaleAttemptError);
  // A recreated job (another uid) takes the prefix over.
  await at("fence-3").claim({ uid: "v", attempt: 1 });
  await second.save(30, files(30), 5);
  await assert.rejects(second.flush(), /TrainingJob uid v does/);
  for (const o of await s3.list(`${prefix}-fenced/`)) await s3.delete(o.key);
});

test("a save returns once the checkpoint is durable locally; a failed upload surfaces at the next save or flush", async () => {
  const badUri = `${uri}-unreachable`;
  const staging = path.join(scratch, "bad-keys");
  const bad = s3Store(badUri, staging, { ...config(), secretAccessKey: "not-the-secret" });
  assert.equal(await bad.save(10, files(10), 2), `${badUri}/${stepName(10)}`);
  // The checkpoint is on local disk, whole, while its upload fails in the background.
  assert.equal(loadCheckpoint(staging, [], openStep, () => {})?.value, 10);
  await assert.rejects(
    bad.flush(),
    /S3 PUT .*: (SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId)/,
  );
  await bad.flush(); // reported once
  await bad.save(20, files(20), 2);
  await assert.rejects(bad.save(30, files(30), 2), /S3 PUT/);
  assert.deepEqual(await s3.list(`${prefix}-unreachable/`), []);
});
