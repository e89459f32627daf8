// Conversations for instruction tuning and its evaluation: reading them (JSONL of pairs, of
// chat messages, or oasst1 message rows), rendering them with a model's chat template (Jinja,
// as GGUF's tokenizer.chat_template, rendered by @huggingface/jinja), and tokenizing them with
// a learn mask that covers the assistant's replies only: the text a turn adds after the
// prompt that asks for it (the template with add_generation_prompt) up to and including its
// end token. `herd data prepare --instruct` (cli/instruct.ts) and the evaluator's chat task
// (workers/eval/run.ts) share it; docs/fine-tuning.md.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { Template } from "@huggingface/jinja";
import { loadTokenizer } from "../../native/tokenizer.ts";
import { createDecompressedStream } from "../compressed.ts";
import { sha256File } from "../file-hash.ts";
import { metaNumbers, metaStrings, parseGguf } from "./gguf.ts";
import { hfTokenizerFile, isHfTokenizer, readHfTokenizer } from "./hf-tokenizer.ts";
import { ggufTokenizer, sentencePieceTokenizer, type TextTokenizer } from "./tokenizers.ts";

export type Role = "system" | "user" | "assistant";
export interface Message {
  role: Role;
  content: string;
}
export interface Conversation {
  /** Where it came from, for messages: file:line or the oasst message id. */
  source: string;
  /** Conversations of one group go to the same side of the held-out split (an oasst tree). */
  group: string;
  messages: Message[];
}

/**
 * Used when the model carries no chat template (herd's own SentencePiece models): role-tagged
 * turns, each reply closed by the end-of-sequence token (nothing after it) so the model learns
 * to stop there.
 */
export const defaultChatTemplate =
  "{% for m in messages %}{% if m.role == 'assistant' %}{{ 'Assistant: ' + m.content + eos_token }}" +
  "{% else %}{{ (m.role == 'system' and 'System: ' or 'User: ') + m.content + '\\n' }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";

// ---- reading conversations -----------------------------------------------------------------

const roles: Record<string, Role> = {
  system: "system",
  user: "user",
  human: "user",
  prompter: "user",
  assistant: "assistant",
  gpt: "assistant",
};

interface OasstRow {
  message_id: string;
  parent_id: string | null;
  message_tree_id?: string;
  role: string;
  text: string;
  deleted?: boolean;
}

/**
 * The conversations of JSONL files, in order. A line is one of
 *   {"prompt": "...", "response": "...", "system"?: "..."}
 *   {"messages": [{"role": "user" | "assistant" | "system", "content": "..."}, ...]}
 *   an OpenAssistant (oasst1) message row: every assistant reply with its prompt becomes one
 *   conversation (deleted messages are skipped; a tree is one group).
 * Anything else is an error naming the file and line.
 */
export async function readConversations(files: string[]): Promise<Conversation[]> {
  const out: Conversation[] = [];
  const oasst = new Map<string, OasstRow>();
  for (const file of files) {
    const lines = createInterface({
      input: createDecompressedStream(file).setEncoding("utf8"),
      crlfDelay: Infinity,
    });
    let n = 0;
    for await (const line of lines) {
      n++;
      if (line.trim() === "") continue;
      const where = `${file}:${n}`;
      let row: Record<string, unknown>;
      try {
        row = JSON.parse(line) as Record<string, unknown>;
      } catch (err) {
        throw new Error(`${where}: not JSON (${(err as Error).message})`);
      }
      if (typeof row !== "object" || row === null || Array.isArray(row))
        throw new Error(`${where}: not a JSON object`);
      if ("messages" in row)
        out.push({ source: where, group: where, messages: messagesOf(row.messages, where) });
      else if ("prompt" in row || "response" in row) out.push(pairOf(row, where));
      else if ("message_id" in row && "role" in row && "text" in row) {
        const r = row as unknown as OasstRow;
        if (!r.deleted) oasst.set(r.message_id, r);
      } else
        throw new Error(
          `${where}: expected {"prompt", "response"}, {"messages": [...]} or an oasst message row`,
        );
    }
  }
  for (const r of oasst.values()) {
    if (r.role !== "assistant" || !r.parent_id) continue;
    const parent = oasst.get(r.parent_id);
    if (!parent || parent.role !== "prompter") continue;
    out.push({
      source: `oasst ${r.message_id}`,
      group: r.message_tree_id ?? r.parent_id,
      messages: [
        { role: "user", content: parent.text },
        { role: "assistant", content: r.text },
      ],
    });
  }
  return out;
}

function pairOf(row: Record<string, unknown>, where: string): Conversation {
  const { prompt, response, system } = row;
  if (typeof prompt !== "string" || typeof response !== "string")
    throw new Error(`${where}: "prompt" and "response" must both be strings`);
  if (system !== undefined && typeof system !== "string")
    throw new Error(`${where}: "system" must be a string`);
  return {
    source: where,
    group: where,
    messages: [
      ...(system ? [{ role: "system" as const, content: system }] : []),
      { role: "user", content: prompt },
      { role: "assistant", content: response },
    ],
  };
}

function messagesOf(value: unknown, where: string): Message[] {
  if (!Array.isArray(value) || value.length === 0)
    throw new Error(`${where}: "messages" must be a non-empty array`);
  const messages = value.map((m: unknown, i) => {
    const { role, content } = (m ?? {}) as { role?: unknown; content?: unknown };
    const r = typeof role === "string" ? roles[role] : undefined;
    if (!r || !Object.hasOwn(roles, role as string))
      throw new Error(
        `${where}: messages[${i}].role must be one of ${Object.keys(roles).join(", ")}`,
      );
    if (typeof content !== "string")
      throw new Error(`${where}: messages[${i}].content must be a string`);
    return { role: r, content };
  });
  if (!messages.some((m) => m.role === "assistant"))
    throw new Error(`${where}: no assistant message: nothing to learn`);
  return messages;
}

// ---- rendering and tokenizing ----------------------------------------------------------------

/** A model's tokenizer with what chat rendering needs: its template and special tokens. */
export interface ChatTokenizer {
  tokenizer: TextTokenizer;
  template: string;
  /** Text of tokens that are parsed as themselves (<|im_start|>, </s>, ...) → id. */
  specials: Map<string, number>;
  bosToken: string;
  eosToken: string;
  /** The file the tokenizer came from, and its sha256 (the shards' meta.json records it). */
  file: string;
  sha256: string;
}

/**
 * The tokenizer of a GGUF model file (with its chat template and control tokens), of a
 * Hugging Face folder or tokenizer.json (with tokenizer_config.json's template and the special
 * added tokens) or of a SentencePiece .model file (with the default template). `template`
 * overrides the model's. `file` becomes the tokenizer file itself (a folder's tokenizer.json).
 */
export function chatTokenizer(uri: string, template?: string): ChatTokenizer {
  const hf = isHfTokenizer(uri);
  const file = hf ? hfTokenizerFile(uri) : uri;
  const sha256 = sha256File(file);
  if (hf) {
    const t = readHfTokenizer(file);
    return {
      tokenizer: t.tokenizer,
      template: template ?? t.chatTemplate ?? defaultChatTemplate,
      specials: t.specials,
      bosToken: t.bosToken,
      eosToken: t.eosToken,
      file,
      sha256,
    };
  }
  if (file.endsWith(".gguf")) {
    const g = parseGguf(readFileSync(file), file);
    const tokenizer = ggufTokenizer(g);
    const tokens = metaStrings(g, "tokenizer.ggml.tokens")!;
    const types = metaNumbers(g, "tokenizer.ggml.token_type") ?? [];
    const specials = new Map<string, number>();
    // llama.cpp's parse_special: control (3) and user-defined (4) tokens match as themselves
    types.forEach((t, id) => {
      if ((t === 3 || t === 4) && tokens[id]!.length > 1) specials.set(tokens[id]!, id);
    });
    const own = g.metadata.get("tokenizer.chat_template");
    return {
      tokenizer,
      template: template ?? (typeof own === "string" ? own : defaultChatTemplate),
      specials,
      bosToken: tokenizer.bosId !== undefined ? tokens[tokenizer.bosId]! : "",
      eosToken: tokenizer.eosId !== undefined ? tokens[tokenizer.eosId]! : "",
      file,
      sha256,
    };
  }
  const sp = loadTokenizer(file);
  const specials = new Map<string, number>();
  for (const id of [sp.bosId, sp.eosId]) if (id >= 0) specials.set(sp.piece(id), id);
  return {
    tokenizer: sentencePieceTokenizer(file),
    template: template ?? defaultChatTemplate,
    specials,
    bosToken: sp.bosId >= 0 ? sp.piece(sp.bosId) : "",
    eosToken: sp.eosId >= 0 ? sp.piece(sp.eosId) : "",
    file,
    sha256,
  };
}

/** Token ids of rendered text: special tokens by their ids, the text between them encoded. */
export async function encodeWithSpecials(t: ChatTokenizer, text: string): Promise<number[]> {
  const ids: number[] = [];
  let plain = "";
  const flush = async () => {
    if (plain) ids.push(...(await t.tokenizer.encode(plain)));
    plain = "";
  };
  const longestFirst = [...t.specials.keys()].sort((a, b) => b.length - a.length);
  for (let i = 0; i < text.length;) {
    const special =
      text[i] === "<" || text[i] === "["
        ? longestFirst.find((s) => text.startsWith(s, i))
        : undefined;
    if (special) {
      await flush();
      ids.push(t.specials.get(special)!);
      i += special.length;
    } else {
      plain += text[i];
      i++;
    }
  }
  await flush();
  return ids;
}

export interface EncodedExample {
  ids: number[];
  /** 1 where ids[i] is a target to learn: a token of an assistant reply. */
  learn: number[];
}

/**
 * One conversation as an example. The rendering is cut where each assistant reply starts
 * (the template with add_generation_prompt over the messages before it) and ends (the
 * template over the messages up to it); each cut piece is tokenized on its own, so the
 * reply's tokens are exactly those a model generating it would produce.
 */
export async function encodeConversation(
  c: Conversation,
  t: ChatTokenizer,
  template = new Template(t.template),
): Promise<EncodedExample> {
  const render = (messages: Message[], addGenerationPrompt: boolean) =>
    template.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      bos_token: t.bosToken,
      eos_token: t.eosToken,
    });
  const ids: number[] = [],
    learn: number[] = [];
  const push = async (text: string, learned: boolean) => {
    for (const id of await encodeWithSpecials(t, text)) {
      ids.push(id);
      learn.push(learned ? 1 : 0);
    }
  };
  let done = "";
  for (let i = 0; i < c.messages.length; i++) {
    if (c.messages[i]!.role !== "assistant") continue;
    const prompt = render(c.messages.slice(0, i), true);
    const whole = render(c.messages.slice(0, i + 1), false);
    if (!prompt.startsWith(done) || !whole.startsWith(prompt))
      throw new Error(
        `${c.source}: the chat template does not render the conversation turn by turn (each ` +
          "rendering must extend the one before); give --chat-template",
      );
    await push(prompt.slice(done.length), false);
    await push(whole.slice(prompt.length), true);
    done = whole;
  }
  const bos = t.tokenizer.bosId;
  if (t.tokenizer.addBos && bos !== undefined && ids[0] !== bos) {
    ids.unshift(bos);
    learn.unshift(0);
  }
  return { ids, learn };
}
