// The Docker engine as the node agent, the control plane and the container tests reach it:
// the `docker` CLI with DOCKER_HOST resolved as scripts/env.sh resolves it (an engine at the
// default socket, else the one scripts/provision.d/60-docker.sh starts under ~/.cache/herd).
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const cache = process.env.XDG_CACHE_HOME
  ? path.join(process.env.XDG_CACHE_HOME, "herd")
  : path.join(os.homedir(), ".cache", "herd");

/** The engine's address: $DOCKER_HOST, the default socket, or herd's own engine. */
export function dockerHost(): string {
  if (process.env.DOCKER_HOST) return process.env.DOCKER_HOST;
  if (existsSync("/var/run/docker.sock")) return "unix:///var/run/docker.sock";
  return `unix://${path.join(cache, "docker", "docker.sock")}`;
}

/** The environment for a `docker` command: this process's, with DOCKER_HOST set. */
export const dockerEnv = (): NodeJS.ProcessEnv => ({ ...process.env, DOCKER_HOST: dockerHost() });

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `docker args...` to its end; never throws for a non-zero exit. */
export function docker(args: string[], opts: { timeoutMs?: number } = {}): Promise<DockerResult> {
  return new Promise((resolve) =>
    execFile(
      "docker",
      args,
      { env: dockerEnv(), maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 0 },
      (err, stdout, stderr) =>
        resolve({
          code: err ? (typeof err.code === "number" ? err.code : 1) : 0,
          stdout,
          stderr: err && typeof err.code !== "number" ? `${stderr}${err.message}` : stderr,
        }),
    ),
  );
}

/** Runs `docker args...` and returns its stdout; throws with its stderr when it fails. */
export async function dockerOk(args: string[]): Promise<string> {
  const r = await docker(args);
  if (r.code !== 0)
    throw new Error(`docker ${args.slice(0, 2).join(" ")}: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout;
}

/** The engine's version, or undefined with the reason when none answers. */
export async function dockerEngine(): Promise<{ version?: string; reason?: string }> {
  const r = await docker(["version", "--format", "{{.Server.Version}}"], { timeoutMs: 20_000 });
  if (r.code === 0 && r.stdout.trim()) return { version: r.stdout.trim() };
  return { reason: `no Docker engine answers at ${dockerHost()}: ${r.stderr.trim()}` };
}

/** The label that marks the containers a node agent runs, with the agent's state folder. */
export const agentLabel = "herd.dev/node-agent-state";

/** Removes every container a node agent of this state folder started (it died, or is down). */
export async function removeAgentContainers(stateDir: string): Promise<number> {
  const ids = (await docker(["ps", "-aq", "--filter", `label=${agentLabel}=${stateDir}`])).stdout
    .split("\n")
    .filter(Boolean);
  if (ids.length > 0) await docker(["rm", "-f", ...ids]);
  return ids.length;
}

/**
 * For container tests: false when an engine answers, else the reason to skip, also printed as
 * a banner on stderr so a run without Docker says so loudly rather than passing quietly.
 */
export async function noDockerReason(): Promise<string | false> {
  const engine = await dockerEngine();
  if (engine.version) return false;
  const reason = `NO DOCKER ENGINE, CONTAINER TESTS NOT RUN: ${engine.reason} (scripts/provision.d/60-docker.sh starts one unless HERD_NO_DOCKER=1)`;
  const bar = "!".repeat(78);
  console.error(`${bar}\n${reason}\n${bar}`);
  return reason;
}
