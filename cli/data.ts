// `herd data`: turn text into token shards (`prepare`) and check shards (`verify`).
//
// prepare reads text or JSONL files, hands documents to the native Preparer in batches
// (deduplication, filters and tokenization run there, on every core, while this side reads
// the next batch), and writes meta.json beside the shards. See docs/data.md.
import { readdirSync, rmSync, statSync } from "node:fs";
import { mkdir, open, rename } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import {
  createPreparer,
  verifyShard,
  type PrepareOptions,
  type PrepareStats,
} from "../native/data.ts";
import { createDecompressedStream, uncompressedName } from "../workers/compressed.ts";
import { sha256File } from "../workers/file-hash.ts";
import { expandInputs } from "./tokenizer.ts";

const usage = `Usage:
  herd data prepare --input <file|dir>... --tokenizer <model> --out <dir> [options]
  herd data prepare --instruct --input <jsonl>... --tokenizer <model.gguf|hf-folder|.model> --out <dir>
      [--holdout F] [--chat-template FILE] [--shard-tokens N] [--force]
  herd data verify <shard|dir>...

prepare options:
  --format auto|text|jsonl   input format; auto: .jsonl/.json files are JSONL (default auto)
  --field NAME               JSONL field holding the text (default text)
  --text-split file|paragraph|line
                             what a document is in a text file (default file)
  --shard-tokens N           tokens per shard, closed at a document end (default 134217728)
  --threads N                tokenizer threads (default: every core)
  --no-bos, --no-eos         no BOS before / EOS after each document
  --no-dedup-docs            keep repeated documents
  --dedup-lines              drop non-blank lines seen before (CCNet)
  --min-words N              drop documents with fewer words (default 5)
  --line-min-words N         drop lines with fewer words (default 0 = off; C4: 5)
  --terminal-punct           drop lines not ending in . ! ? or " (C4)
  --max-bad-chars F          drop documents with a larger share of bad characters (default 0.1)
  --max-line-chars N         drop documents with a longer line (default 0 = off)
  --c4                       C4's line rules: --line-min-words 5 --terminal-punct
  --no-filters               every filter off (deduplication stays as set)
  --batch-bytes N            bytes of text per native batch (default 8388608)
  --force                    replace shards already in --out
  --quiet                    no progress output

--instruct: conversations (JSONL of {prompt, response}, of {messages}, or oasst1 rows) →
  examples with learn masks (replies only), rendered with the model's chat template:
  --tokenizer F              a GGUF model (its tokenizer and chat template) or a .model file
  --holdout F                share of conversations kept out, in heldout.jsonl (default 0)
  --chat-template FILE       a Jinja template instead of the model's`;

export type InputFormat = "text" | "jsonl";
export type TextSplit = "file" | "paragraph" | "line";

/** Atomically replaces `file` with `text`: temporary name, fsync, rename, fsync of the folder. */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  const dir = await open(path.dirname(file), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

function formatOf(file: string, format: string): InputFormat {
  if (format === "text" || format === "jsonl") return format;
  return /\.jsonl?$/i.test(uncompressedName(file)) ? "jsonl" : "text";
}

/**
 * Documents of one input file, in order. JSONL: one per line, from `field` (a line that is
 * not JSON, or lacks the field, is an error naming the file and line). Text: the whole file,
 * each blank-line-separated paragraph, or each line.
 */
export async function* readDocuments(
  file: string,
  format: InputFormat,
  field: string,
  split: TextSplit,
  onBytes: (n: number) => void,
): AsyncGenerator<string> {
  const input = createDecompressedStream(file).setEncoding("utf8");
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  let paragraph: string[] = [];
  let whole: string[] = [];
  for await (const line of lines) {
    lineNo++;
    onBytes(Buffer.byteLength(line) + 1);
    if (format === "jsonl") {
      if (line.trim() === "") continue;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch (err) {
        throw new Error(`${file}:${lineNo}: not JSON (${(err as Error).message})`);
      }
      const text = (obj as Record<string, unknown> | null)?.[field];
      if (typeof text !== "string")
        throw new Error(`${file}:${lineNo}: no string field '${field}' (use --field)`);
      yield text;
    } else if (split === "line") {
      yield line;
    } else if (split === "paragraph") {
      if (line.trim() === "") {
        if (paragraph.length > 0) yield paragraph.join("\n") + "\n";
        paragraph = [];
      } else {
        paragraph.push(line);
      }
    } else {
      whole.push(line);
    }
  }
  if (paragraph.length > 0) yield paragraph.join("\n") + "\n";
  if (format === "text" && split === "file" && whole.length > 0) {
    yield whole.join("\n") + "\n";
    whole = [];
  }
}

/** A progress bar on a terminal, a plain line per 10 % otherwise. */
class Progress {
  private done = 0;
  private lastDraw = 0;
  private lastDecile = -1;
  private readonly t0 = Date.now();
  constructor(
    private readonly total: number,
    private readonly quiet: boolean,
  ) {}

  add(bytes: number) {
    this.done += bytes;
    if (this.quiet) return;
    const now = Date.now();
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    if (process.stderr.isTTY) {
      if (now - this.lastDraw < 100 && frac < 1) return;
      this.lastDraw = now;
      const width = 30;
      const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
      process.stderr.write(`\r[${bar}] ${(frac * 100).toFixed(1).padStart(5)}% ${this.rate()}`);
    } else {
      const decile = Math.floor(frac * 10);
      if (decile === this.lastDecile) return;
      this.lastDecile = decile;
      console.error(`prepare: ${(frac * 100).toFixed(0)}% read, ${this.rate()}`);
    }
  }

  rate(): string {
    const s = Math.max((Date.now() - this.t0) / 1000, 1e-3);
    return `${(this.done / 1e6).toFixed(1)} MB, ${(this.done / 1e6 / s).toFixed(2)} MB/s`;
  }

  end() {
    if (!this.quiet && process.stderr.isTTY) process.stderr.write("\n");
  }
}

export interface PrepareRun {
  inputs: string[];
  format: "auto" | InputFormat;
  field: string;
  split: TextSplit;
  batchBytes: number;
  quiet: boolean;
  native: PrepareOptions;
}

/** The whole `prepare` run: read, process in native batches, write meta.json. */
export async function prepare(
  run: PrepareRun,
): Promise<PrepareStats & { seconds: number; inputBytes: number }> {
  const files = expandInputs(run.inputs);
  if (files.length === 0) throw new Error(`no input files under ${run.inputs.join(", ")}`);
  const sources = files.map((f) => ({
    path: f,
    bytes: statSync(f).size,
    format: formatOf(f, run.format),
  }));
  const inputBytes = sources.reduce((a, s) => a + s.bytes, 0);
  const t0 = Date.now();
  const preparer = createPreparer(run.native);
  const progress = new Progress(inputBytes, run.quiet);

  let batch: string[] = [];
  let batchBytes = 0;
  let inFlight: Promise<void> = Promise.resolve();
  const submit = async () => {
    const docs = batch;
    batch = [];
    batchBytes = 0;
    await inFlight; // the native side takes one batch at a time; reading goes on meanwhile
    inFlight = preparer.add(docs);
  };
  for (const source of sources) {
    for await (const doc of readDocuments(source.path, source.format, run.field, run.split, (n) =>
      progress.add(n),
    )) {
      batch.push(doc);
      batchBytes += doc.length;
      if (batchBytes >= run.batchBytes) await submit();
    }
  }
  if (batch.length > 0) await submit();
  await inFlight;
  const stats = await preparer.finish();
  progress.end();
  const seconds = (Date.now() - t0) / 1000;

  const meta = {
    format: "herd-token-shards",
    version: 1,
    created: new Date().toISOString(),
    tokenizer: {
      path: run.native.tokenizer,
      sha256: sha256File(run.native.tokenizer),
      vocabSize: stats.vocabSize,
    },
    sources,
    options: {
      format: run.format,
      field: run.field,
      textSplit: run.split,
      ...run.native,
      outDir: undefined,
    },
    stages: stats.stages,
    tokens: stats.tokens,
    shards: stats.shards,
  };
  await writeFileAtomic(
    path.join(run.native.outDir, "meta.json"),
    JSON.stringify(meta, null, 2) + "\n",
  );
  return { ...stats, seconds, inputBytes };
}

function num(name: string, value: string | undefined, integer = true): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n)))
    throw new Error(
      `--${name} must be a non-negative ${integer ? "integer" : "number"}, got '${value}'`,
    );
  return n;
}

async function prepareCommand(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      input: { type: "string", multiple: true },
      tokenizer: { type: "string" },
      out: { type: "string" },
      format: { type: "string", default: "auto" },
      field: { type: "string", default: "text" },
      "text-split": { type: "string", default: "file" },
      "shard-tokens": { type: "string" },
      threads: { type: "string" },
      "no-bos": { type: "boolean", default: false },
      "no-eos": { type: "boolean", default: false },
      "no-dedup-docs": { type: "boolean", default: false },
      "dedup-lines": { type: "boolean", default: false },
      "min-words": { type: "string" },
      "line-min-words": { type: "string" },
      "terminal-punct": { type: "boolean", default: false },
      "max-bad-chars": { type: "string" },
      "max-line-chars": { type: "string" },
      c4: { type: "boolean", default: false },
      "no-filters": { type: "boolean", default: false },
      "batch-bytes": { type: "string" },
      force: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      instruct: { type: "boolean", default: false },
      holdout: { type: "string" },
      "chat-template": { type: "string" },
    },
  });
  if (!v.input?.length || !v.tokenizer || !v.out)
    throw new Error(`prepare needs --input, --tokenizer and --out\n${usage}`);
  if (v.instruct) return prepareInstructCommand(v);
  if (!["auto", "text", "jsonl"].includes(v.format))
    throw new Error(`--format must be auto, text or jsonl`);
  if (!["file", "paragraph", "line"].includes(v["text-split"]))
    throw new Error(`--text-split must be file, paragraph or line`);
  const shardTokens = num("shard-tokens", v["shard-tokens"]);
  if (shardTokens === 0) throw new Error("--shard-tokens must be positive");

  await mkdir(v.out, { recursive: true });
  const existing = readdirSync(v.out).filter(
    (f) => /^shard-\d+\.bin$/.test(f) || f === "meta.json",
  );
  if (existing.length > 0) {
    if (!v.force)
      throw new Error(
        `${v.out} already holds shards (${existing[0]}, ...): pass --force to replace them`,
      );
    for (const f of existing) rmSync(path.join(v.out, f));
  }

  const off = v["no-filters"];
  const options: PrepareOptions = {
    tokenizer: v.tokenizer,
    outDir: v.out,
    shardTokens,
    threads: num("threads", v.threads),
    bos: !v["no-bos"],
    eos: !v["no-eos"],
    dedupDocs: !v["no-dedup-docs"],
    dedupLines: v["dedup-lines"],
    minWords: off ? 0 : num("min-words", v["min-words"]),
    lineMinWords: off ? 0 : (num("line-min-words", v["line-min-words"]) ?? (v.c4 ? 5 : undefined)),
    terminalPunct: off ? false : v["terminal-punct"] || v.c4,
    maxBadChars: off ? 0 : num("max-bad-chars", v["max-bad-chars"], false),
    maxLineChars: off ? 0 : num("max-line-chars", v["max-line-chars"]),
  };
  for (const key of Object.keys(options) as (keyof PrepareOptions)[])
    if (options[key] === undefined) delete options[key];

  const stats = await prepare({
    inputs: v.input,
    format: v.format as PrepareRun["format"],
    field: v.field,
    split: v["text-split"] as TextSplit,
    batchBytes: num("batch-bytes", v["batch-bytes"]) ?? 8 << 20,
    quiet: v.quiet,
    native: options,
  });
  const width = Math.max(...stats.stages.map((s) => s.name.length));
  for (const s of stats.stages)
    console.log(`${s.name.padEnd(width)}  ${s.docs} docs  ${s.lines} lines  ${s.bytes} bytes`);
  console.log(
    `wrote ${stats.tokens} tokens in ${stats.shards.length} shard(s) to ${v.out} in ${stats.seconds.toFixed(1)}s ` +
      `(${(stats.inputBytes / 1e6 / Math.max(stats.seconds, 1e-3)).toFixed(2)} MB/s of input)`,
  );
  return 0;
}

async function prepareInstructCommand(v: {
  input?: string[];
  tokenizer?: string;
  out?: string;
  holdout?: string;
  "chat-template"?: string;
  "shard-tokens"?: string;
  force: boolean;
}): Promise<number> {
  const { prepareInstruct } = await import("./instruct.ts");
  const r = await prepareInstruct({
    inputs: v.input!,
    tokenizer: v.tokenizer!,
    out: v.out!,
    ...(v["chat-template"] && { chatTemplate: v["chat-template"] }),
    holdout: num("holdout", v.holdout, false) ?? 0,
    shardTokens: num("shard-tokens", v["shard-tokens"]) || 134_217_728,
    force: v.force,
  });
  console.log(
    `wrote ${r.examples} examples (${r.tokens} tokens, ${r.learnedTokens} learned, longest ` +
      `${r.longestExample}) in ${r.shards.length} shard(s) to ${v.out}` +
      (r.heldOut > 0 ? `; held out ${r.heldOut} in heldout.jsonl` : "") +
      ` in ${r.seconds.toFixed(1)}s`,
  );
  return 0;
}

async function verifyCommand(argv: string[]): Promise<number> {
  const { positionals } = parseArgs({ args: argv, allowPositionals: true, options: {} });
  if (positionals.length === 0) throw new Error(`verify needs shard files or folders\n${usage}`);
  const shards = expandInputs(positionals).filter((f) => f.endsWith(".bin"));
  if (shards.length === 0) throw new Error(`no .bin shards under ${positionals.join(", ")}`);
  let failed = 0;
  for (const shard of shards) {
    try {
      const h = await verifyShard(shard);
      console.log(`ok ${shard}: ${h.tokens} tokens, ${h.docs} docs, vocab ${h.vocabSize}`);
    } catch (err) {
      failed++;
      console.error(`FAILED ${(err as Error).message}`);
    }
  }
  return failed > 0 ? 1 : 0;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "prepare":
      return prepareCommand(rest);
    case "verify":
      return verifyCommand(rest);
    default:
      console.error(
        sub === undefined || sub === "--help" ? usage : `unknown subcommand '${sub}'\n${usage}`,
      );
      return sub === "--help" ? 0 : 2;
  }
}
