// herd's command-line entry: a table of subcommands, each a module exporting run(argv) → exit code.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export type Run = (argv: string[]) => Promise<number>;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function version(): string {
  const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

// Subcommands load lazily, so `herd --help` never pays for the native addon or Kubernetes.
const commands: Record<string, { summary: string; load: () => Promise<Run> }> = {
  version: {
    summary: "print herd's version",
    load: async () => async () => {
      console.log(`herd ${version()}`);
      return 0;
    },
  },
  backends: {
    summary: "list the native engine's compute backends and CUDA devices",
    load: async () => (await import("./backends.ts")).run,
  },
  tokenizer: {
    summary: "train, inspect and run SentencePiece tokenizers (LLaMA settings)",
    load: async () => (await import("./tokenizer.ts")).run,
  },
  data: {
    summary: "prepare token shards from text (dedup, quality filters, tokenization), verify them",
    load: async () => (await import("./data.ts")).run,
  },
  train: {
    summary: "train a TrainingJob on this machine (--local), with checkpoints and resume",
    load: async () => (await import("./train.ts")).run,
  },
  eval: {
    summary: "evaluate a checkpoint on an EvalJob's tasks on this machine (--local)",
    load: async () => (await import("./eval.ts")).run,
  },
  report: {
    summary: "write a TrainingJob's loss curve and eval metrics as one HTML page",
    load: async () => (await import("./report.ts")).run,
  },
  generate: {
    summary: "generate text from a checkpoint (herd, safetensors, GGUF or llama2.c)",
    load: async () => (await import("./generate.ts")).run,
  },
  convert: {
    summary: "convert a model between herd, Hugging Face, llama2.c and GGUF formats",
    load: async () => (await import("./convert.ts")).run,
  },
  presets: {
    summary: "list the model presets with their sizes and parameter counts",
    load: async () => (await import("./presets.ts")).run,
  },
  dev: {
    summary: "run a local control plane: Kubernetes, Temporal, S3 and a node agent",
    load: async () => (await import("./dev.ts")).run,
  },
  crds: {
    summary: "generate (or check) the CRD manifests and docs/api.md from the schemas",
    load: async () => (await import("./crds.ts")).run,
  },
  operator: {
    summary: "run the operator: TrainingJob/EvalJob/EvalSweep objects → Temporal workflows",
    load: async () => (await import("./operator.ts")).run,
  },
  worker: {
    summary: "run the control worker: herd's workflows and their activities",
    load: async () => (await import("./worker.ts")).run,
  },
  demo: {
    summary: "run the most complete job herd has, on this machine",
    load: async () => (await import("./demo.ts")).run,
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    "herd — train and evaluate LLaMA models on Kubernetes",
    "",
    "Usage: herd <command> [options]",
    "",
    "Commands:",
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "Options:",
    "  -h, --help     show this help",
    "  -v, --version  print the version",
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    console.log(usage());
    return 0;
  }
  const command = commands[name === "-v" || name === "--version" ? "version" : name];
  if (!command) {
    console.error(`herd: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    return await (
      await command.load()
    )(rest);
  } catch (err) {
    console.error(`herd ${name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
