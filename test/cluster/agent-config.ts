// The node agent's configuration (agent.yaml in the state folder, made on the first
// `herd dev up`; edit it and restart the agent): which nodes it registers, and how container
// images map onto local folders. Documented in docs/dev-cluster.md.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

export interface NodeTaint {
  key: string;
  value?: string;
  effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

export interface NodeSpec {
  name: string;
  /** Kubernetes quantities: cpu, memory, pods, nvidia.com/gpu, ... */
  capacity: Record<string, string>;
  labels?: Record<string, string>;
  taints?: NodeTaint[];
  /** The GPU devices behind nvidia.com/gpu (CUDA_VISIBLE_DEVICES values); default 0..n-1. */
  gpuDevices?: string[];
  /**
   * process runtime: the CUDA library for containers given GPUs here (their
   * HERD_CUDA_LIBRARY). The dev plane's GPU node names the CPU stand-in, so its GPUs are
   * simulated: a job that asks for GPUs runs its CUDA path end to end on this machine.
   */
  cudaLibrary?: string;
  /**
   * How the node runs a pod's containers: "process" (the default) as local processes, image
   * paths mapped to folders; "docker" as Docker containers of the pod's image.
   */
  runtime?: NodeRuntime;
  /**
   * docker runtime: host folders mounted read-only into every container at the same path, as
   * a node's shared filesystems are (a data set, say).
   */
  hostMounts?: string[];
}

export const nodeRuntimes = ["process", "docker"] as const;
export type NodeRuntime = (typeof nodeRuntimes)[number];

/** Problems with one node's spec, each naming its field; empty when it is valid. */
export function nodeSpecErrors(n: Partial<NodeSpec> | undefined, where: string): string[] {
  const errors: string[] = [];
  if (!n?.name || typeof n.capacity !== "object")
    errors.push(`${where} needs a name and a capacity map`);
  if (n?.runtime !== undefined && !nodeRuntimes.includes(n.runtime))
    errors.push(
      `${where}.runtime: ${JSON.stringify(n.runtime)} is not one of ${nodeRuntimes.join(", ")}`,
    );
  if (n?.cudaLibrary !== undefined && (typeof n.cudaLibrary !== "string" || n.cudaLibrary === ""))
    errors.push(`${where}.cudaLibrary: ${JSON.stringify(n.cudaLibrary)} is not a path`);
  for (const [i, m] of (n?.hostMounts ?? []).entries())
    if (typeof m !== "string" || !path.isAbsolute(m))
      errors.push(`${where}.hostMounts[${i}]: ${JSON.stringify(m)} is not an absolute path`);
  return errors;
}

/**
 * An image (a glob on the image reference, `*` matching anything) runs from the host: each
 * `paths` entry maps an absolute path inside the image to a local folder, so a command,
 * argument, env value or working dir that starts with it is rewritten.
 */
export interface ImageMapping {
  image: string;
  paths: Record<string, string>;
  /** Used when the pod gives no workingDir. */
  workingDir?: string;
  /** The image's entrypoint, used when the pod gives no command. */
  command?: string[];
}

export interface AgentConfig {
  nodes: NodeSpec[];
  images: ImageMapping[];
}

/** The checkout the agent runs from; `${checkout}` in a mapped path stands for it. */
const checkout = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export function defaultAgentConfig(): AgentConfig {
  const herdImage = (image: string): ImageMapping => ({
    image,
    paths: { "/app": "${checkout}" },
    workingDir: "/app",
  });
  return {
    nodes: [
      { name: "herd-dev-1", capacity: { cpu: "4", memory: "8Gi", pods: "110" } },
      {
        name: "herd-dev-gpu-1",
        capacity: { cpu: "4", memory: "8Gi", pods: "110", "nvidia.com/gpu": "2" },
        labels: { "herd.dev/gpu": "true" },
        cudaLibrary: "${checkout}/native/build/libherd_cuda_standin.so",
      },
    ],
    // herd's own images — herd (operator/worker) and herd/trainer, the TrainingJob default —
    // however they are tagged or wherever they are pushed, run from this checkout.
    images: ["herd", "herd/trainer"].flatMap((name) => [
      herdImage(name),
      herdImage(`${name}:*`),
      herdImage(`*/${name}`),
      herdImage(`*/${name}:*`),
    ]),
  };
}

export function writeAgentConfig(file: string, config: AgentConfig): void {
  const header =
    "# herd node agent: nodes to register and image-to-folder mappings (docs/dev-cluster.md).\n";
  writeFileSync(file, header + YAML.stringify(config));
}

export function readAgentConfig(file: string): AgentConfig {
  const raw = YAML.parse(readFileSync(file, "utf8")) as Partial<AgentConfig> | null;
  const config: AgentConfig = { nodes: raw?.nodes ?? [], images: raw?.images ?? [] };
  for (const n of config.nodes)
    if (typeof n?.cudaLibrary === "string")
      n.cudaLibrary = n.cudaLibrary.replaceAll("${checkout}", checkout);
  const errors = config.nodes.flatMap((n, i) => nodeSpecErrors(n, `nodes[${i}]`));
  if (errors.length > 0) throw new Error(`${file}: ${errors.join("; ")}`);
  for (const [i, m] of config.images.entries()) {
    if (!m?.image || typeof m.paths !== "object") {
      throw new Error(`${file}: images[${i}] needs an image glob and a paths map`);
    }
    for (const [from, to] of Object.entries(m.paths)) {
      m.paths[from] = to.replaceAll("${checkout}", checkout);
    }
  }
  return config;
}

/** The first mapping whose glob matches the image reference. */
export function imageMapping(config: AgentConfig, image: string): ImageMapping | undefined {
  return config.images.find((m) => globMatch(m.image, image));
}

function globMatch(glob: string, s: string): boolean {
  const re = glob.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${re}$`).test(s);
}

const binarySuffix: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
const decimalSuffix: Record<string, number> = { m: 1e-3, "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** A Kubernetes quantity ("512Mi", "1G", "500m", "2") as a number; throws naming it if malformed. */
export function quantity(q: string, field: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|m|k|M|G|T)?$/.exec(q.trim());
  if (!m) throw new Error(`${field}: ${JSON.stringify(q)} is not a Kubernetes quantity`);
  const unit = m[2] ?? "";
  return Number(m[1]) * (binarySuffix[unit] ?? decimalSuffix[unit]!);
}
