// Typed view of the addon's SentencePiece tokenizer (native/src/binding/tokenizer.cc).
import { native } from "./index.ts";

export interface Tokenizer {
  /** Number of pieces; every id is in [0, vocabSize). */
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  /** Token ids of `text`, with BOS/EOS when asked; runs off the JavaScript thread. */
  encode(text: string, bos?: boolean, eos?: boolean): Promise<Int32Array>;
  /** Many texts at once, encoded in parallel on every core. */
  encodeBatch(texts: string[], bos?: boolean, eos?: boolean): Promise<Int32Array[]>;
  /** Text of `ids`; rejects ids outside the vocabulary. */
  decode(ids: Int32Array | number[]): Promise<string>;
  /** The piece of `id` (e.g. "▁the", "<0x0A>"); throws outside the vocabulary. */
  piece(id: number): string;
  /** Id of `piece`, or unkId when the model has no such piece. */
  pieceId(piece: string): number;
  /** Whether `id` is one of the 256 byte-fallback pieces <0x00>…<0xFF>. */
  isByte(id: number): boolean;
}

export interface TrainTokenizerOptions {
  /** Plain-text files, one sentence per line. */
  inputs: string[];
  /** Output .model file, written atomically. */
  modelPath: string;
  vocabSize?: number;
  characterCoverage?: number;
  inputSentenceSize?: number;
  maxSentenceLength?: number;
  /** 0 or absent: every core. */
  threads?: number;
  seed?: number;
  /** SentencePiece's training log (a line per merge) on stderr. */
  verbose?: boolean;
}

interface TokenizerBinding {
  Tokenizer: new (path: string) => Tokenizer;
  trainTokenizer(options: TrainTokenizerOptions): Promise<void>;
}

const binding = native as unknown as TokenizerBinding;

/** Loads a SentencePiece model file; throws a message naming the file when it is not one. */
export function loadTokenizer(path: string): Tokenizer {
  return new binding.Tokenizer(path);
}

/** Trains a BPE model with LLaMA's settings (split digits, byte fallback, identity normaliser). */
export function trainTokenizer(options: TrainTokenizerOptions): Promise<void> {
  return binding.trainTokenizer(options);
}
