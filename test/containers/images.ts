// herd's images as the container tests build them: images/Dockerfile with the local base
// (herd/base:bookworm, from scripts/provision.d/60-docker.sh) in place of the pinned public
// ones, which cannot be pulled here. Docker's layer cache makes a rebuild of unchanged
// sources take seconds.
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { version } from "../../cli/main.ts";
import { dockerEnv } from "../cluster/docker.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const localBase = "herd/base:bookworm";

/** The tags the Helm chart and the TrainingJob default refer to, at this checkout's version. */
export const herdImage = `herd/herd:${version()}`;
export const trainerImage = `herd/trainer:${version()}-cpu`;

export interface Built {
  tag: string;
  seconds: number;
}

/**
 * `docker build` of one target of images/Dockerfile from the local base. Host networking:
 * the engine has no bridge, and npm ci and apt-get in the build reach their registries.
 */
export function buildImage(target: "herd" | "trainer", tag: string): Promise<Built> {
  const args = [
    "build",
    "--network",
    "host",
    "--file",
    "images/Dockerfile",
    "--target",
    target,
    "--build-arg",
    `NODE_IMAGE=${localBase}`,
    "--tag",
    tag,
    ".",
  ];
  const t0 = Date.now();
  return new Promise((resolve, reject) =>
    execFile(
      "docker",
      args,
      // The engine's own (classic) builder: Debian's docker.io has no buildx.
      { cwd: root, env: { ...dockerEnv(), DOCKER_BUILDKIT: "0" }, maxBuffer: 256 << 20 },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new Error(
              `docker build --target ${target} failed:\n${`${stdout}\n${stderr}`.trim().split("\n").slice(-25).join("\n")}`,
            ),
          );
        else resolve({ tag, seconds: (Date.now() - t0) / 1000 });
      },
    ),
  );
}
