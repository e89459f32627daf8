// `herd train --local -f job.yaml --out dir [--steps N] [--threads N] [--log json|progress]`:
// trains a TrainingJob on this machine, without Kubernetes. Exit codes: 0 done, 64 bad
// configuration or data, 75 stopped by SIGTERM after a checkpoint (docs/engine.md).
import { parseArgs } from "node:util";
import { localManifest, positiveInt } from "./args.ts";

const usage =
  "usage: herd train --local -f <TrainingJob manifest> [--out <dir>] [--steps N] [--threads N] [--log json|progress]";

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      local: { type: "boolean" },
      file: { type: "string", short: "f" },
      out: { type: "string" },
      steps: { type: "string" },
      threads: { type: "string" },
      log: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const manifest = localManifest("train", "TrainingJob", values, usage);
  if (manifest === 64) return 64;
  if (values.log !== undefined && values.log !== "json" && values.log !== "progress") {
    console.error(`herd train: --log must be json or progress`);
    return 64;
  }
  let steps: number | undefined, threads: number | undefined;
  try {
    steps = positiveInt(values.steps, "steps");
    threads = positiveInt(values.threads, "threads");
  } catch (err) {
    console.error(`herd train: ${(err as Error).message}`);
    return 64;
  }
  const { train } = await import("../workers/trainer/train.ts");
  return train({
    manifest,
    out: values.out,
    steps,
    threads,
    log: values.log as "json" | "progress" | undefined,
  });
}
