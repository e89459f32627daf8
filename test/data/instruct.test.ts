// `herd data prepare --instruct`: conversations become examples whose learn mask covers the
// assistant's replies only, rendered with the model's chat template (SmolLM2's ChatML) or
// herd's default one (SentencePiece models), then shards the ExampleLoader trains on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { heldOut } from "../../cli/instruct.ts";
import {
  chatTokenizer,
  encodeConversation,
  readConversations,
  type Conversation,
} from "../../workers/model/chat.ts";
import { createExampleLoader, readShard } from "../../native/data.ts";
import { smollm2Path } from "../../workers/model/smollm2.ts";
import { dataDir, llamaModel } from "./files.ts";

const root = path.resolve(import.meta.dirname, "../..");
const oasst = path.join(dataDir, "instruct/oasst1-en-validation.jsonl.gz");
const gguf = smollm2Path();
const smol = { skip: gguf ? false : "SmolLM2 not provisioned" };

const tmp = () => mkdtempSync(path.join(tmpdir(), "herd-instruct-"));

function jsonl(lines: unknown[]): string {
  const file = path.join(tmp(), "data.jsonl");
  writeFileSync(file, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n"));
  return file;
}

/** The learned tokens of an example, as runs of consecutive learned ids. */
function learnedRuns(x: { ids: number[]; learn: number[] }): number[][] {
  const runs: number[][] = [];
  x.ids.forEach((id, i) => {
    if (!x.learn[i]) return;
    if (i === 0 || !x.learn[i - 1]) runs.push([]);
    runs.at(-1)!.push(id);
  });
  return runs;
}

test("pairs, chat messages and oasst1 rows all become conversations", async () => {
  const file = jsonl([
    { prompt: "2+2?", response: "4", system: "Be brief." },
    {
      messages: [
        { role: "user", content: "hi" },
        { role: "assistant", content: "hello" },
      ],
    },
  ]);
  const c = await readConversations([file]);
  assert.deepEqual(c[0]!.messages, [
    { role: "system", content: "Be brief." },
    { role: "user", content: "2+2?" },
    { role: "assistant", content: "4" },
  ]);
  assert.equal(c[1]!.messages.length, 2);

  // oasst1: 1,241 replies have their prompt in the file (SOURCES.md); the deleted ones drop.
  const o = await readConversations([oasst]);
  assert.ok(o.length > 1150 && o.length <= 1241, `${o.length} oasst pairs`);
  assert.ok(o.every((x) => x.messages[0]!.role === "user" && x.messages[1]!.role === "assistant"));
  const trees = new Set(o.map((x) => x.group));
  assert.ok(trees.size > 150 && trees.size <= 191, `${trees.size} trees`);
});

test("bad lines are errors naming the file, the line and what is wrong", async () => {
  const cases: [unknown[], RegExp][] = [
    [["{not json"], /data\.jsonl:1: not JSON/],
    [[{ text: "x" }], /data\.jsonl:1: expected \{"prompt", "response"\}/],
    [[{ prompt: "x" }], /"prompt" and "response" must both be strings/],
    [[{ messages: [{ role: "wizard", content: "x" }] }], /messages\[0\]\.role must be one of/],
    [[{ messages: [{ role: "user", content: "x" }] }], /no assistant message/],
    [[{ messages: [{ role: "constructor", content: "x" }] }], /messages\[0\]\.role/],
  ];
  for (const [lines, message] of cases)
    await assert.rejects(readConversations([jsonl(["", ...lines].slice(1))]), message);
});

test(
  "SmolLM2: only the replies are learned, each with its <|im_end|>, in ChatML",
  smol,
  async () => {
    const chat = chatTokenizer(gguf!);
    const conv: Conversation = {
      source: "t",
      group: "t",
      messages: [
        { role: "user", content: "Name a colour." },
        { role: "assistant", content: "Blue." },
        { role: "user", content: "Another?" },
        { role: "assistant", content: "Green, of course." },
      ],
    };
    const x = await encodeConversation(conv, chat);
    const t = chat.tokenizer;
    const runs = learnedRuns(x);
    assert.equal(runs.length, 2);
    assert.equal(await t.decode(runs[0]!), "Blue.<|im_end|>\n");
    assert.equal(await t.decode(runs[1]!), "Green, of course.<|im_end|>\n");
    // The whole example is the template's rendering, special tokens as single ids.
    const whole = await t.decode(x.ids);
    assert.ok(whole.startsWith("<|im_start|>system\n"), whole);
    assert.ok(whole.includes("<|im_start|>user\nAnother?<|im_end|>\n<|im_start|>assistant\nGreen"));
    assert.equal(x.ids.filter((id) => id === chat.specials.get("<|im_start|>")).length, 5);
    assert.equal(x.ids.length, x.learn.length);
  },
);

test("a SentencePiece model uses herd's default template; the reply ends with EOS", async () => {
  const chat = chatTokenizer(llamaModel);
  const x = await encodeConversation(
    {
      source: "t",
      group: "t",
      messages: [
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello there" },
      ],
    },
    chat,
  );
  const runs = learnedRuns(x);
  assert.equal(runs.length, 1);
  assert.equal(runs[0]!.at(-1), chat.tokenizer.eosId, "the reply's last learned token is EOS");
  assert.equal(x.ids[0], chat.tokenizer.bosId, "BOS first, not learned");
  assert.equal(x.learn[0], 0);
  assert.equal(await chat.tokenizer.decode(runs[0]!.slice(0, -1)), "Hello there");
});

test("a template that does not render turn by turn is refused", async () => {
  const chat = { ...chatTokenizer(llamaModel), template: "{{ messages | length }}" };
  await assert.rejects(
    encodeConversation(
      {
        source: "x.jsonl:3",
        group: "g",
        messages: [
          { role: "user", content: "a" },
          { role: "assistant", content: "b" },
        ],
      },
      chat,
    ),
    /x\.jsonl:3: the chat template does not render the conversation turn by turn/,
  );
});

test(
  "herd data prepare --instruct on oasst1 with SmolLM2: shards, held-out trees, loader",
  smol,
  async () => {
    const out = path.join(tmp(), "oasst");
    const run = (...extra: string[]) =>
      spawnSync(
        process.execPath,
        [
          path.join(root, "bin/herd.mjs"),
          ...["data", "prepare", "--instruct", "--input", oasst, "--tokenizer", gguf!],
          ...["--out", out, "--holdout", "0.1", ...extra],
        ],
        { encoding: "utf8" },
      );
    const r = run();
    assert.equal(r.status, 0, r.stderr);
    const meta = JSON.parse(readFileSync(path.join(out, "meta.json"), "utf8"));
    assert.equal(meta.format, "herd-instruction-shards");
    assert.ok(meta.learnedTokens > 0 && meta.learnedTokens < meta.tokens);
    // Held-out conversations are whole trees, none of which reached the shards.
    const held = readFileSync(path.join(out, "heldout.jsonl"), "utf8").trim().split("\n");
    assert.equal(held.length, meta.heldOut);
    const all = await readConversations([oasst]);
    const heldTrees = new Set(all.filter((c) => heldOut(c.group, 0.1)).map((c) => c.group));
    assert.ok(heldTrees.size > 5);
    assert.equal(meta.examples + meta.heldOut, all.length);
    const shard = await readShard(path.join(out, "shard-00000.bin"));
    assert.equal(shard.docs, meta.examples);
    assert.equal(shard.version, 2);
    const loader = createExampleLoader({ folder: out, seed: 1 });
    assert.equal(loader.exampleCount, meta.examples);
    // A second run refuses to overwrite without --force.
    const again = run();
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /already holds prepared data .*--force/);
  },
);
