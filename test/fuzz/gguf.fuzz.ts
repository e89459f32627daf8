// GGUF model files: the header, metadata and tensor table (parseGguf), every tensor
// dequantised, then the llama-architecture model reader with its tokenizer (readGguf).
// Allowed failures: GgufError from the container, ModelFormatError from the model reader.
import { ModelFormatError, readGguf } from "../../workers/model/formats.ts";
import { dequantize, GgufError, parseGguf } from "../../workers/model/gguf.ts";
import { onlyFormatErrors } from "./harness.ts";

export function fuzz(data: Buffer): void {
  onlyFormatErrors([GgufError], "fuzz.gguf", () => {
    const g = parseGguf(data, "fuzz.gguf");
    for (const t of g.tensors.values()) dequantize(g, t);
  });
  onlyFormatErrors([ModelFormatError], "fuzz.gguf", () => readGguf("fuzz.gguf", data));
}
