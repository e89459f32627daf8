// The SentencePiece binding against the reference Python package, on LLaMA's own model.
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadTokenizer } from "../../native/tokenizer.ts";
import { readTextDecompressed } from "../../workers/compressed.ts";
import { llamaModel, referenceEncode, root, shakespeare } from "./helpers.ts";

const tricky = [
  "",
  " ",
  "\n",
  "Hello world",
  " leading space and trailing space ",
  "digits 0123456789 and 3.14159 and 2^64 = 18446744073709551616",
  "emoji 👍🏽 👨‍👩‍👧 🎉🎉🎉 and a flag 🇫🇷",
  "CJK 日本語のテキスト、中文文本。한국어 텍스트",
  "runs    of     spaces\t\ttabs",
  "\n\n\nnewlines\n\n \n  \nend\n\n",
  "rare scripts 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ᚠᛇᚻ ꦱꦮ and combining e\u0301 vs é",
  "control \u0001\u0002\u007f and NUL-free bytes ÿþ",
  "<s> </s> <unk> look like specials but are text",
  "mixed: naïve café – “quotes” — ellipsis… ½ ⅔ ①②③",
];

test("token ids equal the sentencepiece package on tricky text", async () => {
  const tok = loadTokenizer(llamaModel);
  for (const [bos, eos] of [
    [false, false],
    [true, false],
    [true, true],
  ] as const) {
    const expected = referenceEncode(llamaModel, tricky, bos, eos);
    for (const [i, text] of tricky.entries()) {
      const ids = await tok.encode(text, bos, eos);
      assert.deepEqual([...ids], expected[i], `text ${JSON.stringify(text)} bos=${bos} eos=${eos}`);
    }
  }
});

test("token ids equal the sentencepiece package on all of tinyshakespeare", async () => {
  const tok = loadTokenizer(llamaModel);
  const text = readTextDecompressed(shakespeare);
  const lines = text.split("\n");
  const [whole, ...perLine] = referenceEncode(llamaModel, [text, ...lines]);
  const ids = await tok.encode(text);
  assert.ok(ids.length > 100_000, `only ${ids.length} tokens`);
  assert.deepEqual([...ids], whole);
  const batch = await tok.encodeBatch(lines);
  assert.equal(batch.length, perLine.length);
  for (const [i, line] of batch.entries()) assert.deepEqual([...line], perLine[i], `line ${i + 1}`);
});

test("decode inverts encode on tricky text and on tinyshakespeare", async () => {
  const tok = loadTokenizer(llamaModel);
  for (const text of [...tricky, readTextDecompressed(shakespeare)]) {
    const ids = await tok.encode(text, true, true);
    assert.equal(await tok.decode(ids), text, JSON.stringify(text.slice(0, 80)));
  }
});

test("vocabulary facts of LLaMA's model", () => {
  const tok = loadTokenizer(llamaModel);
  assert.equal(tok.vocabSize, 32000);
  assert.deepEqual([tok.unkId, tok.bosId, tok.eosId], [0, 1, 2]);
  assert.equal(tok.piece(3), "<0x00>");
  assert.equal(tok.pieceId("<0x0A>"), 13);
  assert.ok(tok.isByte(13) && tok.isByte(258) && !tok.isByte(259) && !tok.isByte(1));
  assert.equal(tok.pieceId("no such piece ✗"), tok.unkId);
  assert.throws(() => tok.piece(32000), /outside the vocabulary/);
});

test("decode rejects ids outside the vocabulary", async () => {
  const tok = loadTokenizer(llamaModel);
  await assert.rejects(tok.decode([1, 32000]), /id 32000 at index 1 is outside the vocabulary/);
  await assert.rejects(tok.decode([-1]), /outside the vocabulary/);
});

test("a malformed or missing tokenizer file is a clear error, not a crash", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-tok-"));
  try {
    const model = readFileSync(llamaModel);
    const cases: [string, Buffer][] = [
      ["empty.model", Buffer.alloc(0)],
      ["text.model", Buffer.from("this is not a protobuf\n")],
      ["truncated.model", model.subarray(0, Math.floor(model.length / 3))],
      ["garbage.model", Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251))],
    ];
    for (const [name, bytes] of cases) {
      const file = path.join(dir, name);
      writeFileSync(file, bytes);
      assert.throws(
        () => loadTokenizer(file),
        (err: Error) => {
          assert.ok(err.message.includes(file), err.message);
          assert.match(err.message, /empty|not a valid SentencePiece model/);
          return true;
        },
      );
    }
    assert.throws(
      () => loadTokenizer(path.join(dir, "absent.model")),
      /cannot open .*absent\.model/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("models with random damage load or fail with a message, and never crash the process", () => {
  // In a child process, so a crash inside libsentencepiece fails this test instead of the run.
  const script = `
    import { readFileSync, writeFileSync } from "node:fs";
    import { loadTokenizer } from ${JSON.stringify(path.join(root, "native/tokenizer.ts"))};
    const model = readFileSync(${JSON.stringify(llamaModel)});
    const file = ${JSON.stringify(path.join(tmpdir(), `herd-damaged-${process.pid}.model`))};
    let seed = 12345, loaded = 0, refused = 0;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
    for (let t = 0; t < 60; t++) {
      const b = Buffer.from(model);
      for (let j = 0; j < 1 + (rnd() % 8); j++) b[rnd() % b.length] = rnd() % 256;
      b[b.length - 1 - (rnd() % 300)] = rnd() % 256; // the trainer and normaliser specs
      writeFileSync(file, b);
      try {
        const tok = loadTokenizer(file);
        await tok.encode("Hello 123 world 🎉 日本", true, true);
        loaded++;
      } catch (err) {
        if (!String(err.message).includes(file)) throw new Error("unnamed: " + err.message);
        refused++;
      }
    }
    console.log(JSON.stringify({ loaded, refused }));
  `;
  const dir = mkdtempSync(path.join(tmpdir(), "herd-tokfuzz-"));
  try {
    const file = path.join(dir, "fuzz.mts");
    writeFileSync(file, script);
    const r = spawnSync(process.execPath, ["--import", "tsx", file], {
      cwd: root,
      encoding: "utf8",
    });
    assert.equal(r.status, 0, `child exited ${r.status} ${r.signal}: ${r.stderr}`);
    const { loaded, refused } = JSON.parse(r.stdout) as { loaded: number; refused: number };
    assert.equal(loaded + refused, 60);
    assert.ok(refused > 0, "no damaged model was refused");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
