// Model resolution and the documented preset table, computed by the code that builds models.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { presetTable } from "../../cli/presets.ts";
import { ManifestError } from "../../crds/manifest.ts";
import { parameterCount, resolveModel } from "../../crds/model.ts";

const root = path.resolve(import.meta.dirname, "../..");
const base = { normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false };

test("docs/engine.md lists every preset as `herd presets --markdown` computes it", () => {
  const doc = readFileSync(path.join(root, "docs/engine.md"), "utf8");
  const rows = presetTable();
  for (const row of rows.slice(1)) assert.ok(doc.includes(`| ${row.join(" | ")} |`), `${row[0]}`);
});

test("LLaMA-7B has the paper's 6.7B parameters (Meta's release: 6,738,415,616)", () => {
  assert.equal(parameterCount(resolveModel({ preset: "llama-7b", ...base }, 32000)), 6738415616);
});

test("explicit fields override the preset; tied embeddings drop the output matrix", () => {
  const m = resolveModel({ preset: "llama-tiny", ...base, nLayers: 3, nKvHeads: 2 }, 256);
  assert.equal(m.nLayers, 3);
  assert.equal(m.nKvHeads, 2);
  assert.equal(m.dim, 64);
  const tied = { ...m, tiedEmbeddings: true };
  assert.equal(parameterCount(m) - parameterCount(tied), 256 * 64);
});

test("model configuration errors name the field", () => {
  assert.throws(() => resolveModel({ ...base, dim: 64 }, 256), /spec\.model\.nLayers: required/);
  assert.throws(
    () => resolveModel({ preset: "llama-tiny", ...base, nHeads: 3 }, 256),
    (e: Error) => e instanceof ManifestError && /spec\.model\.nHeads: dim 64/.test(e.message),
  );
  assert.throws(
    () => resolveModel({ preset: "llama-tiny", ...base, nKvHeads: 3 }, 256),
    /spec\.model\.nKvHeads: nHeads 4 is not divisible by nKvHeads 3/,
  );
  assert.throws(
    () => resolveModel({ preset: "llama-tiny", ...base, vocabSize: 100 }, 256),
    /spec\.model\.vocabSize: 100 is smaller/,
  );
});
