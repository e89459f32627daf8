// What the trainer is asked to do (TrainOptions, the data-parallel setting from the
// environment), its exit codes and the error it exits 64 with: shared by the plan, the
// checkpoints and the loop (train.ts).
import type { Owner } from "./checkpoint-store.ts";
import { parseEndpoint } from "./rendezvous.ts";

/** Exit codes of the trainer; the training workflow classifies attempts by them. */
export const exitCodes = {
  ok: 0,
  /** Anything unexpected: retried with back-off. */
  failure: 1,
  /** Bad configuration or data (EX_USAGE): fails the job at once. */
  userError: 64,
  /** Stopped by SIGTERM/SIGINT after writing a checkpoint (EX_TEMPFAIL): resume later. */
  preempted: 75,
} as const;

/** A problem with the job's configuration or data, reported as exit code 64. */
export class UserError extends Error {
  override name = "UserError";
}

export interface TrainOptions {
  /** The TrainingJob manifest; relative paths in it resolve against its folder. */
  manifest: string;
  /** Checkpoint folder or s3:// URI; defaults to spec.checkpoint.uri. */
  out?: string;
  /** Stop once this many steps are done in all (the schedule still follows the job's length). */
  steps?: number;
  /** Engine threads; defaults to the machine's cores. Resume with the same count for identical bits. */
  threads?: number;
  /** progress: a bar on stderr; json: one JSON object per line on stdout. Default: progress on a TTY. */
  log?: "progress" | "json";
  /** This process is one rank of a data-parallel group (see distributedFromEnv). */
  distributed?: Distributed;
  /** cpu (default) or cuda (a GPU through libherd_cuda.so). */
  backend?: "cpu" | "cuda";
  /** cuda: the device ordinal this process trains on (a trainer pod runs one process per GPU). */
  device?: number;
  /** The attempt this trainer pod runs as (ownerFromEnv): rank 0 fences the checkpoint folder. */
  owner?: Owner;
}

/** One rank's place in a data-parallel group. */
export interface Distributed {
  rank: number;
  world: number;
  /** Rank 0's rendezvous store, host:port (rank 0 serves it on bindHost at that port). */
  rendezvous: string;
  /** The address this rank listens on for its peers: the pod's IP. */
  bindHost: string;
  /** Bounds the rendezvous and every all-reduce. */
  timeoutSeconds: number;
}

/** Port of rank 0's rendezvous store when HERD_RENDEZVOUS names none. */
export const defaultRendezvousPort = 29500;

/**
 * The data-parallel settings a trainer pod gets in its environment: HERD_WORLD_SIZE,
 * HERD_RANK, HERD_RENDEZVOUS (rank 0's host:port), HERD_POD_IP (default 127.0.0.1) and
 * HERD_DIST_TIMEOUT_SECONDS (default 300). Undefined for a world of one.
 */
export function distributedFromEnv(env: NodeJS.ProcessEnv): Distributed | undefined {
  const int = (name: string, fallback: number) => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const x = Number(raw);
    if (!Number.isSafeInteger(x) || x < 0)
      throw new UserError(`${name}: '${raw}' is not a non-negative integer`);
    return x;
  };
  const world = int("HERD_WORLD_SIZE", 1);
  if (world <= 1) return undefined;
  const rank = int("HERD_RANK", -1);
  if (rank < 0 || rank >= world)
    throw new UserError(`HERD_RANK: '${env.HERD_RANK ?? ""}' must be in [0, ${world})`);
  const rendezvous = env.HERD_RENDEZVOUS ?? "";
  try {
    parseEndpoint(rendezvous, defaultRendezvousPort, "HERD_RENDEZVOUS");
  } catch (err) {
    throw new UserError((err as Error).message);
  }
  const timeoutSeconds = int("HERD_DIST_TIMEOUT_SECONDS", 300);
  if (timeoutSeconds < 1) throw new UserError("HERD_DIST_TIMEOUT_SECONDS: must be at least 1");
  return { rank, world, rendezvous, bindHost: env.HERD_POD_IP || "127.0.0.1", timeoutSeconds };
}
