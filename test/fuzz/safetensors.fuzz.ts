// safetensors, both readers: the trainer's strict F32 one (decodeSafetensors: checkpoints)
// and the model importer's F32/F16/BF16 one (readSafetensorsAny: Hugging Face folders).
// Allowed failures: SafetensorsError and ModelFormatError respectively.
import { ModelFormatError, readSafetensorsAny } from "../../workers/model/formats.ts";
import { decodeSafetensors, SafetensorsError } from "../../workers/trainer/safetensors.ts";
import { onlyFormatErrors } from "./harness.ts";

export function fuzz(data: Buffer): void {
  onlyFormatErrors([SafetensorsError], "fuzz.safetensors", () =>
    decodeSafetensors(data, "fuzz.safetensors"),
  );
  onlyFormatErrors([ModelFormatError], "fuzz.safetensors", () =>
    readSafetensorsAny(data, "fuzz.safetensors"),
  );
}
