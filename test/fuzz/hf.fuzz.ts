// A Hugging Face LLaMA folder: config.json, model.safetensors and, when present,
// model.safetensors.index.json (shards), each a file of the input bundle (harness.ts).
// Allowed failure: ModelFormatError naming the folder.
import { readHf, ModelFormatError } from "../../workers/model/formats.ts";
import { onlyFormatErrors, scratch, unbundle, writeFiles } from "./harness.ts";

const files = ["config.json", "model.safetensors", "model.safetensors.index.json"];
const dirs = scratch("hf");

export function fuzz(data: Buffer): void {
  const dir = dirs.reset("model");
  writeFiles(dir, unbundle(data, files));
  onlyFormatErrors([ModelFormatError], dir, () => readHf(dir));
}
