// The trainer pod's entry point (the pod's command: `node --import tsx workers/trainer/pod.ts`
// in herd's image). It needs no Kubernetes API access: the TrainingJob comes in the
// HERD_TRAINING_JOB env var (set by the workflow's createAttempt activity). It runs the same
// loop as `herd train --local` as a child process, forwards SIGTERM to it (the trainer
// checkpoints and exits 75), relays its JSON log (steps and checkpoints) to stdout, and exits
// with the trainer's code, which the workflow classifies. It needs no connection to Temporal:
// the worker reads progress from rank 0's log (workers/activities/progress.ts). The child
// inherits HERD_RANK, HERD_WORLD_SIZE, HERD_RENDEZVOUS and HERD_POD_IP, so with several
// workers it is one rank of the data-parallel group. A pod with several GPUs runs one child
// per GPU (localRanks), each its own rank.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { trainerExit } from "../../workflows/training-types.ts";
import { localRanks } from "./local-ranks.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function fail(code: number, message: string): never {
  console.error(`herd trainer pod: ${message}`);
  process.exit(code);
}

/** How long the other processes of a pod get to stop after one of them failed. */
const siblingGraceMs = 30_000;

async function main(): Promise<number> {
  const raw = process.env.HERD_TRAINING_JOB;
  if (!raw) fail(trainerExit.userError, "HERD_TRAINING_JOB is not set");
  // The job as a manifest file for the trainer (JSON is YAML).
  const dir = mkdtempSync(path.join(process.env.HERD_POD_DIR ?? os.tmpdir(), "job-"));
  const manifest = path.join(dir, "trainingjob.json");
  writeFileSync(manifest, raw);

  // A job that asks for GPUs trains on them, one process each; without them visible it
  // fails, naming why.
  const gpus =
    (JSON.parse(raw) as { spec?: { parallelism?: { gpusPerWorker?: number } } }).spec?.parallelism
      ?.gpusPerWorker ?? 0;
  const trainArgs = [path.join(root, "bin/herd.mjs"), "train", "--local", "-f", manifest];
  const ranks = localRanks(process.env, gpus, [...trainArgs, "--log", "json"]);
  const children = ranks.map((r) =>
    spawn(process.execPath, r.args, { env: r.env, stdio: ["ignore", "pipe", "inherit"] }),
  );
  const forward = (sig: NodeJS.Signals) => children.forEach((c) => c.kill(sig));
  process.on("SIGTERM", forward);
  process.on("SIGINT", forward);

  // Each child's output is read to its end: its last lines (the final checkpoint's event) may
  // still be in the pipe when it exits.
  const drained = children.map((child) => {
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => process.stdout.write(line + "\n"));
    return new Promise<void>((resolve) => lines.on("close", resolve));
  });
  // The pod's code is the first failure's (a rank that fails breaks its group, and the others'
  // errors only echo it), or 0; the other processes are then stopped, and killed if they
  // linger on a collective whose peer is gone.
  let code = 0;
  const exited = children.map(
    (child) =>
      new Promise<void>((resolve) =>
        child.on("exit", (c, sig) => {
          const exit = c ?? 128 + (sig ? (os.constants.signals[sig] ?? 15) : 15);
          if (exit !== 0 && code === 0) {
            code = exit;
            const rest = children.filter((o) => o.exitCode === null && o.signalCode === null);
            rest.forEach((o) => o.kill("SIGTERM"));
            setTimeout(() => rest.forEach((o) => o.kill("SIGKILL")), siblingGraceMs).unref();
          }
          resolve();
        }),
      ),
  );
  await Promise.all([...exited, ...drained]);
  return code;
}

process.exit(await main());
