// Shared by the data tests: the data files (./files.ts) and the reference `sentencepiece`
// Python package (installed by provisioning in the herd venv).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";

export const root = path.resolve(import.meta.dirname, "../..");
export { llamaModel, shakespeare } from "./files.ts";

export function venvPython(): string {
  const venv = process.env.HERD_VENV ?? path.join(homedir(), ".cache/herd/venv");
  const python = path.join(venv, "bin/python");
  if (!existsSync(python)) throw new Error(`${python} is missing: run 'npm run provision'`);
  return python;
}

const referenceEncoder = `
import json, sys, sentencepiece as spm
req = json.load(sys.stdin)
sp = spm.SentencePieceProcessor(model_file=req["model"])
json.dump([sp.encode(t, add_bos=req["bos"], add_eos=req["eos"]) for t in req["texts"]], sys.stdout)
`;

/** Token ids of each text from the `sentencepiece` Python package. */
export function referenceEncode(
  model: string,
  texts: string[],
  bos = false,
  eos = false,
): number[][] {
  const out = execFileSync(venvPython(), ["-c", referenceEncoder], {
    input: JSON.stringify({ model, texts, bos, eos }),
    maxBuffer: 1 << 30,
    encoding: "utf8",
  });
  return JSON.parse(out) as number[][];
}
