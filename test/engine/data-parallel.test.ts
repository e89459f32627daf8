// Data parallelism through `herd train --local`, each rank its own process as in a pod
// (HERD_WORLD_SIZE / HERD_RANK / HERD_RENDEZVOUS): world size 2 follows world size 1's loss
// curve at the same global batch, rank 0 alone writes checkpoints, a SIGTERM on one rank
// stops both after the same step and the resumed run is exact, and a rank that dies or
// resumed elsewhere is an error, not a hang.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { stepName } from "../../workers/trainer/checkpoint.ts";
import { tinyJobManifest } from "./fixtures.ts";
import { checkpointTensors, rankGroup, relativeL2, trainerRank } from "./ranks.ts";

const work = mkdtempSync(path.join(tmpdir(), "herd-dp-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

// llama-tiny, 8 sequences of 64 tokens per step: 4 micro-batches of 2 for one rank, 2 for
// each of two ranks.
const job = tinyJobManifest(work, "dp", {
  steps: 20,
  globalBatchTokens: 512,
  warmupSteps: 5,
  seed: 11,
  checkpoint: { intervalSteps: 5 },
  extra: "  parallelism: { workers: 2 }\n",
});

const trainer = (out: string) => trainerRank(job, out);
const group = (out: string | string[]) => rankGroup(job, out);

const checkpointsIn = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.startsWith("step-"))
    .sort();
const latest = (dir: string) => readFileSync(path.join(dir, "LATEST"), "utf8").trim();

const single = path.join(work, "w1");
const pair = path.join(work, "w2");
let singleLosses: number[] = [];

test("world size 2 gives world size 1's loss curve at the same global batch", async () => {
  const one = await trainer(single).done;
  assert.equal(one.code, 0, one.stderr);
  const [r0, r1] = await Promise.all((await group(pair)).map((r) => r.done));
  assert.equal(r0!.code, 0, r0!.stderr);
  assert.equal(r1!.code, 0, r1!.stderr);
  assert.equal(one.losses.length, 20);
  singleLosses = one.losses;
  // Every rank reports the mean loss over the whole global batch.
  assert.deepEqual(r0!.losses, r1!.losses);
  for (const [i, l] of one.losses.entries()) {
    const rel = Math.abs(r0!.losses[i]! - l) / l;
    assert.ok(rel < 1e-4, `step ${i + 1}: loss ${r0!.losses[i]} vs ${l} (relative ${rel})`);
  }
  assert.ok(one.losses[19]! < one.losses[0]! - 0.5, "and it trains");
  // One checkpoint series, written by rank 0.
  assert.deepEqual(checkpointsIn(pair), checkpointsIn(single));
  assert.equal(latest(pair), stepName(20));
  assert.ok(r0!.events.some((e) => e.event === "checkpoint"));
  assert.ok(!r1!.events.some((e) => e.event === "checkpoint"), "rank 1 writes no checkpoint");
  // Final weights: the same up to float rounding of the gradient sums.
  const relative = relativeL2(checkpointTensors(single, 20), checkpointTensors(pair, 20));
  assert.ok(relative < 1e-4, `weights differ by ${relative} (relative L2)`);
  console.log(`# W=2 vs W=1 final weights: relative L2 difference ${relative.toExponential(2)}`);
});

test("SIGTERM on one rank: both stop after the same step, rank 0 checkpoints it, both exit 75; the resumed run is exact", async () => {
  const out = path.join(work, "sigterm");
  const ranks = await group(out);
  await ranks[1]!.reached(7);
  ranks[1]!.kill("SIGTERM");
  const [r0, r1] = await Promise.all(ranks.map((r) => r.done));
  assert.equal(r0!.code, 75, r0!.stdout + r0!.stderr);
  assert.equal(r1!.code, 75, r1!.stdout + r1!.stderr);
  // The step both finished last is the checkpoint, and it is rank 0's.
  const stopped = r0!.losses.length;
  assert.equal(r1!.losses.length, stopped);
  assert.ok(stopped > 7 && stopped < 20, `stopped after step ${stopped}`);
  assert.equal(latest(out), stepName(stopped));
  assert.match(r0!.stdout, new RegExp(`stopped by another rank's stop at step ${stopped}`));
  assert.match(r1!.stdout, new RegExp(`stopped by SIGTERM at step ${stopped}`));
  assert.ok(!r1!.events.some((e) => e.event === "checkpoint"));
  // Resume both ranks from it: the end is bit-identical to the uninterrupted pair.
  const resumed = await Promise.all((await group(out)).map((r) => r.done));
  for (const r of resumed) assert.equal(r.code, 0, r.stderr);
  assert.match(resumed[1]!.stdout, new RegExp(`resumed from .*${stepName(stopped)}`));
  assert.deepEqual(
    readFileSync(path.join(out, stepName(20), "manifest.json"), "utf8"),
    readFileSync(path.join(pair, stepName(20), "manifest.json"), "utf8"),
  );
});

test("a checkpoint of world size 2 resumes with world size 1 (same global batch)", async () => {
  const out = path.join(work, "regrouped");
  cpSync(path.join(pair, stepName(10)), path.join(out, stepName(10)), { recursive: true });
  writeFileSync(path.join(out, "LATEST"), `${stepName(10)}\n`);
  const r = await trainer(out).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /resumed from .*step-000000010/);
  // Steps 11..20 alone follow the single rank's curve.
  assert.equal(r.losses.length, 10);
  for (const [i, l] of r.losses.entries()) {
    const want = singleLosses[10 + i]!;
    assert.ok(Math.abs(l - want) / want < 1e-4, `step ${11 + i}: ${l} vs ${want}`);
  }
});

test("a rank that dies: the other fails at once with a clear error, not a hang", async () => {
  const out = path.join(work, "killed");
  const ranks = await group(out);
  await ranks[1]!.reached(3);
  ranks[1]!.kill("SIGKILL");
  const [r0] = await Promise.all(ranks.map((r) => r.done));
  assert.equal(r0!.code, 1, r0!.stdout);
  assert.match(
    r0!.stderr,
    /^herd train: all-reduce on rank 0 of 2 failed: a peer rank is gone or did not arrive within 120\.0 s \(.*(closed by peer|reset by peer|Broken pipe)/im,
  );
});

test("ranks that resumed from different checkpoints refuse to train", async () => {
  const ahead = path.join(work, "ahead");
  const behind = path.join(work, "behind");
  cpSync(path.join(pair, stepName(5)), path.join(ahead, stepName(5)), { recursive: true });
  writeFileSync(path.join(ahead, "LATEST"), `${stepName(5)}\n`);
  const runs = await Promise.all((await group([ahead, behind])).map((r) => r.done));
  for (const r of runs) {
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      r.stderr,
      /herd train: the ranks resumed from different checkpoints \(rank 0 at step 5, rank 1 at step 0\)/,
    );
  }
  assert.ok(!existsSync(path.join(behind, "LATEST")), "nothing trained, nothing written");
});

test("LoRA: world size 2 averages the adapters' gradients and follows world size 1", async () => {
  // Fine-tunes the first test's model (its step-20 checkpoint) with adapters on every matrix.
  const file = tinyJobManifest(work, "dp-lora", {
    steps: 6,
    globalBatchTokens: 512,
    warmupSteps: 2,
    seed: 11,
    checkpoint: { intervalSteps: 6 },
    extra: "  parallelism: { workers: 2 }\n",
  });
  writeFileSync(
    file,
    readFileSync(file, "utf8")
      .replace("model: { preset: llama-tiny }", `model: { from: { uri: ${single}, format: herd } }`)
      .replace(
        "    seed: 11\n",
        "    seed: 11\n    lora: { rank: 4, targets: [wq, wk, wv, wo, w1, w2, w3] }\n",
      ),
  );
  const one = await trainerRank(file, path.join(work, "lora-w1")).done;
  assert.equal(one.code, 0, one.stderr);
  const [r0, r1] = await Promise.all(
    (await rankGroup(file, path.join(work, "lora-w2"))).map((r) => r.done),
  );
  assert.equal(r0!.code, 0, r0!.stderr);
  assert.deepEqual(r0!.losses, r1!.losses);
  for (const [i, l] of one.losses.entries())
    assert.ok(Math.abs(r0!.losses[i]! - l) / l < 1e-4, `step ${i + 1}: ${r0!.losses[i]} vs ${l}`);
  // What training changed (W − W0) is the same, not only the mostly frozen weights.
  const base = checkpointTensors(single, 20);
  const delta = (dir: string) =>
    new Map(
      [...checkpointTensors(dir, 6)].map(([name, t]) => [
        name,
        { ...t, data: t.data.map((x, i) => x - base.get(name)!.data[i]!) },
      ]),
    );
  const d1 = delta(path.join(work, "lora-w1")),
    d2 = delta(path.join(work, "lora-w2"));
  const moved = [...d1.values()].reduce((n, t) => n + t.data.filter((x) => x !== 0).length, 0);
  assert.ok(moved > 0, "the adapters changed the weights");
  const relative = relativeL2(d1, d2);
  assert.ok(relative < 1e-3, `the updates differ by ${relative} (relative L2)`);
});
