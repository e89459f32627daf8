// `herd train --local` as a user runs it: exact resume (straight vs stopped and resumed, by
// checkpoint hashes), SIGTERM in the middle of a step, fallback from a damaged checkpoint,
// and clear errors for bad manifests and checkpoints.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { stepName } from "../../workers/trainer/checkpoint.ts";
import { herdBin, herdTrain, tinyJobManifest } from "./fixtures.ts";

const work = mkdtempSync(path.join(tmpdir(), "herd-train-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

const manifest = (name: string, extra = "") => tinyJobManifest(work, name, extra);
/** The small job with one text replaced in its manifest. */
function editedManifest(name: string, from: string, to: string): string {
  const file = manifest(name);
  writeFileSync(file, readFileSync(file, "utf8").replace(from, to));
  return file;
}
/** The small job with longer steps: 16 sequences of 128 tokens, 8 steps. */
function slowManifest(name: string): string {
  const file = manifest(name);
  writeFileSync(
    file,
    readFileSync(file, "utf8")
      .replace("seqLen: 64", "seqLen: 128")
      .replace("globalBatchTokens: 256", "globalBatchTokens: 2048")
      .replace("microBatch: 2", "microBatch: 8")
      .replace("steps: 12", "steps: 8"),
  );
  return file;
}
const herd = (...args: string[]) =>
  spawnSync(process.execPath, [herdBin, ...args], { encoding: "utf8" });
const train = (file: string, out: string, steps: number) => herdTrain(file, out, steps);

function hashes(out: string, step: number): Record<string, string> {
  const m = JSON.parse(readFileSync(path.join(out, stepName(step), "manifest.json"), "utf8"));
  return Object.fromEntries(
    Object.entries(m.files).map(([k, v]) => [k, (v as { sha256: string }).sha256]),
  );
}

const job = manifest("exact");
const straight = path.join(work, "straight");

test("training logs JSON lines, lowers the loss and writes checkpoints", () => {
  const r = train(job, straight, 12);
  assert.equal(r.status, 0, r.stderr);
  const steps = r.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((l) => l.event === "step");
  assert.equal(steps.length, 12);
  assert.ok(steps[11].loss < steps[0].loss - 0.3, `loss ${steps[0].loss} → ${steps[11].loss}`);
  assert.equal(readFileSync(path.join(straight, "LATEST"), "utf8"), "step-000000012\n");
});

test("N steps, stop, resume, N more gives the same checkpoint bits as 2N straight", () => {
  const split = path.join(work, "split");
  assert.equal(train(job, split, 6).status, 0);
  const r = train(job, split, 12);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /resumed from .*step-000000006/);
  assert.deepEqual(hashes(split, 12), hashes(straight, 12));
});

test("asynchronous checkpoints (the default) write the bits that training paused for writes", () => {
  const paused = path.join(work, "paused");
  const file = editedManifest("paused", "keep: 10 }", "keep: 10, asynchronous: false }");
  const r = train(file, paused, 12);
  assert.equal(r.status, 0, r.stderr);
  for (let step = 2; step <= 12; step += 2)
    assert.deepEqual(hashes(paused, step), hashes(straight, step), `step ${step}`);
  const events = (out: string) =>
    out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string; step: number; stallSeconds?: number })
      .filter((e) => e.event === "checkpoint");
  assert.ok(events(r.stdout).every((e) => e.stallSeconds === undefined));
  // The straight run (asynchronous) wrote steps 2…10 from a snapshot, the last in the foreground.
  const straightRun = train(job, path.join(work, "straight-again"), 12);
  const written = events(straightRun.stdout);
  assert.deepEqual(
    written.map((e) => [e.step, e.stallSeconds !== undefined]),
    [2, 4, 6, 8, 10, 12].map((s) => [s, s < 12]),
  );
});

test("SIGTERM in the middle of a step: checkpoint, exit 75, and the resumed run is exact", async () => {
  const out = path.join(work, "sigterm");
  // Longer steps, so the signal lands inside one.
  const slow = slowManifest("slow");
  const slowStraight = path.join(work, "slow-straight");
  assert.equal(train(slow, slowStraight, 8).status, 0);
  const child = spawn(process.execPath, [
    herdBin,
    "train",
    "--local",
    "-f",
    slow,
    "--out",
    out,
    "--threads",
    "2",
    "--log",
    "json",
  ]);
  let stdout = "";
  let killed = false;
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
    // Right after step 3 is logged the next step is already running on the worker thread.
    if (!killed && /"step":3,/.test(stdout)) {
      killed = true;
      child.kill("SIGTERM");
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  assert.equal(code, 75, stdout);
  const stopped = Number(readFileSync(path.join(out, "LATEST"), "utf8").trim().slice(5));
  // The signal lands while a step runs (normally step 4; later if this process was slow to
  // read the log): that step is finished and checkpointed, not lost.
  const during = /SIGTERM during step (\d+): finishing it, then writing a checkpoint/.exec(stdout);
  assert.ok(during, stdout);
  const inFlight = Number(during[1]);
  assert.ok(inFlight >= 4 && inFlight < 8, `step in flight: ${inFlight}`);
  assert.equal(stopped, inFlight, "the step in flight was finished and checkpointed");
  assert.match(stdout, new RegExp(`stopped by SIGTERM at step ${inFlight}; exit 75`));
  const r = train(slow, out, 8);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(hashes(out, 8), hashes(slowStraight, 8));
});

test("a damaged latest checkpoint: resume from the previous one with a warning, still exact", () => {
  for (const damage of ["truncate", "flip"]) {
    const out = path.join(work, `damaged-${damage}`);
    assert.equal(train(job, out, 10).status, 0);
    const model = path.join(out, stepName(10), "model.safetensors");
    const bytes = readFileSync(model);
    if (damage === "flip") bytes[5000] = bytes[5000]! ^ 1;
    writeFileSync(model, damage === "truncate" ? bytes.subarray(0, 1000) : bytes);
    const r = train(job, out, 12);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /"event":"warning","msg":"falling back to checkpoint step-000000008/);
    assert.deepEqual(hashes(out, 12), hashes(straight, 12), damage);
  }
});

test("a malformed manifest or tensor file in the only checkpoint is a clear error, not a crash", () => {
  for (const damage of ["manifest", "tensor"]) {
    const out = path.join(work, `malformed-${damage}`);
    assert.equal(train(job, out, 2).status, 0);
    const dir = path.join(out, stepName(2));
    if (damage === "manifest") writeFileSync(path.join(dir, "manifest.json"), "[1, 2");
    else {
      // A tensor file that verifies against a rewritten manifest but cannot be parsed.
      const m = JSON.parse(readFileSync(path.join(dir, "manifest.json"), "utf8"));
      const garbage = Buffer.from("\xff\xff\xff\xff\xff\xff\xff\x7fjunk");
      writeFileSync(path.join(dir, "model.safetensors"), garbage);
      m.files["model.safetensors"] = {
        size: garbage.length,
        sha256: createHash("sha256").update(garbage).digest("hex"),
      };
      writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(m));
    }
    const r = train(job, out, 4);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.signal, null);
    assert.match(
      r.stderr,
      damage === "manifest"
        ? /no usable checkpoint .*manifest\.json unreadable/
        : /no usable checkpoint .*model\.safetensors: header length/,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});

test("resuming a checkpoint of a different model exits 64 and keeps the checkpoint", () => {
  const out = path.join(work, "other-model");
  assert.equal(train(job, out, 2).status, 0);
  const wider = editedManifest("wider", "preset: llama-tiny }", "preset: llama-tiny, nLayers: 3 }");
  const r = train(wider, out, 4);
  assert.equal(r.status, 64, r.stderr);
  assert.match(r.stderr, /the checkpoint's model .* differs from the job's/);
  assert.equal(readFileSync(path.join(out, "LATEST"), "utf8"), "step-000000002\n");
});

test("a bad manifest exits 64 naming the field", () => {
  const bad = manifest("bad");
  // globalBatchTokens stays a multiple of seqLen × microBatch, so the schema's own rule
  // passes and the trainer's check of the model's maxSeqLen is what fails.
  writeFileSync(
    bad,
    readFileSync(bad, "utf8")
      .replace("seqLen: 64", "seqLen: 100000")
      .replace("globalBatchTokens: 256", "globalBatchTokens: 200000"),
  );
  const r = herd("train", "--local", "-f", bad, "--out", path.join(work, "bad"));
  assert.equal(r.status, 64);
  assert.match(r.stderr, /spec\.data\.seqLen: 100000 exceeds the model's maxSeqLen 128/);
  const missing = manifest("missing");
  writeFileSync(
    missing,
    readFileSync(missing, "utf8").replace("globalBatchTokens: 256", "globalBatchTokens: nope"),
  );
  const r2 = herd("train", "--local", "-f", missing, "--out", path.join(work, "bad"));
  assert.equal(r2.status, 64);
  assert.match(r2.stderr, /spec\.training\.globalBatchTokens/);
});

// Fencing (docs/training.md, "Node loss"): a trainer pod runs as one attempt of its job
// (HERD_TRAININGJOB_UID, HERD_ATTEMPT), claims the checkpoint folder, and publishes only while
// it still owns it.
test("an attempt that lost the folder to a newer one stops at its next checkpoint, publishing nothing", async () => {
  const out = path.join(work, "fenced");
  const slow = slowManifest("fenced");
  const attempt = (n: number) => ({
    ...process.env,
    HERD_TRAININGJOB_UID: "u1",
    HERD_ATTEMPT: `${n}`,
  });
  const old = spawn(
    process.execPath,
    [herdBin, "train", "--local", "-f", slow, "--out", out, "--threads", "2", "--log", "json"],
    { env: attempt(1) },
  );
  let stdout = "";
  let stderr = "";
  let claimedAt: number | undefined;
  old.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  old.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
    // After its first checkpoint, attempt 2 claims the folder (as its trainer pod would).
    if (claimedAt === undefined && /"event":"checkpoint",[^\n]*"step":2,/.test(stdout)) {
      claimedAt = 2;
      writeFileSync(path.join(out, "OWNER"), JSON.stringify({ uid: "u1", attempt: 2 }));
    }
  });
  const code = await new Promise<number | null>((resolve) => old.on("exit", resolve));
  assert.equal(code, 75, stdout + stderr);
  assert.match(
    stderr,
    /attempt 1 no longer owns this checkpoint folder \(attempt 2 does\); this trainer is stale/,
  );
  assert.equal(readFileSync(path.join(out, "LATEST"), "utf8").trim(), stepName(2));
  // The new attempt resumes from what was published; the old one cannot come back.
  let r = herdTrain(slow, out, 6, [], attempt(2));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /resumed from [^"]*step-000000002/);
  r = herdTrain(slow, out, 8, [], attempt(1));
  assert.equal(r.status, 75);
  assert.match(r.stderr, /attempt 1 no longer owns/);
  assert.equal(readFileSync(path.join(out, "LATEST"), "utf8").trim(), stepName(6));
  // Another job (a recreated one: a new uid) takes the folder over.
  r = herdTrain(slow, out, 8, [], {
    ...process.env,
    HERD_TRAININGJOB_UID: "u2",
    HERD_ATTEMPT: "1",
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(readFileSync(path.join(out, "OWNER"), "utf8")), {
    uid: "u2",
    attempt: 1,
  });
});
