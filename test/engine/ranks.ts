// Processes of a data-parallel group for the engine tests: `herd train --local` ranks (or any
// trainer process, such as a trainer pod's entry point) watched for their JSON log lines.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { stepName } from "../../workers/trainer/checkpoint.ts";
import { decodeSafetensors } from "../../workers/trainer/safetensors.ts";
import { herdBin } from "./fixtures.ts";
import { freePort } from "../cluster/ports.ts";

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  events: Record<string, unknown>[];
  losses: number[];
}

export interface Rank {
  done: Promise<Run>;
  kill(sig: NodeJS.Signals): void;
  /** Resolves once the process has logged this step. */
  reached(step: number): Promise<void>;
}

/** Collects a trainer process's output: its JSON events and the loss of every step. */
export function watch(child: ChildProcess): Rank {
  let stdout = "";
  let stderr = "";
  const waiting: { step: number; resolve: () => void }[] = [];
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString();
    for (const w of waiting) if (stdout.includes(`"step":${w.step},`)) w.resolve();
  });
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Run>((resolve) =>
    child.on("exit", (code) => {
      const events = stdout
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const losses = events.filter((e) => e.event === "step").map((e) => e.loss as number);
      resolve({ code, stdout, stderr, events, losses });
    }),
  );
  return {
    done,
    kill: (sig) => child.kill(sig),
    reached: (step) => new Promise((resolve) => waiting.push({ step, resolve })),
  };
}

export interface Dist {
  rank: number;
  world: number;
  port: number;
}

/** `herd train --local` on one thread as one rank (or alone, without `dist`). */
export function trainerRank(
  job: string,
  out: string,
  dist?: Dist,
  args: string[] = [],
  extraEnv: NodeJS.ProcessEnv = {},
): Rank {
  const env = { ...process.env, HERD_DIST_TIMEOUT_SECONDS: "120", ...extraEnv };
  if (dist)
    Object.assign(env, {
      HERD_WORLD_SIZE: String(dist.world),
      HERD_RANK: String(dist.rank),
      HERD_RENDEZVOUS: `127.0.0.1:${dist.port}`,
    });
  const argv = [herdBin, "train", "--local", "-f", job, "--out", out, "--threads", "1"];
  return watch(spawn(process.execPath, [...argv, "--log", "json", ...args], { env }));
}

/** `world` ranks of one group, checkpointing to `out` (or each to its own folder). */
export async function rankGroup(
  job: string,
  out: string | string[],
  world = 2,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<Rank[]> {
  const port = await freePort();
  return Array.from({ length: world }, (_, rank) =>
    trainerRank(job, Array.isArray(out) ? out[rank]! : out, { rank, world, port }, args, env),
  );
}

/** The tensors of one safetensors file of the checkpoint of `step` in `dir`. */
export const checkpointTensors = (dir: string, step: number, file = "model.safetensors") =>
  decodeSafetensors(readFileSync(path.join(dir, stepName(step), file)), file).tensors;

/** ‖a − b‖ / ‖a‖ over every tensor: how far two runs' weights (or moments) are apart. */
export function relativeL2(
  a: ReturnType<typeof checkpointTensors>,
  b: ReturnType<typeof checkpointTensors>,
): number {
  let diff = 0;
  let norm = 0;
  for (const [name, t] of a) {
    const u = b.get(name)!.data;
    for (let i = 0; i < t.data.length; i++) {
      diff += (t.data[i]! - u[i]!) ** 2;
      norm += t.data[i]! ** 2;
    }
  }
  return Math.sqrt(diff / norm);
}
