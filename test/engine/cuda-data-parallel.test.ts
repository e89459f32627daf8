// Data parallelism on the CUDA backend without a GPU: trainer pods (workers/trainer/pod.ts,
// run as processes) whose job asks for GPUs start one `herd train --backend cuda` per GPU,
// each a rank of the job's group, served by the CPU stand-in of libherd_cuda.so
// (native/test/cuda_standin.cc). The stand-in's "NCCL" averages gradients over shared memory
// in rank order, as the CPU backend's Gloo group does for two ranks, so a pod of two GPUs must
// write the checkpoints of two CPU ranks byte for byte; with a sharded optimizer its reads of
// the device's state wait for every rank, so a trainer that gathers on rank 0 alone fails.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { readTrainingJob } from "../../crds/manifest.ts";
import { stepName } from "../../workers/trainer/checkpoint.ts";
import { localRanks } from "../../workers/trainer/local-ranks.ts";
import { tinyJobManifest } from "./fixtures.ts";
import { freePort } from "../cluster/ports.ts";
import { rankGroup, trainerRank, watch, type Rank } from "./ranks.ts";

const root = path.resolve(import.meta.dirname, "../..");
const standin = path.join(root, "native/build/libherd_cuda_standin.so");
const work = mkdtempSync(path.join(tmpdir(), "herd-cuda-dp-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

// llama-tiny, 8 sequences of 64 tokens per step, 8 steps.
const manifest = (name: string, gpusPerWorker: number, workers = 1) =>
  tinyJobManifest(work, name, {
    steps: 8,
    globalBatchTokens: 512,
    seed: 21,
    checkpoint: { uri: path.join(work, name), intervalSteps: 4 },
    extra: `  parallelism: { workers: ${workers}, gpusPerWorker: ${gpusPerWorker} }\n`,
  });

interface Pod {
  job: string;
  rank: number;
  pods: number;
  port: number;
  shard?: boolean;
  devices?: number;
}

/** One trainer pod as a process: the environment the workflow's pod spec gives it. */
function pod(p: Pod): Rank {
  const job = readTrainingJob(p.job);
  if (p.shard) job.spec.training.shardOptimizerState = true;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HERD_TRAINING_JOB: JSON.stringify(job),
    HERD_RANK: String(p.rank),
    HERD_WORLD_SIZE: String(p.pods),
    HERD_RENDEZVOUS: `127.0.0.1:${p.port}`,
    HERD_TRAINER_THREADS: "2",
    HERD_POD_DIR: work,
    HERD_DIST_TIMEOUT_SECONDS: "60",
    HERD_CUDA_LIBRARY: standin,
    HERD_STANDIN_DEVICES: String(p.devices ?? 2),
    HERD_STANDIN_TIMEOUT_SECONDS: "30",
  };
  const entry = path.join(root, "workers/trainer/pod.ts");
  return watch(spawn(process.execPath, ["--import", "tsx", entry], { cwd: root, env }));
}

const file = (dir: string, step: number, name: string) =>
  readFileSync(path.join(dir, stepName(step), name));

test("a pod's processes: one rank per GPU, numbered across pods, on its own device", () => {
  const env = { HERD_RANK: "1", HERD_WORLD_SIZE: "3", HERD_TRAINER_THREADS: "8" };
  const ranks = localRanks({ ...env, HERD_RENDEZVOUS: "r0.svc:29500" }, 4, ["train"]);
  assert.deepEqual(
    ranks.map((r) => [r.env.HERD_RANK, r.env.HERD_WORLD_SIZE, r.env.HERD_RENDEZVOUS]),
    [4, 5, 6, 7].map((rank) => [String(rank), "12", "r0.svc:29500"]),
  );
  assert.deepEqual(ranks[2]!.args, [
    "train",
    "--threads",
    "2",
    "--backend",
    "cuda",
    "--device",
    "2",
  ]);
  // A CPU pod is one process, the pod's own rank, with every thread.
  const cpu = localRanks(env, 0, ["train"]);
  assert.equal(cpu.length, 1);
  assert.equal(cpu[0]!.env.HERD_RANK, "1");
  assert.deepEqual(cpu[0]!.args, ["train", "--threads", "8"]);
});

test("a pod with two GPUs trains as two CPU ranks do: the same losses and checkpoint bytes", async () => {
  const job = manifest("pod-2gpu", 2);
  const cpuOut = path.join(work, "cpu-w2");
  const cpu = await Promise.all((await rankGroup(job, cpuOut, 2)).map((r) => r.done));
  for (const r of cpu) assert.equal(r.code, 0, r.stderr);

  const run = await pod({ job, rank: 0, pods: 1, port: await freePort() }).done;
  assert.equal(run.code, 0, run.stderr);
  // Both processes log every step (the same mean loss); rank 0 alone checkpoints.
  assert.equal(run.losses.length, 16);
  assert.deepEqual([...new Set(run.losses)], cpu[0]!.losses);
  const ranks = run.events.filter((e) => /^rank \d of 2: joined$/.test(String(e.msg)));
  assert.equal(ranks.length, 2, "two ranks joined one group");
  assert.deepEqual(
    run.events.filter((e) => e.event === "checkpoint").map((e) => e.step),
    [4, 8],
  );
  for (const name of ["model.safetensors", "optimizer.safetensors"])
    assert.ok(file(path.join(work, "pod-2gpu"), 8, name).equals(file(cpuOut, 8, name)), name);
});

test("shardOptimizerState: every rank gathers the device's state at each checkpoint", async () => {
  const job = manifest("pod-shard", 2);
  const run = await pod({ job, rank: 0, pods: 1, port: await freePort(), shard: true }).done;
  assert.equal(run.code, 0, run.stderr);
  for (const device of [0, 1])
    assert.ok(
      run.stdout.includes(`training on CUDA device ${device} (fp32, optimizer state sharded)`),
      run.stdout,
    );
  // The stand-in keeps whole state on every rank, so the bytes are the unsharded run's.
  for (const name of ["model.safetensors", "optimizer.safetensors"])
    assert.ok(
      file(path.join(work, "pod-shard"), 8, name).equals(
        file(path.join(work, "pod-2gpu"), 8, name),
      ),
      name,
    );
});

test("two pods of two GPUs: four ranks follow one rank's loss curve", async () => {
  const job = manifest("pods-2x2", 2, 2);
  const single = await trainerRank(job, path.join(work, "cpu-w1")).done;
  assert.equal(single.code, 0, single.stderr);
  const port = await freePort();
  const runs = await Promise.all([0, 1].map((rank) => pod({ job, rank, pods: 2, port }).done));
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  assert.ok(runs[0]!.stdout.includes("rank 0 of 4: joined"));
  assert.ok(runs[1]!.stdout.includes("rank 3 of 4: joined"));
  const losses = [...new Set(runs[0]!.losses)];
  assert.equal(losses.length, 8);
  for (const [i, l] of single.losses.entries()) {
    const rel = Math.abs(losses[i]! - l) / l;
    assert.ok(rel < 1e-4, `step ${i + 1}: loss ${losses[i]} vs ${l} (relative ${rel})`);
  }
  assert.ok(!runs[1]!.events.some((e) => e.event === "checkpoint"), "pod 1 writes nothing");
});

test("a pod that sees fewer GPUs than the job asks for exits 64 naming the device", async () => {
  const job = manifest("pod-short", 2);
  const run = await pod({ job, rank: 0, pods: 1, port: await freePort(), devices: 1 }).done;
  assert.equal(run.code, 64, run.stdout + run.stderr);
  assert.match(run.stderr, /device 1 does not exist \(1 CUDA device\(s\) visible\)/);
});
