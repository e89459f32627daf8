// `herd dev` as a person uses it, against the plane the harness brought up.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { cluster } from "./harness.ts";
import type { Cluster } from "./harness.ts";

const root = path.resolve(import.meta.dirname, "../..");
const herdBin = path.join(root, "bin/herd.mjs");
let c: Cluster;
const herd = (...args: string[]) =>
  spawnSync(
    process.execPath,
    [path.join(root, "bin/herd.mjs"), "dev", ...args, "--state", c.stateDir],
    {
      encoding: "utf8",
    },
  );

before(async () => {
  c = await cluster();
});

test("herd dev status shows every component ready", () => {
  const r = herd("status");
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const name of [
    "etcd",
    "kube-apiserver",
    "kube-scheduler",
    "kube-controller-manager",
    "temporal",
    "seaweedfs",
    "node-agent",
  ]) {
    assert.match(r.stdout, new RegExp(`^${name}\\s+ready\\s+pid \\d+`, "m"));
  }
});

test("herd dev up when up does nothing", () => {
  const pids = herd("status").stdout.match(/pid \d+/g);
  const r = herd("up");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /already up/);
  assert.deepEqual(herd("status").stdout.match(/pid \d+/g), pids);
});

test("herd dev env gives a shell kubectl, Temporal and S3", () => {
  const env = herd("env");
  assert.equal(env.status, 0, env.stderr);
  const script = `${env.stdout}\nkubectl get nodes -o name && echo "$TEMPORAL_ADDRESS $HERD_S3_ENDPOINT $HERD_S3_BUCKET"`;
  const r = spawnSync("bash", ["-c", script], {
    encoding: "utf8",
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /node\/herd-dev-1/);
  assert.ok(r.stdout.includes(`${c.temporalAddress} ${c.s3.endpoint} ${c.s3.bucket}`), r.stdout);
});

test("herd dev node-not-ready names a node it does not know", () => {
  const r = herd("node-not-ready", "no-such-node");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no node no-such-node/);
});

test("herd dev status reports a component that died, and where its log is", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "herd-state-"));
  try {
    const gone = spawnSync("true"); // a pid that has exited
    mkdirSync(path.join(dir, "run"), { recursive: true });
    writeFileSync(path.join(dir, "ports.json"), readFileSync(path.join(c.stateDir, "ports.json")));
    writeFileSync(path.join(dir, "run", "etcd.pid"), `${gone.pid}\n`);
    const r = spawnSync(process.execPath, [herdBin, "dev", "status", "--state", dir], {
      encoding: "utf8",
    });
    assert.equal(r.status, 1);
    assert.match(
      r.stdout,
      new RegExp(`^etcd\\s+died\\s+pid ${gone.pid}.*see .*logs/etcd\\.log`, "m"),
    );
    assert.match(r.stdout, /^kube-apiserver\s+stopped/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
