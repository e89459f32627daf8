// `herd data prepare --instruct`: conversations → token shards with learn masks (version 2,
// one example per document), for fine-tuning with a TrainingJob source of format: examples.
// Reading, rendering and tokenizing are workers/model/chat.ts; see docs/fine-tuning.md.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { Template } from "@huggingface/jinja";
import { writeShard } from "../native/data.ts";
import {
  chatTokenizer,
  defaultChatTemplate,
  encodeConversation,
  readConversations,
  type Conversation,
} from "../workers/model/chat.ts";
import { writeFileAtomic } from "./data.ts";
import { expandInputs } from "./tokenizer.ts";

export interface InstructRun {
  inputs: string[];
  /** A GGUF model (tokenizer and chat template) or a SentencePiece .model file. */
  tokenizer: string;
  out: string;
  /** A Jinja chat template file that replaces the model's. */
  chatTemplate?: string;
  /** Share of the groups kept out of the shards, written to heldout.jsonl. */
  holdout: number;
  shardTokens: number;
  force: boolean;
}

/** Whether a group is held out: its sha256 as a number in [0, 1) below `share`. */
export const heldOut = (group: string, share: number) =>
  share > 0 && createHash("sha256").update(group).digest().readUInt32BE(0) / 2 ** 32 < share;

export async function prepareInstruct(run: InstructRun) {
  const t0 = Date.now();
  const files = expandInputs(run.inputs);
  if (files.length === 0) throw new Error(`no input files under ${run.inputs.join(", ")}`);
  if (!(run.holdout >= 0 && run.holdout < 1)) throw new Error("--holdout must be in [0, 1)");
  const existing = existsSync(run.out)
    ? readdirSync(run.out).filter(
        (f) => /^shard-\d+\.bin$/.test(f) || f === "meta.json" || f === "heldout.jsonl",
      )
    : [];
  if (existing.length > 0 && !run.force)
    throw new Error(
      `${run.out} already holds prepared data (${existing[0]}); use --force to replace it`,
    );
  for (const f of existing) rmSync(path.join(run.out, f));
  await mkdir(run.out, { recursive: true });

  const chat = chatTokenizer(
    run.tokenizer,
    run.chatTemplate ? readFileSync(run.chatTemplate, "utf8") : undefined,
  );
  const template = new Template(chat.template);
  const conversations = await readConversations(files);
  if (conversations.length === 0) throw new Error(`no conversations in ${files.join(", ")}`);

  const shards: { file: string; tokens: number; examples: number }[] = [];
  let ids: number[] = [],
    learn: number[] = [],
    starts = [0];
  const flush = async () => {
    if (starts.length === 1) return;
    const file = path.join(run.out, `shard-${String(shards.length).padStart(5, "0")}.bin`);
    await writeShard(
      file,
      Int32Array.from(ids),
      starts,
      chat.tokenizer.vocabSize,
      Uint8Array.from(learn),
    );
    shards.push({ file: path.basename(file), tokens: ids.length, examples: starts.length - 1 });
    ids = [];
    learn = [];
    starts = [0];
  };
  const held: Conversation[] = [];
  let tokens = 0,
    learned = 0,
    longest = 0;
  for (const c of conversations) {
    if (heldOut(c.group, run.holdout)) {
      held.push(c);
      continue;
    }
    const x = await encodeConversation(c, chat, template);
    ids.push(...x.ids);
    learn.push(...x.learn);
    starts.push(ids.length);
    tokens += x.ids.length;
    learned += x.learn.reduce((a, b) => a + b, 0);
    longest = Math.max(longest, x.ids.length);
    if (ids.length >= run.shardTokens) await flush();
  }
  await flush();
  if (held.length > 0)
    await writeFileAtomic(
      path.join(run.out, "heldout.jsonl"),
      held.map((c) => JSON.stringify({ messages: c.messages })).join("\n") + "\n",
    );
  const examples = conversations.length - held.length;
  const meta = {
    format: "herd-instruction-shards",
    version: 1,
    created: new Date().toISOString(),
    tokenizer: {
      path: run.tokenizer,
      sha256: chat.sha256,
      vocabSize: chat.tokenizer.vocabSize,
      kind: chat.tokenizer.kind,
    },
    chatTemplate: {
      from:
        run.chatTemplate ?? (chat.template === defaultChatTemplate ? "herd default" : "the model"),
      sha256: createHash("sha256").update(chat.template).digest("hex"),
    },
    sources: files,
    examples,
    heldOut: held.length,
    holdoutShare: run.holdout,
    tokens,
    learnedTokens: learned,
    longestExample: longest,
    shards,
  };
  await writeFileAtomic(path.join(run.out, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
  return { ...meta, seconds: (Date.now() - t0) / 1000 };
}
