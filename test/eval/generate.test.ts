// The text `herd generate` prints is the prompt followed by what the generated tokens add when
// decoded together with the prompt's: SentencePiece drops the space of a first "▁to" when the
// continuation is decoded alone ("Once upon a timeto"). Checked on LLaMA's SentencePiece model
// with a model built to always answer "▁to", on a GGUF-style SentencePiece vocabulary, and on
// the real SmolLM2 with its byte-level BPE.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { tensorShapes, writeLlama2c, type LoadedModel } from "../../workers/model/formats.ts";
import { smollm2Path } from "../../workers/model/smollm2.ts";
import {
  continuationText,
  sentencePieceTokenizer,
  SpmTokenizer,
} from "../../workers/model/tokenizers.ts";
import { llamaModel } from "../data/files.ts";

const root = path.resolve(import.meta.dirname, "../..");
const herd = (...args: string[]) =>
  spawnSync(process.execPath, [path.join(root, "bin/herd.mjs"), ...args], { encoding: "utf8" });
const dir = mkdtempSync(path.join(tmpdir(), "herd-generate-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const to = 304; // "▁to" in LLaMA's vocabulary

/**
 * A model whose every next token is `answer`: embeddings are the first unit vector, attention
 * and FFN outputs are zero (so the residual stream stays that vector), and only the answer's
 * classifier row reads it.
 */
function alwaysAnswers(answer: number, vocabSize: number): LoadedModel {
  const config = {
    dim: 64,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 2,
    ffnHidden: 64,
    vocabSize,
    maxSeqLen: 64,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedEmbeddings: false,
  };
  const tensors: Record<string, Float32Array> = {};
  for (const t of tensorShapes(config))
    tensors[t.name] = new Float32Array(t.shape.reduce((a, b) => a * b, 1)).fill(
      t.shape.length === 1 ? 1 : 0,
    );
  for (let v = 0; v < vocabSize; v++) tensors["tok_embeddings.weight"]![v * 64] = 1;
  tensors["output.weight"]![answer * 64] = 1;
  return { config, tensors, format: "llama2c" };
}

test("SentencePiece: the continuation keeps the space of its first piece", async () => {
  const t = sentencePieceTokenizer(llamaModel);
  const prompt = await t.encode("Once upon a time");
  assert.equal(await t.decode([to]), "to"); // alone, the space is gone
  assert.equal(await continuationText(t, prompt, [to, to]), " to to");
  assert.equal(await t.decode([...prompt, to, to]), "Once upon a time to to");
});

test("herd generate prints the prompt and the continuation decoded together", () => {
  const model = path.join(dir, "to.bin");
  writeLlama2c(model, alwaysAnswers(to, 32000));
  for (const prompt of ["Once upon a time", "Lily and Ben went to the park. They"]) {
    const r = herd(
      "generate",
      ...["--checkpoint", model, "--tokenizer", llamaModel, "--prompt", prompt],
      ...["--max-tokens", "3", "--threads", "1"],
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${prompt} to to to\n`);
  }
});

test("a GGUF SentencePiece vocabulary keeps the space too", async () => {
  const bytes = Array.from(
    { length: 256 },
    (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`,
  );
  const pieces = ["<unk>", "<s>", "</s>", ...bytes, "▁", "a", "b", "▁a", "▁b", "ab"];
  const spm = new SpmTokenizer(
    pieces,
    pieces.map(() => -1),
    1,
    2,
    true,
    true,
  );
  const prompt = await spm.encode("ab");
  const b = pieces.indexOf("▁b");
  assert.equal(await spm.decode([b]), "b");
  assert.equal(await continuationText(spm, prompt, [b]), " b");
});

const gguf = smollm2Path();
test(
  "byte-level BPE (SmolLM2): herd generate prints what decoding the whole sequence gives",
  { skip: gguf ? false : "SmolLM2 not provisioned" },
  () => {
    const r = herd(
      "generate",
      ...["--checkpoint", gguf!, "--prompt", "The capital of France is"],
      ...["--max-tokens", "1", "--threads", "2"],
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "The capital of France is Paris\n");
  },
);
