// The trainer's CUDA path without a GPU: libherd_cuda.so's C API served by a stand-in built on
// the CPU engine (native/test/cuda_standin.cc, loaded through HERD_CUDA_LIBRARY). The stand-in
// computes exactly what the CPU backend computes, so any difference is the trainer's CUDA path
// handing the backend the wrong tokens, scales, learning rate or state. The kernels themselves
// are checked against the CPU engine on a GPU by bench/gpu/run.sh.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { readTrainingJob } from "../../crds/manifest.ts";
import { writeShard } from "../../native/data.ts";
import { herdTrain, tinyJobManifest, trainerOptions } from "./fixtures.ts";

const root = path.resolve(import.meta.dirname, "../..");
const build = path.join(root, "native/build");
const standin = path.join(build, "libherd_cuda_standin.so");
// Before the addon's first look for the CUDA library, which it makes once per process.
process.env.HERD_CUDA_LIBRARY = standin;
const { engine } = await import("../../native/engine.ts");
const { native } = await import("../../native/index.ts");

const work = mkdtempSync(path.join(tmpdir(), "herd-cuda-trainer-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

const options = trainerOptions;

const flat = (ts: { data: Float32Array }[]) =>
  Buffer.concat(ts.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
const record = (ts: { name: string; data: Float32Array }[]) =>
  Object.fromEntries(ts.map((t) => [t.name, t.data]));

test("the stand-in is the CUDA backend this process sees", () => {
  assert.deepEqual(native.backends(), ["cpu", "cuda"]);
  assert.equal(native.cudaDeviceCount(), 1);
  assert.equal(native.cudaLoadError(), "");
});

test("backend cuda trains bit-identically to the CPU backend: losses, norms, weights, moments", async () => {
  const cpu = engine.createTrainer(options());
  const cuda = engine.createTrainer(options({ backend: "cuda", precision: "fp32" }));
  for (let i = 0; i < 5; i++) {
    const [a, b] = [await cpu.step(), await cuda.step()];
    assert.deepEqual(b, a, `step ${i + 1}`);
  }
  for (const set of ["params", "grads", "m", "v"] as const)
    assert.ok(flat(cuda.tensors(set)).equals(flat(cpu.tensors(set))), set);
  assert.deepEqual(cuda.state(), cpu.state());
});

test("a checkpoint of a cuda trainer resumes exactly: setTensors and setState reach the device", async () => {
  const straight = engine.createTrainer(options({ backend: "cuda" }));
  for (let i = 0; i < 5; i++) await straight.step();

  const first = engine.createTrainer(options({ backend: "cuda" }));
  for (let i = 0; i < 3; i++) await first.step();
  const saved = {
    params: record(first.tensors("params")),
    m: record(first.tensors("m")),
    v: record(first.tensors("v")),
    state: first.state(),
  };
  // A new trainer (new initial weights from another seed, so nothing matches by accident).
  const resumed = engine.createTrainer(options({ backend: "cuda", seed: 99 }));
  resumed.setTensors("params", saved.params);
  resumed.setTensors("m", saved.m);
  resumed.setTensors("v", saved.v);
  resumed.setState(saved.state);
  for (let i = 0; i < 2; i++) await resumed.step();
  assert.ok(flat(resumed.tensors("params")).equals(flat(straight.tensors("params"))));
  assert.ok(flat(resumed.tensors("v")).equals(flat(straight.tensors("v"))));
  assert.equal(resumed.state().adamStep, 5);
});

test("instruction examples (positions, ignored targets) train on cuda as on the CPU", async () => {
  // Examples of 3 to 40 tokens, the first third of each a prompt (not learned).
  const folder = mkdtempSync(path.join(work, "examples-"));
  const ids: number[] = [],
    learn: number[] = [],
    starts = [0];
  for (let e = 0; e < 60; e++) {
    const n = 3 + ((e * 17) % 38);
    for (let i = 0; i < n; i++) {
      ids.push((e * 31 + i * 7) % 256);
      learn.push(i >= n / 3 ? 1 : 0);
    }
    starts.push(ids.length);
  }
  await writeShard(
    path.join(folder, "shard-00000.bin"),
    Int32Array.from(ids),
    starts,
    256,
    Uint8Array.from(learn),
  );
  const source = { kind: "examples" as const, folder, seed: 5 };
  const cpu = engine.createTrainer(options({ source }));
  const cuda = engine.createTrainer(options({ source, backend: "cuda", precision: "fp32" }));
  for (let i = 0; i < 4; i++)
    assert.deepEqual(await cuda.step(), await cpu.step(), `step ${i + 1}`);
  for (const set of ["params", "m", "v"] as const)
    assert.ok(flat(cuda.tensors(set)).equals(flat(cpu.tensors(set))), set);
});

test("cuda errors name the problem: unknown backend, missing device, CPU-only calls", async () => {
  assert.throws(
    () => engine.createTrainer(options({ backend: "tpu" as "cuda" })),
    /backend 'tpu' is not known \(cpu, cuda\)/,
  );
  assert.throws(
    () => engine.createTrainer(options({ backend: "cuda", device: 1 })),
    /CUDA backend: device 1 does not exist \(1 CUDA device\(s\) visible\)/,
  );
  assert.throws(
    () => engine.createTrainer(options({ backend: "cuda", precision: "fp8" as "bf16" })),
    /options\.precision must be bf16 or fp32, not fp8/,
  );
  const t = engine.createTrainer(options({ backend: "cuda" }));
  const tokens = new Int32Array(32);
  assert.throws(() => t.forward(tokens, 1, 32), /forward\(\) runs on the CPU backend only/);
  assert.throws(() => t.update(), /update\(\) runs on the CPU backend only/);
});

// `herd train --local --backend cuda`: the whole trainer (plan, checkpoints, resume) on the
// stand-in gives the CPU backend's checkpoint files, byte for byte.
const manifest = (name: string) => tinyJobManifest(work, name);
const train = herdTrain;

const fileOf = (out: string, step: number, name: string) =>
  readFileSync(path.join(out, `step-${String(step).padStart(9, "0")}`, name));

test("herd train --backend cuda: same checkpoints as the CPU, across a stop and a resume", () => {
  const job = manifest("cuda-train");
  const cpuOut = path.join(work, "cpu");
  const cudaOut = path.join(work, "cuda");
  let r = train(job, cpuOut, 6, ["--backend", "cpu"]);
  assert.equal(r.status, 0, r.stderr);
  r = train(job, cudaOut, 3, ["--backend", "cuda"]);
  assert.equal(r.status, 0, r.stderr);
  r = train(job, cudaOut, 6, ["--backend", "cuda"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /"msg":"resumed from [^"]*step-000000003"/);
  for (const name of ["model.safetensors", "optimizer.safetensors"])
    assert.ok(fileOf(cudaOut, 6, name).equals(fileOf(cpuOut, 6, name)), name);
});

test("herd train --backend cuda passes the job's precision, recomputation and determinism", () => {
  const job = readTrainingJob(manifest("cuda-modes"));
  Object.assign(job.spec.training, {
    precision: "bf16",
    activationCheckpointing: true,
    deterministic: true,
  });
  const file = path.join(work, "cuda-modes.json");
  writeFileSync(file, JSON.stringify(job));
  const r = train(file, path.join(work, "cuda-modes"), 1, ["--backend", "cuda", "--device", "0"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /training on CUDA device 0 \(bf16, recomputation, deterministic\)/);
});

test("herd train --backend cuda where no GPU is: exit 64, saying so; --backend bogus is refused", () => {
  const job = manifest("no-gpu");
  const env = { ...process.env, HERD_STANDIN_DEVICES: "0" };
  let r = train(job, path.join(work, "no-gpu"), 2, ["--backend", "cuda"], env);
  assert.equal(r.status, 64, r.stderr);
  assert.match(r.stderr, /device 0 does not exist \(0 CUDA device\(s\) visible\)/);
  r = train(job, path.join(work, "bogus"), 2, ["--backend", "bogus"]);
  assert.equal(r.status, 64);
  assert.match(r.stderr, /--backend must be cpu or cuda, not bogus/);
  // The real library, where it was built: on this machine it finds no device.
  if (existsSync(path.join(build, "libherd_cuda.so"))) {
    const real = { ...process.env };
    delete real.HERD_CUDA_LIBRARY;
    r = train(job, path.join(work, "real"), 2, ["--backend", "cuda"], real);
    assert.equal(r.status, 64, r.stderr);
    assert.match(r.stderr, /CUDA device\(s\) visible|CUDA backend is not available/);
  }
});
