// `herd crds check` passes on the committed files and fails, naming them, on drift;
// `herd operator` refuses bad options with a clear message.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { drift } from "../../crds/generate.ts";

const root = path.resolve(import.meta.dirname, "../..");
const herd = (...args: string[]) =>
  spawnSync(process.execPath, [path.join(root, "bin/herd.mjs"), ...args], { encoding: "utf8" });

test("herd crds check passes on the committed manifests", () => {
  const r = herd("crds", "check");
  assert.equal(r.status, 0, r.stderr);
});

test("drift names a manifest that differs from the schemas", () => {
  const copy = mkdtempSync(path.join(os.tmpdir(), "herd-crds-"));
  try {
    cpSync(path.join(root, "crds/manifests"), path.join(copy, "crds/manifests"), {
      recursive: true,
    });
    cpSync(path.join(root, "charts/herd/files/crds"), path.join(copy, "charts/herd/files/crds"), {
      recursive: true,
    });
    cpSync(path.join(root, "docs/api.md"), path.join(copy, "docs/api.md"));
    assert.deepEqual(drift(copy), []);
    writeFileSync(path.join(copy, "crds/manifests/evaljobs.yaml"), "# edited by hand\n");
    assert.deepEqual(drift(copy), ["crds/manifests/evaljobs.yaml"]);
    // The Helm chart's copy too.
    writeFileSync(path.join(copy, "charts/herd/files/crds/evalsweeps.yaml"), "# stale\n");
    assert.deepEqual(drift(copy), [
      "crds/manifests/evaljobs.yaml",
      "charts/herd/files/crds/evalsweeps.yaml",
    ]);
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
});

test("herd crds without an action prints its usage and exits 2", () => {
  const r = herd("crds");
  assert.equal(r.status, 2);
  assert.match(r.stderr, /usage: herd crds generate \| herd crds check/);
});

test("herd operator rejects a bad --concurrency", () => {
  const r = herd("operator", "--concurrency", "0");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--concurrency must be a positive integer/);
});
