// Tokenizers for the model formats herd reads: one interface over
//   - the GPT-2-style byte-level BPE that GGUF files carry as tokenizer.ggml.model "gpt2"
//     (SmolLM2, LLaMA 3, ...): bytes mapped to printable characters, a pre-tokenizer regex,
//     then merges applied lowest rank first;
//   - the SentencePiece-style "llama" vocabulary in GGUF (pieces with scores): spaces become
//     "▁", adjacent pieces merge highest score first, unknown characters fall back to
//     <0xXX> byte pieces — what llama.cpp's SPM tokenizer does;
//   - herd's own SentencePiece model files through the native binding.
import { loadTokenizer } from "../../native/tokenizer.ts";
import {
  GgufError,
  type GgufFile,
  metaNumber,
  metaNumbers,
  metaString,
  metaStrings,
} from "./gguf.ts";

export interface TextTokenizer {
  readonly kind: "bpe" | "spm" | "sentencepiece" | "bytes";
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /** The model expects BOS at the start of a sequence (llama.cpp's add_bos_token). */
  readonly addBos: boolean;
  /** Token ids of text, without BOS/EOS. */
  encode(text: string): Promise<Int32Array>;
  decode(ids: ArrayLike<number>): Promise<string>;
}

/**
 * The text that `continuation` adds after `prompt` (token ids, without BOS). Decoding the
 * continuation alone loses what depends on the tokens before it: SentencePiece drops the
 * space of a first "▁to", and a character whose UTF-8 bytes straddle the boundary breaks. So
 * the two are decoded together and the prompt's own decoding is cut off. Every place that
 * shows or scores generated text uses this.
 */
export async function continuationText(
  t: TextTokenizer,
  prompt: ArrayLike<number>,
  continuation: ArrayLike<number>,
): Promise<string> {
  const before = await t.decode(prompt);
  const whole = await t.decode([...Array.from(prompt), ...Array.from(continuation)]);
  if (whole.startsWith(before)) return whole.slice(before.length);
  // the prompt decoded alone can differ at its very end (an incomplete character)
  let i = 0;
  while (i < before.length && before[i] === whole[i]) i++;
  return whole.slice(i);
}

// ---- GPT-2 byte-level BPE -------------------------------------------------------------------

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards. */
export function byteToUnicode(): string[] {
  const map: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable =
      (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map[b] = String.fromCodePoint(printable ? b : 256 + n++);
  }
  return map;
}

// llama.cpp's pre-tokenizer expressions, applied one after the other to the pieces the
// previous one left (both the matches and the text between them are kept).
export const gpt2Regex =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
export const preTokenizers: Record<string, RegExp[]> = {
  gpt2: [gpt2Regex],
  // starcoder, smollm, refact, ...: every digit alone first
  smollm: [/\p{N}/gu, gpt2Regex],
  starcoder: [/\p{N}/gu, gpt2Regex],
  refact: [/\p{N}/gu, gpt2Regex],
  default: [gpt2Regex],
};

export function preTokenize(text: string, regexes: RegExp[]): string[] {
  let pieces = [text];
  for (const re of regexes) {
    const next: string[] = [];
    for (const piece of pieces) {
      let at = 0;
      for (const m of piece.matchAll(re)) {
        if (m.index > at) next.push(piece.slice(at, m.index));
        if (m[0].length > 0) next.push(m[0]);
        at = m.index + m[0].length;
      }
      if (at < piece.length) next.push(piece.slice(at));
    }
    pieces = next;
  }
  return pieces;
}

export class BpeTokenizer implements TextTokenizer {
  readonly kind = "bpe";
  private ids = new Map<string, number>();
  private ranks = new Map<string, number>();
  private byteChar = byteToUnicode();
  private charByte = new Map<string, number>();
  private cache = new Map<string, number[]>();
  readonly vocabSize: number;

  constructor(
    private tokens: string[],
    merges: string[],
    private regexes: RegExp[],
    readonly bosId: number | undefined,
    readonly eosId: number | undefined,
    readonly addBos: boolean,
  ) {
    this.vocabSize = tokens.length;
    tokens.forEach((t, i) => {
      if (!this.ids.has(t)) this.ids.set(t, i);
    });
    merges.forEach((m, i) => {
      const space = m.indexOf(" ", 1);
      if (space < 0) throw new GgufError(`merge ${i} ${JSON.stringify(m)} has no space`);
      this.ranks.set(m, i);
    });
    this.byteChar.forEach((c, b) => this.charByte.set(c, b));
  }

  private word(piece: string): number[] {
    const cached = this.cache.get(piece);
    if (cached) return cached;
    const bytes = Buffer.from(piece, "utf8");
    let syms = Array.from(bytes, (b) => this.byteChar[b]!);
    // merge the adjacent pair with the lowest rank until none is in the merge list
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = this.ranks.get(syms[i] + " " + syms[i + 1]);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      syms = [...syms.slice(0, best), syms[best]! + syms[best + 1]!, ...syms.slice(best + 2)];
    }
    const out: number[] = [];
    for (const s of syms) {
      const id = this.ids.get(s);
      if (id !== undefined) out.push(id);
      else
        for (const ch of s) {
          const byteId = this.ids.get(ch);
          if (byteId !== undefined) out.push(byteId); // as llama.cpp: unknown bytes are dropped
        }
    }
    if (this.cache.size < 100_000) this.cache.set(piece, out);
    return out;
  }

  encode(text: string): Promise<Int32Array> {
    const out: number[] = [];
    for (const piece of preTokenize(text, this.regexes)) out.push(...this.word(piece));
    return Promise.resolve(Int32Array.from(out));
  }

  decode(ids: ArrayLike<number>): Promise<string> {
    const bytes: number[] = [];
    for (const id of Array.from(ids)) {
      const t = this.tokens[id];
      if (t === undefined) throw new RangeError(`token id ${id} is outside the vocabulary`);
      for (const ch of t) {
        const b = this.charByte.get(ch);
        if (b === undefined)
          bytes.push(...Buffer.from(ch, "utf8")); // special tokens: as text
        else bytes.push(b);
      }
    }
    return Promise.resolve(Buffer.from(bytes).toString("utf8"));
  }
}

// ---- SentencePiece-style "llama" vocabulary -------------------------------------------------

export class SpmTokenizer implements TextTokenizer {
  readonly kind = "spm";
  private ids = new Map<string, number>();
  private byteIds: number[] = new Array(256).fill(-1);
  readonly vocabSize: number;

  constructor(
    private pieces: string[],
    private scores: number[],
    readonly bosId: number | undefined,
    readonly eosId: number | undefined,
    readonly addBos: boolean,
    private addSpacePrefix: boolean,
  ) {
    this.vocabSize = pieces.length;
    pieces.forEach((p, i) => {
      if (!this.ids.has(p)) this.ids.set(p, i);
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(p);
      if (m) this.byteIds[parseInt(m[1]!, 16)] = i;
    });
  }

  encode(text: string): Promise<Int32Array> {
    if (text.length === 0) return Promise.resolve(new Int32Array(0));
    const s = ((this.addSpacePrefix ? " " : "") + text).replaceAll(" ", "▁");
    let syms = Array.from(s); // code points
    // merge the adjacent pair whose concatenation is the highest-scoring piece (leftmost on ties)
    for (;;) {
      let best = -1;
      let bestScore = -Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const id = this.ids.get(syms[i]! + syms[i + 1]!);
        if (id !== undefined && this.scores[id]! > bestScore) {
          bestScore = this.scores[id]!;
          best = i;
        }
      }
      if (best < 0) break;
      syms = [...syms.slice(0, best), syms[best]! + syms[best + 1]!, ...syms.slice(best + 2)];
    }
    const out: number[] = [];
    for (const sym of syms) {
      const id = this.ids.get(sym);
      if (id !== undefined) out.push(id);
      else
        for (const b of Buffer.from(sym, "utf8"))
          if (this.byteIds[b]! >= 0) out.push(this.byteIds[b]!);
    }
    return Promise.resolve(Int32Array.from(out));
  }

  decode(ids: ArrayLike<number>): Promise<string> {
    const bytes: number[] = [];
    for (const id of Array.from(ids)) {
      const p = this.pieces[id];
      if (p === undefined) throw new RangeError(`token id ${id} is outside the vocabulary`);
      const byte = this.byteIds.indexOf(id);
      if (byte >= 0) bytes.push(byte);
      else bytes.push(...Buffer.from(p.replaceAll("▁", " "), "utf8"));
    }
    let text = Buffer.from(bytes).toString("utf8");
    if (this.addSpacePrefix && text.startsWith(" ")) text = text.slice(1);
    return Promise.resolve(text);
  }
}

/** The tokenizer a GGUF file carries, from its tokenizer.ggml.* metadata. */
export function ggufTokenizer(f: GgufFile): TextTokenizer {
  const model = metaString(f, "tokenizer.ggml.model");
  const tokens = metaStrings(f, "tokenizer.ggml.tokens");
  if (!tokens || tokens.length === 0)
    throw new GgufError("metadata tokenizer.ggml.tokens is missing");
  const optionalId = (key: string) => {
    const v = f.metadata.get(key);
    if (v === undefined) return undefined;
    const id = metaNumber(f, key);
    if (!Number.isInteger(id) || id < 0 || id >= tokens.length)
      throw new GgufError(`metadata ${key} ${id} is outside the vocabulary`);
    return id;
  };
  const bos = optionalId("tokenizer.ggml.bos_token_id");
  const eos = optionalId("tokenizer.ggml.eos_token_id");
  const flag = (key: string, fallback: boolean) => {
    const v = f.metadata.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") throw new GgufError(`metadata ${key} is not a bool`);
    return v;
  };
  if (model === "gpt2") {
    const merges = metaStrings(f, "tokenizer.ggml.merges");
    if (!merges) throw new GgufError("metadata tokenizer.ggml.merges is missing (gpt2 tokenizer)");
    const pre = metaString(f, "tokenizer.ggml.pre", "default");
    // own keys only: "constructor" or "__proto__" must not find Object's members
    const regexes = Object.hasOwn(preTokenizers, pre) ? preTokenizers[pre] : undefined;
    if (!regexes)
      throw new GgufError(
        `pre-tokenizer ${JSON.stringify(pre)} is not supported (${Object.keys(preTokenizers).join(", ")})`,
      );
    return new BpeTokenizer(
      tokens,
      merges,
      regexes,
      bos,
      eos,
      flag("tokenizer.ggml.add_bos_token", false),
    );
  }
  if (model === "llama") {
    const scores = metaNumbers(f, "tokenizer.ggml.scores");
    if (!scores || scores.length !== tokens.length)
      throw new GgufError("metadata tokenizer.ggml.scores is missing or not one per token");
    return new SpmTokenizer(
      tokens,
      scores,
      bos,
      eos,
      flag("tokenizer.ggml.add_bos_token", true),
      flag("tokenizer.ggml.add_space_prefix", true),
    );
  }
  throw new GgufError(`tokenizer model ${JSON.stringify(model)} is not supported (gpt2, llama)`);
}

/** herd's SentencePiece model file (the TrainingJob's tokenizer) as a TextTokenizer. */
export function sentencePieceTokenizer(path: string): TextTokenizer {
  const sp = loadTokenizer(path);
  return {
    kind: "sentencepiece",
    vocabSize: sp.vocabSize,
    bosId: sp.bosId >= 0 ? sp.bosId : undefined,
    eosId: sp.eosId >= 0 ? sp.eosId : undefined,
    addBos: sp.bosId >= 0,
    encode: (text) => sp.encode(text, false, false),
    decode: (ids) => sp.decode(Array.from(ids)),
  };
}

/** The "bytes" tokenizer of tiny demo models: a text's UTF-8 bytes are its tokens. */
export const bytesTokenizer: TextTokenizer = {
  kind: "bytes",
  vocabSize: 256,
  bosId: undefined,
  eosId: undefined,
  addBos: false,
  encode: (text) => Promise.resolve(Int32Array.from(Buffer.from(text, "utf8"))),
  decode: (ids) => Promise.resolve(Buffer.from(Array.from(ids)).toString("utf8")),
};
