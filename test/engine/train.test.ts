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

const root = path.resolve(import.meta.dirname, "../..");
const herdBin = path.join(root, "bin/herd.mjs");
const corpus = path.resolve(root, "../shared/data/corpus/tinyshakespeare.txt");
const work = mkdtempSync(path.join(tmpdir(), "herd-train-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

// A small job: llama-tiny, 64-token sequences, 4 sequences per step in 2 micro-batches.
function manifest(name: string, extra = ""): string {
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: herd.dev/v1alpha1
kind: TrainingJob
metadata: { name: ${name} }
spec:
  model: { preset: llama-tiny }
  tokenizer: { type: bytes }
  data:
    sources: [{ name: shakespeare, uri: ${corpus}, format: text }]
    seqLen: 64
  training:
    steps: 12
    globalBatchTokens: 256
    microBatch: 2
    optimizer: { warmupSteps: 3 }
    seed: 5
  checkpoint: { uri: unused, intervalSteps: 2, keep: 10 }
${extra}`,
  );
  return file;
}

const herd = (...args: string[]) =>
  spawnSync(process.execPath, [herdBin, ...args], { encoding: "utf8" });
const train = (file: string, out: string, steps: number) =>
  herd(
    "train",
    "--local",
    "-f",
    file,
    "--out",
    out,
    "--steps",
    String(steps),
    "--threads",
    "2",
    "--log",
    "json",
  );

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

test("SIGTERM in the middle of a step: checkpoint, exit 75, and the resumed run is exact", async () => {
  const out = path.join(work, "sigterm");
  const slow = manifest("slow"); // same job; one run is stopped part-way
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
  assert.ok(stopped >= 4 && stopped < 12, `stopped at step ${stopped}`);
  assert.match(stdout, /SIGTERM: finishing the step in flight/);
  const r = train(slow, out, 12);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(hashes(out, 12), hashes(straight, 12));
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

test("a bad manifest exits 64 naming the field", () => {
  const bad = manifest("bad");
  writeFileSync(bad, readFileSync(bad, "utf8").replace("seqLen: 64", "seqLen: 100000"));
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
