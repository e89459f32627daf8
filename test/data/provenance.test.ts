// The repository carries its data: every file under data/ has a provenance row (data/README.md)
// whose sha256 is that of the file's uncompressed bytes, and nothing tracked reads from a folder
// beside the checkout, which a user's clone does not have.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { readDecompressed } from "../../workers/compressed.ts";
import { dataDir } from "./files.ts";

const root = path.resolve(dataDir, "..");

/** `file → sha256` from the provenance table of data/README.md. */
function provenance(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of readFileSync(path.join(dataDir, "README.md"), "utf8").split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const file = /^`([^`]+)`$/.exec(cells[1] ?? "")?.[1];
    if (file === undefined) continue;
    assert.match(cells[5] ?? "", /^[0-9a-f]{64}$/, `data/README.md: ${file} has no sha256`);
    assert.ok(cells[3] && cells[4], `data/README.md: ${file} lacks its source or license`);
    rows.set(file, cells[5]!);
  }
  return rows;
}

function dataFiles(dir = dataDir): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return dataFiles(full);
    return name.endsWith(".md") ? [] : [path.relative(dataDir, full)];
  });
}

test("every file in data/ has a provenance row, and its bytes match the row's sha256", () => {
  const rows = provenance();
  const files = dataFiles();
  assert.ok(files.length >= 29, `only ${files.length} files in data/`);
  for (const file of files) {
    const want = rows.get(file);
    assert.ok(want, `data/${file} has no row in data/README.md`);
    const got = createHash("sha256").update(readDecompressed(path.join(dataDir, file)));
    assert.equal(got.digest("hex"), want, `data/${file}: sha256 differs from data/README.md`);
  }
  for (const file of rows.keys())
    assert.ok(files.includes(file), `data/README.md names data/${file}, which is not there`);
});

test("data/ stays small: under 25 MB stored, large text compressed", () => {
  let total = 0;
  for (const file of dataFiles()) {
    const size = statSync(path.join(dataDir, file)).size;
    total += size;
    if (/\.(txt|jsonl)$/.test(file))
      assert.ok(size <= 64 << 10, `data/${file} is ${size} bytes of plain text: store it as .gz`);
  }
  assert.ok(total < 25e6, `data/ holds ${(total / 1e6).toFixed(1)} MB`);
});

test("no tracked file refers to a folder beside the checkout", () => {
  // the pattern is built so that this file does not match it
  const beside = new RegExp(["\\.\\.", "shared"].join("/") + "\\b|\\bshared/(data|DESIGN)");
  const tracked = execFileSync("git", ["ls-files", "-z"], { cwd: root, encoding: "utf8" })
    .split("\0")
    // data/ is read too, but for its compressed and binary files
    .filter((f) => f && f !== "CHANGELOG.md" && !/^data\/.*\.(gz|zst|model)$/.test(f));
  assert.ok(tracked.length > 100, `git ls-files listed ${tracked.length} files`);
  const offenders = tracked.filter((f) => {
    const full = path.join(root, f);
    return (
      statSync(full, { throwIfNoEntry: false })?.isFile() &&
      beside.test(readFileSync(full, "latin1"))
    );
  });
  assert.deepEqual(
    offenders,
    [],
    `these refer to a folder beside the checkout: ${offenders.join(", ")}`,
  );
});
