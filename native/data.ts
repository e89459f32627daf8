// Typed view of the addon's data pipeline (native/src/binding/data.cc): the text → shard
// Preparer, token-shard I/O, and the mixture loader that the trainer reads batches from.
import { native } from "./index.ts";

export interface PrepareOptions {
  /** SentencePiece model file. */
  tokenizer: string;
  /** Existing folder that receives shard-NNNNNN.bin files. */
  outDir: string;
  /** A shard closes at the first document end past this many tokens. */
  shardTokens?: number;
  bos?: boolean;
  eos?: boolean;
  /** 0 or absent: every core. */
  threads?: number;
  dedupDocs?: boolean;
  dedupLines?: boolean;
  maxLineChars?: number;
  maxBadChars?: number;
  lineMinWords?: number;
  terminalPunct?: boolean;
  minWords?: number;
}

/** What is left after a pipeline stage. */
export interface StageCount {
  name: string;
  docs: number;
  lines: number;
  bytes: number;
}

export interface PrepareStats {
  stages: StageCount[];
  shards: { file: string; tokens: number; docs: number }[];
  tokens: number;
  vocabSize: number;
}

export interface Preparer {
  /** One batch of documents, in input order; await it before the next call. */
  add(docs: string[]): Promise<void>;
  /** Writes the last shard and returns the counts. */
  finish(): Promise<PrepareStats>;
}

export interface ShardHeader {
  path: string;
  version: number;
  tokenBytes: number;
  tokens: number;
  docs: number;
  vocabSize: number;
}

export interface ShardContents extends ShardHeader {
  ids: Int32Array;
  /** docs + 1 token offsets: document d is ids[docStarts[d], docStarts[d+1]). */
  docStarts: number[];
}

export interface MixtureSource {
  /** No whitespace; names the source in the saved state. */
  name: string;
  weight: number;
  /** A folder of shard-*.bin files (read in name order) ... */
  folder?: string;
  /** ... or these shard files, in this order. */
  shards?: string[];
}

export interface MixtureOptions {
  sources: MixtureSource[];
  seed?: number;
  /** Rows per block; weights are resolved to 1/blockRows. Default 10000. */
  blockRows?: number;
}

export interface SourcePosition {
  name: string;
  tokens: number;
  windows: number;
  samples: number;
  epoch: number;
}

export interface MixtureLoader {
  readonly vocabSize: number;
  /** batch·(seqLen+1) ids: rows rank·batch … of the global batch of step `step`. */
  batch(
    step: number,
    rank: number,
    world: number,
    batch: number,
    seqLen: number,
  ): Promise<Int32Array>;
  /** Opaque text for the checkpoint's trainer state. */
  saveState(): string;
  /** Throws when the state was saved with another seed or other data. */
  loadState(state: string): void;
  /** Samples drawn and epoch per source after the last batch served. */
  positions(): SourcePosition[];
  /** Where global row g reads from. */
  sample(
    globalRow: number,
    seqLen: number,
  ): { source: number; k: number; epoch: number; window: number };
}

interface DataBinding {
  Preparer: new (options: PrepareOptions) => Preparer;
  MixtureLoader: new (options: MixtureOptions) => MixtureLoader;
  readShard(path: string): Promise<ShardContents>;
  verifyShard(path: string): Promise<ShardHeader>;
  writeShard(path: string, ids: Int32Array, docStarts: number[], vocabSize: number): Promise<void>;
}

const binding = native as unknown as DataBinding;

export const createPreparer = (options: PrepareOptions): Preparer => new binding.Preparer(options);
export const createMixtureLoader = (options: MixtureOptions): MixtureLoader =>
  new binding.MixtureLoader(options);
/** Reads every id of a shard (checked against its vocab size) and its document index. */
export const readShard = (path: string): Promise<ShardContents> => binding.readShard(path);
/** Structure, every id and the payload hash; rejects naming the file and byte offset. */
export const verifyShard = (path: string): Promise<ShardHeader> => binding.verifyShard(path);
/** Writes a shard atomically (for tools and tests; `herd data prepare` writes its own). */
export const writeShard = (
  path: string,
  ids: Int32Array,
  docStarts: number[],
  vocabSize: number,
): Promise<void> => binding.writeShard(path, ids, docStarts, vocabSize);

/** The LLaMA paper's Table 1 sampling proportions, in percent. */
export const LLAMA_MIXTURE: Readonly<Record<string, number>> = {
  commoncrawl: 67,
  c4: 15,
  github: 4.5,
  wikipedia: 4.5,
  books: 4.5,
  arxiv: 2.5,
  stackexchange: 2,
};
