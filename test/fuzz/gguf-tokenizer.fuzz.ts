// The tokenizer a GGUF file carries (tokenizer.ggml.*: GPT-2 byte-level BPE or the
// SentencePiece-style "llama" vocabulary), built and then used: encode a fixed text, decode
// the ids. Allowed failure: GgufError (ggufTokenizer names the metadata key, not the file,
// which readGguf adds).
import { GgufError, parseGguf } from "../../workers/model/gguf.ts";
import { ggufTokenizer } from "../../workers/model/tokenizers.ts";
import { onlyFormatErrorsAsync } from "./harness.ts";

const text = "Hello, world! 123 4567 — ünïcödé 中文 ▁x <0x41>\n\tend";

export async function fuzz(data: Buffer): Promise<void> {
  await onlyFormatErrorsAsync([GgufError], "", async () => {
    const tokenizer = ggufTokenizer(parseGguf(data, "tokenizer.gguf"));
    const ids = await tokenizer.encode(text);
    for (const id of ids)
      if (!(id >= 0 && id < tokenizer.vocabSize)) throw new Error(`encode gave id ${id}`);
    await tokenizer.decode(ids);
  });
}
