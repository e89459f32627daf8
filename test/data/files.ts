// The files of the repository's data/ that tests and benchmarks read (data/README.md has their
// provenance). Large text is stored gzip-compressed and herd reads it as it is; a test that
// needs the text itself uses readTextDecompressed (workers/compressed.ts).
import path from "node:path";

export const dataDir = path.resolve(import.meta.dirname, "../../data");
/** tinyshakespeare, 1,115,394 bytes of text, gzip-compressed. */
export const shakespeare = path.join(dataDir, "corpus/tinyshakespeare.txt.gz");
/** 3,794 bytes of TinyStories, plain. */
export const tinyStories = path.join(dataDir, "corpus/tinystories_sample.txt");
/** LLaMA's SentencePiece model. */
export const llamaModel = path.join(dataDir, "tokenizers/llama-sp32000.model");
/** An evaluation set by its stored name, e.g. `evalFile("piqa-val.jsonl.gz")`. */
export const evalFile = (name: string) => path.join(dataDir, "eval", name);
