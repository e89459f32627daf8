// herd convert: a model from one format to another (herd checkpoint, Hugging Face LLaMA,
// llama2.c, GGUF). The tokenizer travels into GGUF files and, as tokenizer.json, into Hugging
// Face folders; see docs/eval.md and docs/fine-tuning.md.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const usage = `usage: herd convert --from <path> --to <path> --to-format herd|safetensors|llama2c|gguf
  [--from-format auto|herd|safetensors|gguf|llama2c] [--type f32|f16|bf16|q8_0|q4_0|q4_1 (gguf)]
  [--tokenizer <model.gguf>]  (gguf, safetensors: the tokenizer to write in; default --from
                               when it is a GGUF)`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      from: { type: "string" },
      to: { type: "string" },
      "from-format": { type: "string" },
      "to-format": { type: "string" },
      type: { type: "string" },
      tokenizer: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (!values.from || !values.to || !values["to-format"]) {
    console.error(`herd convert: --from, --to and --to-format are required\n${usage}`);
    return 64;
  }
  const formats = await import("../workers/model/formats.ts");
  const { ggmlType, parseGguf, tokenizerMetadata } = await import("../workers/model/gguf.ts");
  const { hfTokenizerFiles } = await import("../workers/model/hf-tokenizer.ts");
  const { formatOf } = await import("../workers/eval/open.ts");
  try {
    const m = formats.readModel(values.from, formatOf(values["from-format"]), (w) =>
      console.error(`warning: ${w}`),
    );
    const to = formatOf(values["to-format"]);
    // The GGUF whose tokenizer goes with the weights: --tokenizer, or --from when it is one;
    // its vocabulary must be the model's.
    const source = values.tokenizer ?? (m.format === "gguf" ? values.from : undefined);
    const tokenizerGguf = source ? parseGguf(readFileSync(source), source) : undefined;
    const tokenCount = tokenizerGguf?.metadata.get("tokenizer.ggml.tokens");
    if (tokenizerGguf && (!Array.isArray(tokenCount) || tokenCount.length !== m.config.vocabSize))
      throw new Error(
        `--tokenizer: ${source} has ${Array.isArray(tokenCount) ? tokenCount.length : "no"} tokens, the model's vocabulary is ${m.config.vocabSize}`,
      );
    const noTokenizer = `a ${m.format} checkpoint carries no tokenizer; give --tokenizer, the GGUF file whose tokenizer the model was trained with (a fine-tuned model's base model)`;
    switch (to) {
      case "herd":
        console.error(`wrote ${formats.writeHerd(values.to, m)}`);
        break;
      case "hf":
        mkdirSync(values.to, { recursive: true });
        if (!tokenizerGguf) console.error(`warning: no tokenizer.json written: ${noTokenizer}`);
        formats.writeHf(
          values.to,
          m,
          tokenizerGguf ? hfTokenizerFiles(tokenizerGguf, m.config.maxSeqLen) : {},
        );
        break;
      case "llama2c":
        formats.writeLlama2c(values.to, m);
        break;
      case "gguf": {
        const types: Record<string, number> = {
          f32: ggmlType.F32,
          f16: ggmlType.F16,
          bf16: ggmlType.BF16,
          q8_0: ggmlType.Q8_0,
          q4_0: ggmlType.Q4_0,
          q4_1: ggmlType.Q4_1,
        };
        const type = types[values.type ?? "f32"];
        if (type === undefined)
          throw new Error(`--type must be one of ${Object.keys(types).join(", ")}`);
        // The tokenizer travels with the weights: llama.cpp loads no GGUF without one.
        if (!tokenizerGguf) throw new Error(`--tokenizer: ${noTokenizer}`);
        writeFileSync(
          values.to,
          formats.encodeGgufModel(m, type, tokenizerMetadata(tokenizerGguf)),
        );
        break;
      }
      default:
        throw new Error("--to-format must be herd, safetensors, llama2c or gguf");
    }
    console.error(
      `converted ${values.from} (${m.format}) to ${values.to} (${values["to-format"]})`,
    );
    return 0;
  } catch (err) {
    console.error(`herd convert: ${(err as Error).message}`);
    return 64;
  }
}
