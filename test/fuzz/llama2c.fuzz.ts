// llama2.c's legacy .bin: a 7-int32 header, then fp32 tensors whose sizes the header implies.
// Allowed failure: ModelFormatError.
import { ModelFormatError, readLlama2c } from "../../workers/model/formats.ts";
import { onlyFormatErrors } from "./harness.ts";

export function fuzz(data: Buffer): void {
  onlyFormatErrors([ModelFormatError], "fuzz.bin", () => readLlama2c("fuzz.bin", data));
}
