// `herd data prepare` end to end: deduplication and each filter on crafted input, the shard
// contents against the tokenizer, meta.json, and bad input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { readShard } from "../../native/data.ts";
import { loadTokenizer } from "../../native/tokenizer.ts";
import { readTextDecompressed } from "../../workers/compressed.ts";
import { llamaModel, root, shakespeare } from "./helpers.ts";

const herd = (...args: string[]) =>
  spawnSync(process.execPath, [path.join(root, "bin/herd.mjs"), ...args], { encoding: "utf8" });

interface Meta {
  tokenizer: { sha256: string; vocabSize: number };
  sources: { path: string; bytes: number; format: string }[];
  stages: { name: string; docs: number; lines: number; bytes: number }[];
  tokens: number;
  shards: { file: string; tokens: number; docs: number }[];
}

/** Runs prepare on JSONL documents and returns the surviving documents' texts and meta.json. */
async function prepareDocs(
  docs: string[],
  ...flags: string[]
): Promise<{ texts: string[]; meta: Meta }> {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-prep-"));
  try {
    const input = path.join(dir, "in.jsonl");
    writeFileSync(input, docs.map((text) => JSON.stringify({ text })).join("\n") + "\n");
    const out = path.join(dir, "out");
    const r = herd(
      "data",
      "prepare",
      "--input",
      input,
      "--tokenizer",
      llamaModel,
      "--out",
      out,
      ...flags,
    );
    assert.equal(r.status, 0, r.stderr);
    const meta = JSON.parse(readFileSync(path.join(out, "meta.json"), "utf8")) as Meta;
    const tok = loadTokenizer(llamaModel);
    const texts: string[] = [];
    for (const s of meta.shards) {
      const shard = await readShard(path.join(out, s.file));
      for (let d = 0; d < shard.docs; d++) {
        const ids = shard.ids.subarray(shard.docStarts[d]!, shard.docStarts[d + 1]!);
        assert.equal(ids[0], tok.bosId);
        assert.equal(ids[ids.length - 1], tok.eosId);
        texts.push(await tok.decode(ids));
      }
    }
    return { texts, meta };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const stage = (meta: Meta, name: string) => {
  const s = meta.stages.find((x) => x.name === name);
  assert.ok(s, `no stage ${name}`);
  return s;
};

const five = "one two three four five";

test("documents seen before are dropped, first occurrence kept", async () => {
  const docs = [
    `alpha ${five}.`,
    `beta ${five}.`,
    `alpha ${five}.`,
    `gamma ${five}.`,
    `beta ${five}.`,
  ];
  const { texts, meta } = await prepareDocs(docs);
  assert.deepEqual(texts, [docs[0], docs[1], docs[3]]);
  assert.equal(stage(meta, "input").docs, 5);
  assert.equal(stage(meta, "dedup_docs").docs, 3);
  const { texts: all } = await prepareDocs(docs, "--no-dedup-docs");
  assert.deepEqual(all, docs);
});

test("--dedup-lines drops lines seen in earlier documents, keeps blank lines", async () => {
  const boiler = "Subscribe to our newsletter for more news";
  const docs = [
    `first story ${five}\n\n${boiler}`,
    `second story ${five}\n\n${boiler}\nsecond story ends here now`,
    `third story ${five}\nthird story ${five}`,
  ];
  const { texts, meta } = await prepareDocs(docs, "--dedup-lines");
  assert.deepEqual(texts, [
    docs[0],
    `second story ${five}\n\nsecond story ends here now`,
    `third story ${five}`,
  ]);
  assert.equal(stage(meta, "dedup_lines").lines, stage(meta, "dedup_docs").lines - 2);
  const { texts: kept } = await prepareDocs(docs);
  assert.deepEqual(kept, docs);
});

test("--min-words drops short documents", async () => {
  const docs = ["too short.", "just four words here.", `exactly five: ${five}`, "a b c d e f g"];
  const { texts, meta } = await prepareDocs(docs, "--min-words", "5");
  assert.deepEqual(texts, [docs[2], docs[3]]);
  assert.equal(stage(meta, "min_words").docs, 2);
  const { texts: loose } = await prepareDocs(docs, "--min-words", "2");
  assert.deepEqual(loose, docs);
});

test("--line-min-words and --terminal-punct drop lines as C4 does", async () => {
  const doc = [
    "A full sentence with enough words in it.",
    "Menu Home About",
    "",
    "Another complete line that ends properly!",
    "This line has words but no final punctuation",
    'He said "it is done, and that is that."',
  ].join("\n");
  const { texts: byWords } = await prepareDocs([doc], "--line-min-words", "5");
  assert.deepEqual(byWords, [
    doc
      .split("\n")
      .filter((l) => l !== "Menu Home About")
      .join("\n"),
  ]);
  const { texts: c4, meta } = await prepareDocs([doc], "--c4");
  assert.deepEqual(c4, [
    [
      "A full sentence with enough words in it.",
      "",
      "Another complete line that ends properly!",
      'He said "it is done, and that is that."',
    ].join("\n"),
  ]);
  assert.equal(stage(meta, "line_min_words").lines, 5);
  assert.equal(stage(meta, "terminal_punct").lines, 4);
});

test("--max-bad-chars drops documents full of control or replacement characters", async () => {
  const clean = `clean text ${five} and more.`;
  const mojibake = `garbled \uFFFD\uFFFD\uFFFD\uFFFD text \u0001\u0002\u0003 ${five}`;
  const { texts, meta } = await prepareDocs([clean, mojibake], "--max-bad-chars", "0.1");
  assert.deepEqual(texts, [clean]);
  assert.equal(stage(meta, "max_bad_chars").docs, 1);
  const { texts: lenient } = await prepareDocs([clean, mojibake], "--max-bad-chars", "0.5");
  assert.equal(lenient.length, 2);
});

test("--max-line-chars drops documents with an overlong line (counted in characters)", async () => {
  const normal = `normal ${five}\nsecond line here too`;
  const minified = `var a=1;${"x".repeat(300)}\n${five}`;
  const cjk = `${"字".repeat(150)}\n${five}`; // 150 characters, 450 bytes
  const { texts } = await prepareDocs([normal, minified, cjk], "--max-line-chars", "200");
  assert.deepEqual(texts, [normal, cjk]);
});

test("--no-filters keeps everything that is not a duplicate", async () => {
  const docs = ["x", "tiny", "\uFFFD\uFFFD", "tiny"];
  const { texts } = await prepareDocs(docs, "--no-filters");
  assert.deepEqual(texts, ["x", "tiny", "\uFFFD\uFFFD"]);
});

test("shards hold the tokenizer's ids, split at document ends, same for any thread count", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-prep-"));
  try {
    const outs: string[] = [];
    for (const threads of ["1", "2"]) {
      const out = path.join(dir, `out${threads}`);
      const r = herd(
        "data",
        "prepare",
        "--input",
        shakespeare,
        "--tokenizer",
        llamaModel,
        "--out",
        out,
        "--text-split",
        "paragraph",
        "--shard-tokens",
        "50000",
        "--threads",
        threads,
        "--batch-bytes",
        "100000",
      );
      assert.equal(r.status, 0, r.stderr);
      outs.push(out);
    }
    const files = readdirSync(outs[0]!)
      .filter((f) => f.endsWith(".bin"))
      .sort();
    assert.ok(files.length > 3, `only ${files.length} shards`);
    for (const f of files)
      assert.ok(
        readFileSync(path.join(outs[0]!, f)).equals(readFileSync(path.join(outs[1]!, f))),
        f,
      );

    // Every paragraph, tokenized alone, in order, across the shards.
    const paragraphs = readTextDecompressed(shakespeare)
      .split(/\n\s*\n/)
      .filter((p) => p.trim() !== "");
    const tok = loadTokenizer(llamaModel);
    const meta = JSON.parse(readFileSync(path.join(outs[0]!, "meta.json"), "utf8")) as Meta;
    assert.equal(
      meta.tokenizer.sha256,
      "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347",
    );
    assert.equal(meta.sources[0]!.bytes, statSync(shakespeare).size); // as stored: gzip
    const kept: number[][] = [];
    for (const f of files) {
      const s = await readShard(path.join(outs[0]!, f));
      assert.ok(s.tokens >= 50000 || f === files[files.length - 1], `${f}: ${s.tokens} tokens`);
      for (let d = 0; d < s.docs; d++)
        kept.push([...s.ids.subarray(s.docStarts[d]!, s.docStarts[d + 1]!)]);
    }
    assert.equal(kept.length, stage(meta, "min_words").docs);
    assert.equal(
      meta.tokens,
      kept.reduce((a, d) => a + d.length, 0),
    );
    const expected = await tok.encodeBatch(
      paragraphs.map((p) => p.trimEnd() + "\n"),
      true,
      true,
    );
    const expectedKept = new Set(expected.map((e) => e.join(",")));
    for (const d of kept)
      assert.ok(expectedKept.has(d.join(",")), "a shard document is no paragraph's encoding");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad input: JSONL that is not JSON, a missing field, shards already there", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-prep-"));
  try {
    const input = path.join(dir, "bad.jsonl");
    writeFileSync(input, `{"text": "fine"}\n{"text": broken\n`);
    let r = herd(
      "data",
      "prepare",
      "--input",
      input,
      "--tokenizer",
      llamaModel,
      "--out",
      path.join(dir, "o1"),
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /bad\.jsonl:2: not JSON/);

    writeFileSync(input, `{"body": "no text field here"}\n`);
    r = herd(
      "data",
      "prepare",
      "--input",
      input,
      "--tokenizer",
      llamaModel,
      "--out",
      path.join(dir, "o2"),
    );
    assert.match(r.stderr, /bad\.jsonl:1: no string field 'text'/);
    r = herd(
      "data",
      "prepare",
      "--input",
      input,
      "--field",
      "body",
      "--min-words",
      "1",
      "--tokenizer",
      llamaModel,
      "--out",
      path.join(dir, "o2"),
    );
    assert.equal(r.status, 0, r.stderr);

    r = herd(
      "data",
      "prepare",
      "--input",
      input,
      "--field",
      "body",
      "--tokenizer",
      llamaModel,
      "--out",
      path.join(dir, "o2"),
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /already holds shards .*--force/);

    mkdirSync(path.join(dir, "empty"));
    r = herd(
      "data",
      "prepare",
      "--input",
      path.join(dir, "empty"),
      "--tokenizer",
      llamaModel,
      "--out",
      path.join(dir, "o3"),
    );
    assert.match(r.stderr, /no input files/);

    r = herd(
      "data",
      "prepare",
      "--input",
      input,
      "--tokenizer",
      path.join(dir, "bad.jsonl"),
      "--out",
      path.join(dir, "o4"),
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /not a valid SentencePiece model/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
