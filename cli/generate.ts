// herd generate --checkpoint <dir|file> --prompt "...": text from a model, with a KV cache.
import { parseArgs } from "node:util";

const usage = `usage: herd generate --checkpoint <dir|file> --prompt <text>
  [--format auto|herd|safetensors|gguf|llama2c] [--tokenizer <sentencepiece.model>|bytes]
  [--max-tokens 64] [--temperature 0] [--top-p 1] [--seed 0] [--threads N]`;

function num(value: string | undefined, flag: string, fallback: number, integer = false): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isSafeInteger(n)))
    throw new Error(
      `--${flag} must be a non-negative ${integer ? "integer" : "number"}, got '${value}'`,
    );
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      checkpoint: { type: "string" },
      prompt: { type: "string" },
      format: { type: "string" },
      tokenizer: { type: "string" },
      "max-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-p": { type: "string" },
      seed: { type: "string" },
      threads: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (!values.checkpoint || values.prompt === undefined) {
    console.error(`herd generate: --checkpoint and --prompt are required\n${usage}`);
    return 64;
  }
  const { openModel } = await import("../workers/eval/open.ts");
  const { continuationText } = await import("../workers/model/tokenizers.ts");
  try {
    const maxNewTokens = num(values["max-tokens"], "max-tokens", 64, true);
    const temperature = num(values.temperature, "temperature", 0);
    const topP = num(values["top-p"], "top-p", 1);
    const seed = num(values.seed, "seed", 0, true);
    const threads = values.threads ? num(values.threads, "threads", 1, true) : undefined;
    const tokenizer =
      values.tokenizer === undefined
        ? undefined
        : values.tokenizer === "bytes"
          ? ({ type: "bytes" } as const)
          : ({ type: "sentencepiece", uri: values.tokenizer } as const);
    const m = openModel({
      path: values.checkpoint,
      format: values.format,
      tokenizer,
      threads,
      maxSeqLen: 4096,
    });
    const t = m.tokenizer;
    const ids = await t.encode(values.prompt);
    const prompt = Int32Array.from([
      ...(t.addBos && t.bosId !== undefined ? [t.bosId] : []),
      ...ids,
    ]);
    if (prompt.length === 0) throw new Error("the prompt has no tokens");
    const started = Date.now();
    const out = await m.inference.generate(prompt, {
      maxNewTokens,
      temperature,
      topP,
      seed,
      stop: t.eosId !== undefined ? Int32Array.of(t.eosId) : undefined,
    });
    const generated = Array.from(out).filter((id) => id !== t.eosId);
    process.stdout.write(values.prompt + (await continuationText(t, ids, generated)) + "\n");
    const s = (Date.now() - started) / 1000;
    console.error(
      `${out.length} tokens in ${s.toFixed(2)} s (${(out.length / s).toFixed(1)} tokens/s, prompt ${prompt.length} tokens)`,
    );
    return 0;
  } catch (err) {
    console.error(`herd generate: ${(err as Error).message}`);
    return 64;
  }
}
