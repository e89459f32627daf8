// `herd demo` (npm run demo): the most complete real job herd can run today — the TrainingJob
// in examples/tiny-train.yaml, trained on this machine by the native CPU engine exactly as
// `herd train --local` does (checkpoints, progress, resume), stopped after a short run.
import { rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parameterCount, resolveModel } from "../crds/model.ts";
import { readTrainingJob } from "../crds/manifest.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export async function run(argv: string[] = []): Promise<number> {
  const manifest = path.join(root, "examples/tiny-train.yaml");
  const out = path.join(root, ".herd/demo/checkpoints");
  const steps = 120;
  const job = readTrainingJob(manifest);
  const params = parameterCount(resolveModel(job.spec.model, 256));
  console.log(
    `herd demo: training ${job.spec.model.preset} (${params.toLocaleString("en-US")} parameters) ` +
      `on Shakespeare's bytes for ${steps} steps with the native CPU engine`,
  );
  console.log(`  the job: ${path.relative(process.cwd(), manifest)}`);
  rmSync(out, { recursive: true, force: true }); // a fresh run each time, not a resume
  const { train } = await import("../workers/trainer/train.ts");
  const code = await train({
    manifest,
    out,
    steps,
    log: argv.includes("--json") ? "json" : undefined,
  });
  if (code === 0) {
    console.log(`checkpoints: ${out} (LATEST names the newest)`);
    console.log(
      `continue it: herd train --local -f ${path.relative(process.cwd(), manifest)} --out ${path.relative(process.cwd(), out)}`,
    );
  }
  return code;
}
