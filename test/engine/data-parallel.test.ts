// Data parallelism through `herd train --local`, each rank its own process as in a pod
// (HERD_WORLD_SIZE / HERD_RANK / HERD_RENDEZVOUS): world size 2 follows world size 1's loss
// curve at the same global batch, rank 0 alone writes checkpoints, a SIGTERM on one rank
// stops both after the same step and the resumed run is exact, and a rank that dies or
// resumed elsewhere is an error, not a hang.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { stepName } from "../../workers/trainer/checkpoint.ts";
import { decodeSafetensors } from "../../workers/trainer/safetensors.ts";

const root = path.resolve(import.meta.dirname, "../..");
const herdBin = path.join(root, "bin/herd.mjs");
const corpus = path.resolve(root, "../shared/data/corpus/tinyshakespeare.txt");
const work = mkdtempSync(path.join(tmpdir(), "herd-dp-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

// llama-tiny, 8 sequences of 64 tokens per step: 4 micro-batches of 2 for one rank, 2 for
// each of two ranks.
const job = path.join(work, "job.yaml");
writeFileSync(
  job,
  `apiVersion: herd.dev/v1alpha1
kind: TrainingJob
metadata: { name: dp }
spec:
  model: { preset: llama-tiny }
  tokenizer: { type: bytes }
  data:
    sources: [{ name: shakespeare, uri: ${corpus}, format: text }]
    seqLen: 64
  training:
    steps: 20
    globalBatchTokens: 512
    microBatch: 2
    optimizer: { warmupSteps: 5 }
    seed: 11
  parallelism: { workers: 2 }
  checkpoint: { uri: unused, intervalSteps: 5, keep: 10 }
`,
);

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  events: Record<string, unknown>[];
  losses: number[];
}

interface Rank {
  done: Promise<Run>;
  kill(sig: NodeJS.Signals): void;
  /** Resolves once the rank has logged this step. */
  reached(step: number): Promise<void>;
}

/** `herd train --local` as one rank (or alone, without `dist`). */
function trainer(out: string, dist?: { rank: number; world: number; port: number }): Rank {
  const env = { ...process.env, HERD_DIST_TIMEOUT_SECONDS: "120" };
  if (dist)
    Object.assign(env, {
      HERD_WORLD_SIZE: String(dist.world),
      HERD_RANK: String(dist.rank),
      HERD_RENDEZVOUS: `127.0.0.1:${dist.port}`,
    });
  const args = [herdBin, "train", "--local", "-f", job, "--out", out, "--threads", "1"];
  const child = spawn(process.execPath, [...args, "--log", "json"], { env });
  let stdout = "";
  let stderr = "";
  const waiting: { step: number; resolve: () => void }[] = [];
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
    for (const w of waiting) if (stdout.includes(`"step":${w.step},`)) w.resolve();
  });
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Run>((resolve) =>
    child.on("exit", (code) => {
      const events = stdout
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const losses = events.filter((e) => e.event === "step").map((e) => e.loss as number);
      resolve({ code, stdout, stderr, events, losses });
    }),
  );
  return {
    done,
    kill: (sig) => child.kill(sig),
    reached: (step) => new Promise((resolve) => waiting.push({ step, resolve })),
  };
}

async function group(out: string | string[], world = 2): Promise<Rank[]> {
  const port = await freePort();
  return Array.from({ length: world }, (_, rank) =>
    trainer(Array.isArray(out) ? out[rank]! : out, { rank, world, port }),
  );
}

const checkpointsIn = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.startsWith("step-"))
    .sort();
const latest = (dir: string) => readFileSync(path.join(dir, "LATEST"), "utf8").trim();
const weights = (dir: string, step: number) =>
  decodeSafetensors(readFileSync(path.join(dir, stepName(step), "model.safetensors")), "model")
    .tensors;

const single = path.join(work, "w1");
const pair = path.join(work, "w2");

test("world size 2 gives world size 1's loss curve at the same global batch", async () => {
  const one = await trainer(single).done;
  assert.equal(one.code, 0, one.stderr);
  const [r0, r1] = await Promise.all((await group(pair)).map((r) => r.done));
  assert.equal(r0!.code, 0, r0!.stderr);
  assert.equal(r1!.code, 0, r1!.stderr);
  assert.equal(one.losses.length, 20);
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
  const a = weights(single, 20);
  const b = weights(pair, 20);
  let diff = 0;
  let norm = 0;
  for (const [name, t] of a) {
    const u = b.get(name)!.data;
    for (let i = 0; i < t.data.length; i++) {
      diff += (t.data[i]! - u[i]!) ** 2;
      norm += t.data[i]! ** 2;
    }
  }
  const relative = Math.sqrt(diff / norm);
  assert.ok(relative < 1e-4, `weights differ by ${relative} (relative L2)`);
  console.log(`# W=2 vs W=1 final weights: relative L2 difference ${relative.toExponential(2)}`);
});
