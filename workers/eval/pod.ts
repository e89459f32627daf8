// The evaluator pod's entry point (the pod's command: `node --import tsx workers/eval/pod.ts`
// in herd's image). Like the trainer pod it needs no Kubernetes API access: the EvalJob, its
// checkpoint already resolved to a URI, comes in the HERD_EVAL_JOB env var (set by the
// workflow's createEvaluator activity). It runs `herd eval --local` on it as a child process,
// which writes the results file beside the checkpoint, and exits with its code: 0 done,
// 64 bad input (the message is the log's last line), 75 stopped by SIGTERM (preempted; the
// workflow runs it again).
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { trainerExit as exit } from "../../workflows/training-types.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

async function main(): Promise<number> {
  const raw = process.env.HERD_EVAL_JOB;
  if (!raw) {
    console.error("herd evaluator pod: HERD_EVAL_JOB is not set");
    return exit.userError;
  }
  // The job as a manifest file for `herd eval` (JSON is YAML).
  const dir = mkdtempSync(path.join(process.env.HERD_POD_DIR ?? os.tmpdir(), "evaljob-"));
  const manifest = path.join(dir, "evaljob.json");
  writeFileSync(manifest, raw);

  const args = [path.join(root, "bin/herd.mjs"), "eval", "--local", "-f", manifest];
  args.push("--threads", process.env.HERD_EVAL_THREADS ?? "1");
  const child = spawn(process.execPath, args, { stdio: ["ignore", "inherit", "inherit"] });
  let stopped = false;
  const forward = (sig: NodeJS.Signals) => {
    stopped = true;
    child.kill(sig);
  };
  process.on("SIGTERM", forward);
  process.on("SIGINT", forward);
  const code = await new Promise<number>((resolve) =>
    child.on("exit", (c, sig) =>
      resolve(c ?? 128 + (sig ? (os.constants.signals[sig] ?? 15) : 15)),
    ),
  );
  // An evaluation keeps nothing half done: stopped, it starts over in the next attempt.
  return stopped && code !== 0 ? exit.preempted : code;
}

process.exit(await main());
