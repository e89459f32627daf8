// Hugging Face tokenizers (tokenizer.json and tokenizer_config.json in a model's folder), for
// the GPT-2-style byte-level BPE that herd's BpeTokenizer runs — SmolLM2's, and the one GGUF
// files carry as tokenizer.ggml.model "gpt2":
//   - readHfTokenizer: a folder's (or a tokenizer.json's) tokenizer, chat template and special
//     tokens, so a Hugging Face `spec.model.from` brings its own tokenizer as a GGUF does;
//   - hfTokenizerFiles: the same two files made from a GGUF's tokenizer, which `herd convert
//     --to-format safetensors` writes beside the weights (the `tokenizers` library loads them:
//     test/model/hf-tokenizer.test.ts).
// Other tokenizer.json models (SentencePiece-style with byte fallback, WordPiece, Unigram),
// normalizers and pre-tokenizers herd does not run are refused by name.
import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import {
  GgufError,
  type GgufFile,
  metaNumber,
  metaNumbers,
  metaString,
  metaStrings,
} from "./gguf.ts";
import { BpeTokenizer, gpt2Regex, type TextTokenizer } from "./tokenizers.ts";

export class HfTokenizerError extends Error {}

/** Whether a tokenizer path is Hugging Face's: a folder (of tokenizer.json) or a .json file. */
export function isHfTokenizer(uri: string): boolean {
  return uri.endsWith(".json") || (existsSync(uri) && statSync(uri).isDirectory());
}

/** A folder's tokenizer.json, or the file itself. */
export function hfTokenizerFile(uri: string): string {
  const file =
    existsSync(uri) && statSync(uri).isDirectory() ? path.join(uri, "tokenizer.json") : uri;
  if (!existsSync(file)) throw new HfTokenizerError(`${file} does not exist`);
  return file;
}

export interface HfTokenizer {
  tokenizer: TextTokenizer;
  /** tokenizer_config.json's chat_template, when there is one. */
  chatTemplate?: string;
  /** Added tokens marked special (<|im_start|>, ...): text → id. */
  specials: Map<string, number>;
  bosToken: string;
  eosToken: string;
}

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}
interface PreTokenizer {
  type: string;
  pretokenizers?: PreTokenizer[];
  individual_digits?: boolean;
  add_prefix_space?: boolean;
  use_regex?: boolean;
  pattern?: { Regex?: string; String?: string };
  behavior?: string;
}

// The pre-tokenizers herd runs, as its regex passes (tokenizers.ts's preTokenize): byte-level
// with GPT-2's expression, optionally after every digit is split off.
function regexesOf(p: PreTokenizer | null | undefined, where: string): RegExp[] {
  const unsupported = (what: string) =>
    new HfTokenizerError(
      `${where}: pre-tokenizer ${what} is not supported (herd runs ByteLevel, Digits and Split before it)`,
    );
  if (!p) throw unsupported("none");
  if (p.type === "ByteLevel") {
    if (p.add_prefix_space) throw unsupported("ByteLevel with add_prefix_space");
    return p.use_regex === false ? [] : [gpt2Regex];
  }
  if (p.type === "Digits") {
    if (!p.individual_digits) throw unsupported("Digits without individual_digits");
    return [/\p{N}/gu];
  }
  if (p.type === "Split" && p.pattern?.Regex !== undefined && p.behavior === "Isolated") {
    try {
      return [new RegExp(p.pattern.Regex, "gu")];
    } catch (err) {
      throw unsupported(`Split ${JSON.stringify(p.pattern.Regex)} (${(err as Error).message})`);
    }
  }
  if (p.type === "Sequence" && p.pretokenizers) {
    const parts = p.pretokenizers;
    if (parts.at(-1)?.type !== "ByteLevel") throw unsupported("Sequence not ending in ByteLevel");
    return parts.flatMap((q) => regexesOf(q, where));
  }
  throw unsupported(JSON.stringify(p.type));
}

const tokenText = (t: unknown) =>
  typeof t === "string"
    ? t
    : typeof t === "object" && t !== null && "content" in t
      ? String(t.content)
      : undefined;

/** The tokenizer of a Hugging Face folder (or its tokenizer.json), with its chat template. */
export function readHfTokenizer(uri: string): HfTokenizer {
  const file = hfTokenizerFile(uri);
  let json: {
    model?: {
      type?: string;
      vocab?: Record<string, number>;
      merges?: (string | string[])[];
      byte_fallback?: boolean;
    };
    added_tokens?: AddedToken[];
    normalizer?: unknown;
    pre_tokenizer?: PreTokenizer;
  };
  try {
    json = JSON.parse(readFileSync(file, "utf8")) as typeof json;
  } catch (err) {
    throw new HfTokenizerError(`${file}: ${(err as Error).message}`);
  }
  const m = json.model;
  if (m?.type !== "BPE" || !m.vocab || !m.merges)
    throw new HfTokenizerError(
      `${file}: model type ${JSON.stringify(m?.type)} is not supported (herd reads byte-level BPE)`,
    );
  if (m.byte_fallback)
    throw new HfTokenizerError(
      `${file}: BPE with byte_fallback (SentencePiece-style) is not supported; give the model's GGUF or .model file`,
    );
  if (json.normalizer)
    throw new HfTokenizerError(`${file}: a normalizer is not supported (byte-level BPE has none)`);
  const regexes = regexesOf(json.pre_tokenizer, file);

  const added = json.added_tokens ?? [];
  // (a loop, not Math.max(...ids): a spread of 128k arguments overflows the stack)
  let size = 0;
  for (const id of [...Object.values(m.vocab), ...added.map((t) => t.id)])
    size = Math.max(size, id + 1);
  const tokens: string[] = new Array<string>(size).fill("");
  for (const [text, id] of Object.entries(m.vocab)) tokens[id] = text;
  for (const t of added) tokens[t.id] = t.content;
  const merges = m.merges.map((x) => (Array.isArray(x) ? x.join(" ") : x));

  const configFile = path.join(path.dirname(file), "tokenizer_config.json");
  const config = existsSync(configFile)
    ? (JSON.parse(readFileSync(configFile, "utf8")) as Record<string, unknown>)
    : {};
  const idOf = (key: string) => {
    const text = tokenText(config[key]);
    if (text === undefined) return undefined;
    const id = tokens.indexOf(text);
    if (id < 0)
      throw new HfTokenizerError(`${configFile}: ${key} ${JSON.stringify(text)} is not a token`);
    return id;
  };
  const bosId = idOf("bos_token"),
    eosId = idOf("eos_token");
  const specials = new Map(added.filter((t) => t.special).map((t) => [t.content, t.id]));
  return {
    tokenizer: new BpeTokenizer(
      tokens,
      merges,
      regexes,
      bosId,
      eosId,
      config.add_bos_token === true,
    ),
    ...(typeof config.chat_template === "string" && { chatTemplate: config.chat_template }),
    specials,
    bosToken: bosId !== undefined ? tokens[bosId]! : "",
    eosToken: eosId !== undefined ? tokens[eosId]! : "",
  };
}

/**
 * tokenizer.json and tokenizer_config.json for a GGUF's byte-level BPE tokenizer, as the
 * Hugging Face converter lays them out (control tokens become special added tokens,
 * user-defined ones plain added tokens). `maxSeqLen` becomes model_max_length.
 */
export function hfTokenizerFiles(g: GgufFile, maxSeqLen?: number): Record<string, string> {
  const model = metaString(g, "tokenizer.ggml.model");
  if (model !== "gpt2")
    throw new GgufError(
      `the ${JSON.stringify(model)} tokenizer cannot be written as tokenizer.json (herd writes byte-level BPE, "gpt2")`,
    );
  const tokens = metaStrings(g, "tokenizer.ggml.tokens")!;
  const merges = metaStrings(g, "tokenizer.ggml.merges") ?? [];
  const types = metaNumbers(g, "tokenizer.ggml.token_type") ?? [];
  const pre = metaString(g, "tokenizer.ggml.pre", "default");
  const digits = ["smollm", "starcoder", "refact"].includes(pre);
  const byteLevel = {
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: true,
  };
  const added = tokens.flatMap((content, id) =>
    types[id] === 3 || types[id] === 4
      ? [
          {
            id,
            content,
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
            special: types[id] === 3,
          },
        ]
      : [],
  );
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: digits
      ? {
          type: "Sequence",
          pretokenizers: [{ type: "Digits", individual_digits: true }, byteLevel],
        }
      : byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(tokens.map((t, id) => [t, id])),
      merges,
    },
  };
  const id = (key: string) => (g.metadata.has(key) ? tokens[metaNumber(g, key)] : undefined);
  const chatTemplate = g.metadata.get("tokenizer.chat_template");
  const config = {
    add_bos_token: g.metadata.get("tokenizer.ggml.add_bos_token") === true,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(added.map(({ id: i, ...t }) => [String(i), t])),
    ...(id("tokenizer.ggml.bos_token_id") !== undefined && {
      bos_token: id("tokenizer.ggml.bos_token_id"),
    }),
    ...(id("tokenizer.ggml.eos_token_id") !== undefined && {
      eos_token: id("tokenizer.ggml.eos_token_id"),
    }),
    ...(id("tokenizer.ggml.unknown_token_id") !== undefined && {
      unk_token: id("tokenizer.ggml.unknown_token_id"),
    }),
    ...(id("tokenizer.ggml.padding_token_id") !== undefined && {
      pad_token: id("tokenizer.ggml.padding_token_id"),
    }),
    ...(typeof chatTemplate === "string" && { chat_template: chatTemplate }),
    clean_up_tokenization_spaces: false,
    ...(maxSeqLen && { model_max_length: maxSeqLen }),
    tokenizer_class: "PreTrainedTokenizerFast",
  };
  return {
    "tokenizer.json": JSON.stringify(tokenizer, null, 2) + "\n",
    "tokenizer_config.json": JSON.stringify(config, null, 2) + "\n",
  };
}
