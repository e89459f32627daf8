// The `herd` command as a user runs it: through the package's bin script.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "../..");
const herd = (...args: string[]) =>
  spawnSync(process.execPath, [path.join(root, "bin/herd.mjs"), ...args], { encoding: "utf8" });

test("herd --help lists the commands", () => {
  const r = herd("--help");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Usage: herd <command>/);
  assert.match(r.stdout, /version/);
});

test("herd version prints package.json's version", () => {
  const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
  for (const args of [["version"], ["--version"]]) {
    const r = herd(...args);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `herd ${pkg.version}`);
  }
});

test("an unknown command exits 2 and names it", () => {
  const r = herd("frobnicate");
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
});

test("herd backends reports the cpu backend", () => {
  const r = herd("backends");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /backends: cpu/);
});
