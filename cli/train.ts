// `herd train --local -f job.yaml --out dir [--steps N] [--threads N] [--log json|progress]`:
// trains a TrainingJob on this machine, without Kubernetes. Exit codes: 0 done, 64 bad
// configuration or data, 75 stopped by SIGTERM after a checkpoint (docs/engine.md). With
// HERD_WORLD_SIZE > 1 in the environment (a trainer pod's, or set by hand) the process is one
// rank of a data-parallel group: HERD_RANK, HERD_RENDEZVOUS, HERD_POD_IP (docs/training.md).
import { parseArgs } from "node:util";
import { localManifest, nonNegativeInt, positiveInt } from "./args.ts";

const usage =
  "usage: herd train --local -f <TrainingJob manifest> [--out <dir>] [--steps N] [--threads N] [--backend cpu|cuda] [--device N] [--log json|progress]";

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      local: { type: "boolean" },
      file: { type: "string", short: "f" },
      out: { type: "string" },
      steps: { type: "string" },
      threads: { type: "string" },
      backend: { type: "string" },
      device: { type: "string" },
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
  if (values.backend !== undefined && values.backend !== "cpu" && values.backend !== "cuda") {
    console.error(`herd train: --backend must be cpu or cuda, not ${values.backend}`);
    return 64;
  }
  let steps: number | undefined, threads: number | undefined, device: number | undefined;
  try {
    steps = positiveInt(values.steps, "steps");
    threads = positiveInt(values.threads, "threads");
    device = nonNegativeInt(values.device, "device");
  } catch (err) {
    console.error(`herd train: ${(err as Error).message}`);
    return 64;
  }
  const { train } = await import("../workers/trainer/train.ts");
  const { distributedFromEnv } = await import("../workers/trainer/options.ts");
  const { ownerFromEnv } = await import("../workers/trainer/checkpoint-store.ts");
  let distributed;
  try {
    distributed = distributedFromEnv(process.env);
  } catch (err) {
    console.error(`herd train: ${(err as Error).message}`);
    return 64;
  }
  const code = await train({
    manifest,
    out: values.out,
    steps,
    threads,
    log: values.log as "json" | "progress" | undefined,
    distributed,
    backend: values.backend as "cpu" | "cuda" | undefined,
    device,
    owner: ownerFromEnv(process.env),
  });
  // A rank stopped while its group was still forming leaves the join running on a worker
  // thread (until its timeout); it must not keep the process alive.
  if (distributed) process.exit(code);
  return code;
}
