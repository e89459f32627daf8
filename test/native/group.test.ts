// The data-parallel group (native/src/dist/: herd's TCP rendezvous store + Gloo's TCP
// transport), with each rank its own process as in a pod: the all-reduce gives the exact sum
// on every rank, and every failure — a peer gone, a peer hung, rank 0 missing, a rank that
// never arrives, a taken port, bad options — is an error with a message, never a hang.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { resolveModel } from "../../crds/model.ts";
import { engine, type GroupOptions } from "../../native/engine.ts";
import { freePort } from "../cluster/ports.ts";

const rankScript = path.join(import.meta.dirname, "group-rank.ts");

interface RankResult {
  code: number | null;
  out: Record<string, unknown>;
}

/**
 * Runs one rank process in `mode`; resolves with its exit code and last JSON line. `onOutput`
 * sees its output so far, as it comes.
 */
function rank(
  options: GroupOptions,
  mode: string,
  onOutput: (stdout: string) => void = () => {},
): Promise<RankResult> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", rankScript, JSON.stringify(options), mode],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let stdout = "";
  child.stdout.on("data", (d: Buffer) => onOutput((stdout += d.toString())));
  return new Promise((resolve) =>
    child.on("exit", (code) => {
      const last = stdout.trim().split("\n").at(-1) ?? "{}";
      resolve({ code, out: JSON.parse(last) as Record<string, unknown> });
    }),
  );
}

const group = (port: number, rank: number, world: number, timeoutMs = 60_000): GroupOptions => ({
  rank,
  world,
  host: "127.0.0.1",
  port,
  timeoutMs,
});

test("three processes all-reduce to the exact sum, bit-identical on every rank", async () => {
  const port = await freePort();
  const results = await Promise.all([0, 1, 2].map((r) => rank(group(port, r, 3), "sum")));
  for (const [r, { code, out }] of results.entries()) {
    assert.equal(code, 0, JSON.stringify(out));
    assert.equal(out.rank, r);
    assert.equal(out.world, 3);
    assert.equal(out.length, 300_000);
    assert.equal(out.maxError, 0, "contributions are exact in float, so is their sum");
  }
  assert.equal(new Set(results.map((x) => x.out.sha256)).size, 1);
});

test("a peer that leaves: the all-reduce fails at once with a clear error", async () => {
  const port = await freePort();
  // A long timeout: the failure must come from the closed connection, not from the clock.
  const [r0, r1] = await Promise.all([
    rank(group(port, 0, 2, 600_000), "wait-then-sum"),
    rank(group(port, 1, 2, 600_000), "leave"),
  ]);
  assert.equal(r1.code, 0);
  assert.equal(r0.code, 3);
  assert.match(String(r0.out.error), /^all-reduce on rank 0 of 2 failed: a peer rank is gone/);
  assert.match(String(r0.out.error), /closed by peer|reset|Broken pipe/i);
});

test("a hung peer: the all-reduce times out with a clear error", async () => {
  const port = await freePort();
  // Rank 0's 2 s must cover only the all-reduce, not its peer's start-up: the idle peer is
  // started first, with time to wait for rank 0's store, and rank 0 once the peer is joining.
  let joining!: () => void;
  const peerJoining = new Promise<void>((resolve) => (joining = resolve));
  const idle = rank(group(port, 1, 2, 60_000), "idle", (out) => {
    if (out.includes('"joining"')) joining();
  });
  await peerJoining;
  const r0 = await rank(group(port, 0, 2, 2000), "sum");
  assert.equal(r0.code, 3);
  assert.match(String(r0.out.error), /all-reduce on rank 0 of 2 failed: .*within 2\.0 s/);
  assert.match(String(r0.out.error), /Timed out/);
  await idle;
});

test("no rank 0: joining fails after the timeout, naming the store's address", async () => {
  const port = await freePort();
  const r1 = await rank(group(port, 1, 2, 1500), "join");
  assert.equal(r1.code, 3);
  assert.equal(
    r1.out.error,
    `rendezvous of rank 1 of 2 at 127.0.0.1:${port} failed: rendezvous: cannot reach rank 0's ` +
      `store at 127.0.0.1:${port} within 1500 ms (Connection refused)`,
  );
});

test("a rank that never arrives: rank 0's join fails naming it", async () => {
  const port = await freePort();
  const r0 = await rank(group(port, 0, 2, 1500), "join");
  assert.equal(r0.code, 3);
  assert.match(
    String(r0.out.error),
    /key '1' was not set .* within 1500 ms \(a rank did not join\)/,
  );
});

test("rank 0 cannot serve the store on a taken port: an error naming it", async () => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    await assert.rejects(
      engine.joinGroup(group(port, 0, 2, 1500)),
      new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: Address already in use`),
    );
  } finally {
    server.close();
  }
});

test("a group of one: all-reduce is the identity; bad options name the field", async () => {
  const port = await freePort();
  const g = await engine.joinGroup(group(port, 0, 1));
  assert.deepEqual(g.rank, 0);
  assert.deepEqual(g.world, 1);
  assert.deepEqual(await g.allReduceSum(new Float32Array([1.5, -2])), new Float32Array([1.5, -2]));
  g.close();
  await assert.rejects(async () => g.allReduceSum(new Float32Array(1)), /the group is closed/);
  assert.throws(
    () => engine.joinGroup({ ...group(port, 0, 2), rank: 2 }),
    /options\.rank must be an integer in \[0, 1\]/,
  );
  assert.throws(() => engine.joinGroup({ ...group(port, 0, 2), port: 70000 }), /options\.port/);
  assert.throws(() => engine.joinGroup({ ...group(port, 0, 2), host: "" }), /options\.host/);
  // A trainer takes only a group from joinGroup().
  const bytes = new TextEncoder().encode("a tiny text to train on, ".repeat(20));
  const options = {
    model: resolveModel(
      { preset: "llama-tiny", normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false },
      256,
    ),
    optimizer: {
      peakLr: 1e-3,
      minLrRatio: 0.1,
      warmupSteps: 1,
      totalSteps: 2,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      gradClip: 1,
    },
    seqLen: 16,
    microBatch: 1,
    accumSteps: 1,
    seed: 1,
    threads: 1,
    source: { kind: "text-bytes" as const, text: bytes, seed: 1 },
  };
  assert.throws(
    () => engine.createTrainer({ ...options, group: { handle: {} } as never }),
    /^TypeError: options\.group must be a group from joinGroup\(\)$/,
  );
  assert.throws(
    () => engine.createTrainer({ ...options, group: g }),
    /options\.group: the group is closed/,
  );
  const solo = await engine.joinGroup(group(await freePort(), 0, 1));
  const step = await engine.createTrainer({ ...options, group: solo }).step(true);
  assert.equal(step.stop, true, "a rank's own stop request comes back");
  assert.ok(Number.isFinite(step.loss));
});
