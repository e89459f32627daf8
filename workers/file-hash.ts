// The SHA-256 of a file: how herd names a tokenizer the data was made with (meta.json) and
// checks that a job trains with the same one.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

/** The hex SHA-256 of a file's bytes. */
export const sha256File = (file: string): string =>
  createHash("sha256").update(readFileSync(file)).digest("hex");
