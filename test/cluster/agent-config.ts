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
  for (const [i, n] of config.nodes.entries()) {
    if (!n?.name || typeof n.capacity !== "object") {
      throw new Error(`${file}: nodes[${i}] needs a name and a capacity map`);
    }
  }
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
