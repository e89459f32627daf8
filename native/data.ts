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
  /** Version 2 (instruction examples): 1 where the id is a target to learn. */
  learn?: Uint8Array;
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

/** Instruction examples: a folder of shard-*.bin (version 2) or the files themselves. */
export type ExampleOptions = ({ folder: string } | { shards: string[] }) & { seed?: number };

/** The rows instruction fine-tuning trains on (native/src/data/examples.h has the rule). */
export interface ExampleLoader {
  /** tokens: batch·(seqLen+1); learn (1: input t learns to predict token t+1), positions: batch·seqLen. */
  rows(
    step: number,
    rank: number,
    world: number,
    batch: number,
    seqLen: number,
  ): { tokens: Int32Array; learn: Uint8Array; positions: Int32Array };
  /** Rows epoch `epoch` packs into at this seqLen. */
  rowsInEpoch(epoch: number, seqLen: number): number;
  saveState(): string;
  loadState(state: string): void;
  readonly exampleCount: number;
  readonly vocabSize: number;
}

interface DataBinding {
  Preparer: new (options: PrepareOptions) => Preparer;
  MixtureLoader: new (options: MixtureOptions) => MixtureLoader;
  ExampleLoader: new (options: ExampleOptions) => ExampleLoader;
  readShard(path: string): Promise<ShardContents>;
  verifyShard(path: string): Promise<ShardHeader>;
  writeShard(
    path: string,
    ids: Int32Array,
    docStarts: number[],
    vocabSize: number,
    learn?: Uint8Array,
  ): Promise<void>;
}

const binding = native as unknown as DataBinding;

export const createPreparer = (options: PrepareOptions): Preparer => new binding.Preparer(options);
export const createMixtureLoader = (options: MixtureOptions): MixtureLoader =>
  new binding.MixtureLoader(options);
/** Instruction examples: the shard-*.bin files (version 2) of `herd data prepare --instruct`. */
export const createExampleLoader = (options: ExampleOptions): ExampleLoader =>
  new binding.ExampleLoader(options);
/** Reads every id of a shard (checked against its vocab size) and its document index. */
export const readShard = (path: string): Promise<ShardContents> => binding.readShard(path);
/** Structure, every id and the payload hash; rejects naming the file and byte offset. */
export const verifyShard = (path: string): Promise<ShardHeader> => binding.verifyShard(path);
/**
 * Writes a shard atomically. With `learn` (1 where an id is a target to learn) it is a
 * version-2 shard of instruction examples, one document each (`herd data prepare --instruct`).
 */
export const writeShard = (
  path: string,
  ids: Int32Array,
  docStarts: number[],
  vocabSize: number,
  learn?: Uint8Array,
): Promise<void> => binding.writeShard(path, ids, docStarts, vocabSize, learn);

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
