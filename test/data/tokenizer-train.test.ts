// `herd tokenizer train` makes a LLaMA-style model: digits split one per piece, unknown
// characters fall back to UTF-8 bytes, and decode inverts encode.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadTokenizer } from "../../native/tokenizer.ts";
import { llamaModel, root, shakespeare } from "./helpers.ts";

const herd = (...args: string[]) =>
  spawnSync(process.execPath, [path.join(root, "bin/herd.mjs"), ...args], { encoding: "utf8" });

test("herd tokenizer train splits digits and falls back to bytes", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-train-"));
  try {
    // A corpus folder: Shakespeare plus lines full of numbers, so digit runs are frequent
    // enough that an unsplit BPE would merge them.
    const corpus = path.join(dir, "corpus");
    const model = path.join(dir, "shake.model");
    mkdirSync(corpus);
    copyFileSync(shakespeare, path.join(corpus, "a.txt.gz")); // read as it is: compressed
    const numbers = Array.from(
      { length: 5000 },
      (_, i) => `In 1${i % 100} the year 2024 had ${i * 37} men.`,
    );
    writeFileSync(path.join(corpus, "b.txt"), numbers.join("\n"));
    const r = herd("tokenizer", "train", "--input", corpus, "--out", model, "--vocab-size", "800");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /800 pieces from 2 file\(s\)/);

    const tok = loadTokenizer(model);
    assert.equal(tok.vocabSize, 800);
    let bytePieces = 0;
    for (let id = 0; id < tok.vocabSize; id++) {
      if (tok.isByte(id)) {
        bytePieces++;
        continue;
      }
      assert.doesNotMatch(tok.piece(id), /\d\d/, `piece ${id} '${tok.piece(id)}' joins digits`);
    }
    assert.equal(bytePieces, 256);

    const digits = await tok.encode("2024 1234567");
    const pieces = [...digits].map((id) => tok.piece(id)).filter((p) => /\d/.test(p));
    assert.deepEqual(pieces, ["2", "0", "2", "4", "1", "2", "3", "4", "5", "6", "7"]);

    // Characters the corpus never had come out as their UTF-8 bytes, never as <unk>.
    const rare = "🎉 日本";
    const ids = await tok.encode(rare);
    assert.ok(!ids.includes(tok.unkId), `unk in ${[...ids]}`);
    const bytes = [...ids].filter((id) => tok.isByte(id)).map((id) => tok.piece(id));
    assert.deepEqual(bytes.slice(0, 4), ["<0xF0>", "<0x9F>", "<0x8E>", "<0x89>"]);
    assert.equal(await tok.decode(ids), rare);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("herd tokenizer train rejects a vocabulary too small for byte fallback", () => {
  const r = herd(
    "tokenizer",
    "train",
    "--input",
    shakespeare,
    "--out",
    "/tmp/never.model",
    "--vocab-size",
    "100",
  );
  assert.equal(r.status, 1);
  assert.match(r.stderr, /vocab size 100 is too small/);
});

test("herd tokenizer encode and decode round-trip through the CLI", () => {
  const model = llamaModel;
  const enc = herd("tokenizer", "encode", "--model", model, "--bos", "Hello 42");
  assert.equal(enc.status, 0, enc.stderr);
  const ids = enc.stdout.trim().split(" ");
  assert.equal(ids[0], "1");
  const dec = herd("tokenizer", "decode", "--model", model, ...ids);
  assert.equal(dec.status, 0, dec.stderr);
  assert.equal(dec.stdout, "Hello 42");
});
