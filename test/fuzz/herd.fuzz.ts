// A herd checkpoint as the model reader opens it: a run folder with LATEST and
// step-000000001/{trainer.json, model.safetensors, manifest.json}, the three files a bundle
// (harness.ts). An empty manifest part is replaced by a correct manifest of the other two,
// so that mutations reach trainer.json and model.safetensors past the SHA-256 check.
// Allowed failures: ModelFormatError (a bad model) and CheckpointError (no usable checkpoint).
import path from "node:path";
import { writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { ModelFormatError, readHerd } from "../../workers/model/formats.ts";
import { CheckpointError } from "../../workers/trainer/checkpoint.ts";
import { onlyFormatErrors, scratch, unbundle, writeFiles } from "./harness.ts";

const files = ["trainer.json", "model.safetensors", "manifest.json"];
const dirs = scratch("herd");

function manifestOf(contents: Map<string, Buffer>): string {
  const entries = [...contents].map(([name, bytes]) => [
    name,
    { size: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") },
  ]);
  return JSON.stringify({
    format: "herd-checkpoint",
    version: 1,
    step: 1,
    files: Object.fromEntries(entries),
  });
}

export function fuzz(data: Buffer): void {
  const run = dirs.reset("run");
  const step = dirs.reset("run/step-000000001");
  const parts = unbundle(data, files);
  const manifest = parts.get("manifest.json");
  parts.delete("manifest.json");
  writeFiles(step, parts);
  writeFileSync(
    path.join(step, "manifest.json"),
    manifest && manifest.length > 0 ? manifest : manifestOf(parts),
  );
  writeFileSync(path.join(run, "LATEST"), "step-000000001\n");
  onlyFormatErrors([ModelFormatError, CheckpointError], run, () => readHerd(run));
}
