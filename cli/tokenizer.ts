// `herd tokenizer`: train a SentencePiece BPE model with LLaMA's settings, inspect one, and
// encode or decode text with it.
import { sha256File } from "../workers/file-hash.ts";
import {
  createWriteStream,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { positiveInt } from "./args.ts";
import { loadTokenizer, trainTokenizer } from "../native/tokenizer.ts";
import { compressionOf, createDecompressedStream } from "../workers/compressed.ts";

const usage = `Usage:
  herd tokenizer train --input <file|dir>... --out <model> [--vocab-size 32000] [--threads N]
                       [--character-coverage 0.99995] [--input-sentence-size N] [--seed N] [--verbose]
  herd tokenizer info --model <model>
  herd tokenizer encode --model <model> [--bos] [--eos] [--pieces] [text...]   (stdin without text)
  herd tokenizer decode --model <model> [id...]                               (stdin without ids)`;

/** Files under each input, recursively, in sorted order; plain files pass through. */
export function expandInputs(inputs: string[]): string[] {
  const files: string[] = [];
  const walk = (p: string) => {
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) throw new Error(`input ${p} does not exist`);
    if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) walk(path.join(p, name));
    } else if (st.isFile()) {
      files.push(p);
    }
  };
  for (const input of inputs) walk(input);
  return files;
}

/** The file itself if it is plain, else its decompressed copy at `dest`. */
async function plainCopy(file: string, dest: string): Promise<string> {
  if (compressionOf(file) === "none") return file;
  await pipeline(createDecompressedStream(file), createWriteStream(dest));
  return dest;
}

async function train(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      input: { type: "string", multiple: true },
      out: { type: "string" },
      "vocab-size": { type: "string" },
      threads: { type: "string" },
      "character-coverage": { type: "string" },
      "input-sentence-size": { type: "string" },
      seed: { type: "string" },
      verbose: { type: "boolean", default: false },
    },
  });
  if (!values.input?.length || !values.out)
    throw new Error(`train needs --input and --out\n${usage}`);
  const inputs = expandInputs(values.input);
  if (inputs.length === 0) throw new Error(`no files under ${values.input.join(", ")}`);
  const coverage = values["character-coverage"];
  const t0 = Date.now();
  // SentencePiece's trainer reads plain files only: compressed inputs are expanded first
  const scratch = mkdtempSync(path.join(tmpdir(), "herd-tokenizer-"));
  try {
    await trainTokenizer({
      inputs: await Promise.all(inputs.map((f, i) => plainCopy(f, path.join(scratch, `${i}`)))),
      modelPath: values.out,
      vocabSize: positiveInt(values["vocab-size"], "vocab-size"),
      threads: positiveInt(values.threads, "threads"),
      characterCoverage: coverage === undefined ? undefined : Number(coverage),
      inputSentenceSize: positiveInt(values["input-sentence-size"], "input-sentence-size"),
      seed: positiveInt(values.seed, "seed"),
      verbose: values.verbose,
    });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const tok = loadTokenizer(values.out);
  console.log(
    `wrote ${values.out}: ${tok.vocabSize} pieces from ${inputs.length} file(s) in ` +
      `${((Date.now() - t0) / 1000).toFixed(1)}s, sha256 ${sha256File(values.out)}`,
  );
  return 0;
}

function info(argv: string[]): number {
  const { values } = parseArgs({ args: argv, options: { model: { type: "string" } } });
  if (!values.model) throw new Error(`info needs --model\n${usage}`);
  const tok = loadTokenizer(values.model);
  let bytes = 0;
  for (let id = 0; id < tok.vocabSize; id++) if (tok.isByte(id)) bytes++;
  console.log(`model: ${values.model}`);
  console.log(`sha256: ${sha256File(values.model)}`);
  console.log(`vocab size: ${tok.vocabSize}`);
  console.log(`unk/bos/eos: ${tok.unkId}/${tok.bosId}/${tok.eosId}`);
  console.log(`byte pieces: ${bytes}`);
  return 0;
}

async function encode(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: "string" },
      bos: { type: "boolean", default: false },
      eos: { type: "boolean", default: false },
      pieces: { type: "boolean", default: false },
    },
  });
  if (!values.model) throw new Error(`encode needs --model\n${usage}`);
  const tok = loadTokenizer(values.model);
  const texts = positionals.length > 0 ? positionals : [readFileSync(0, "utf8")];
  for (const ids of await tok.encodeBatch(texts, values.bos, values.eos)) {
    const out = values.pieces ? [...ids].map((id) => tok.piece(id)) : [...ids];
    console.log(out.join(" "));
  }
  return 0;
}

async function decode(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { model: { type: "string" } },
  });
  if (!values.model) throw new Error(`decode needs --model\n${usage}`);
  const tok = loadTokenizer(values.model);
  const words = positionals.length > 0 ? positionals : readFileSync(0, "utf8").split(/\s+/);
  const ids = words
    .filter((w) => w !== "")
    .map((w) => {
      const id = Number(w);
      if (!Number.isInteger(id)) throw new Error(`'${w}' is not a token id`);
      return id;
    });
  process.stdout.write(await tok.decode(ids));
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "train":
      return train(rest);
    case "info":
      return info(rest);
    case "encode":
      return encode(rest);
    case "decode":
      return decode(rest);
    default:
      console.error(
        sub === undefined || sub === "--help" ? usage : `unknown subcommand '${sub}'\n${usage}`,
      );
      return sub === "--help" ? 0 : 2;
  }
}
