// Hugging Face tokenizers (workers/model/hf-tokenizer.ts): SmolLM2's GGUF tokenizer written as
// tokenizer.json + tokenizer_config.json by `herd convert --to-format safetensors`, checked
// against Hugging Face's own `tokenizers` library (the reference: it loads the file and
// encodes 200 oasst1 texts to the ids herd's GGUF tokenizer gives), then read back by herd
// with the same ids, chat template and special tokens; and the refusals that name what is
// not supported. Skipped when SmolLM2 is not provisioned.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { readConversations, chatTokenizer } from "../../workers/model/chat.ts";
import { readHfTokenizer } from "../../workers/model/hf-tokenizer.ts";
import { readModel } from "../../workers/model/formats.ts";
import { smollm2Path } from "../../workers/model/smollm2.ts";
import { dataDir } from "../data/files.ts";
import { venvPython } from "../data/helpers.ts";
import { herdBin } from "../engine/fixtures.ts";

const gguf = smollm2Path();
const skip = { skip: gguf ? false : "SmolLM2 not provisioned" };
const dir = mkdtempSync(path.join(tmpdir(), "herd-hf-tokenizer-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const hf = path.join(dir, "smollm2-hf");

/** 200 texts of oasst1 (prompts and replies: code, digits, accents, emoji, many languages). */
async function texts(): Promise<string[]> {
  const all = await readConversations([
    path.join(dataDir, "instruct/oasst1-en-validation.jsonl.gz"),
  ]);
  return all
    .slice(0, 100)
    .flatMap((c) => c.messages.map((m) => m.content))
    .slice(0, 200);
}

test(
  "herd convert writes tokenizer.json that Hugging Face's tokenizers encodes as herd does",
  skip,
  async () => {
    const c = spawnSync(
      process.execPath,
      [herdBin, "convert", "--from", gguf!, "--to", hf, "--to-format", "safetensors"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(c.status, 0, c.stderr);
    const samples = await texts();
    assert.equal(samples.length, 200);
    const ref = readModel(gguf!).tokenizer!;
    const want = await Promise.all(samples.map(async (s) => Array.from(await ref.encode(s))));
    const input = path.join(dir, "texts.json");
    writeFileSync(input, JSON.stringify(samples));
    const py = spawnSync(
      venvPython(),
      [
        "-c",
        "import json, sys; from tokenizers import Tokenizer\n" +
          "t = Tokenizer.from_file(sys.argv[1])\n" +
          "print(json.dumps([t.encode(s, add_special_tokens=False).ids for s in json.load(open(sys.argv[2]))]))",
        path.join(hf, "tokenizer.json"),
        input,
      ],
      { encoding: "utf8", maxBuffer: 64 << 20 },
    );
    assert.equal(py.status, 0, py.stderr);
    const got = JSON.parse(py.stdout) as number[][];
    for (const [i, ids] of got.entries())
      assert.deepEqual(ids, want[i], `text ${i}: ${JSON.stringify(samples[i]!.slice(0, 60))}`);
  },
);

test(
  "herd reads the folder's tokenizer back: ids, chat template, special tokens",
  skip,
  async () => {
    const back = readHfTokenizer(hf);
    const ref = readModel(gguf!).tokenizer!;
    for (const s of await texts())
      assert.deepEqual(await back.tokenizer.encode(s), await ref.encode(s));
    const a = chatTokenizer(hf),
      b = chatTokenizer(gguf!);
    assert.equal(a.template, b.template);
    assert.deepEqual([...a.specials].sort(), [...b.specials].sort());
    assert.deepEqual([a.bosToken, a.eosToken], [b.bosToken, b.eosToken]);
    assert.equal(a.file, path.join(hf, "tokenizer.json"));
    // the Hugging Face model folder now carries its tokenizer as a GGUF does
    assert.equal(readModel(hf).tokenizer?.kind, "bpe");
  },
);

test("tokenizer.json that herd does not run is refused by name", skip, () => {
  const base = JSON.parse(readFileSync(path.join(hf, "tokenizer.json"), "utf8")) as Record<
    string,
    unknown
  >;
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { model: { type: "Unigram", vocab: [] } },
      /model type "Unigram" is not supported \(herd reads byte-level BPE\)/,
    ],
    [
      { model: { ...(base.model as object), byte_fallback: true } },
      /byte_fallback \(SentencePiece-style\) is not supported/,
    ],
    [{ normalizer: { type: "NFC" } }, /a normalizer is not supported/],
    [{ pre_tokenizer: { type: "Whitespace" } }, /pre-tokenizer "Whitespace" is not supported/],
    [
      { pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, use_regex: true } },
      /ByteLevel with add_prefix_space/,
    ],
  ];
  for (const [change, message] of cases) {
    const d = mkdtempSync(path.join(dir, "bad-"));
    writeFileSync(path.join(d, "tokenizer.json"), JSON.stringify({ ...base, ...change }));
    assert.throws(() => readHfTokenizer(d), message);
  }
  assert.throws(
    () => readHfTokenizer(path.join(dir, "nowhere")),
    /nowhere\/tokenizer\.json does not exist|nowhere does not exist/,
  );
});
