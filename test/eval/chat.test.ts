// The chat task (type: chat): the replies' perplexity of conversations rendered with the
// model's chat template. The reference is the training engine: its per-token losses on the
// whole rendered conversation, summed over the learned tokens, must be the task's NLL.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { engine } from "../../native/engine.ts";
import { evalChat } from "../../workers/eval/chat.ts";
import { openModel } from "../../workers/eval/open.ts";
import { chatTokenizer, encodeConversation, type Conversation } from "../../workers/model/chat.ts";
import { smollm2Path } from "../../workers/model/smollm2.ts";
import { optimizerOptions } from "../engine/fixtures.ts";

const gguf = smollm2Path();
const skip = { skip: gguf ? false : "SmolLM2 not provisioned" };

const conversations: Conversation[] = [
  {
    source: "a",
    group: "a",
    messages: [
      { role: "user", content: "What is the capital of France?" },
      { role: "assistant", content: "The capital of France is Paris." },
    ],
  },
  {
    source: "b",
    group: "b",
    messages: [
      { role: "user", content: "Name a colour." },
      { role: "assistant", content: "Blue." },
      { role: "user", content: "And a fruit?" },
      { role: "assistant", content: "An apple." },
    ],
  },
];

test("the chat task's NLL is the training engine's loss on the replies", skip, async () => {
  const m = openModel({ path: gguf!, threads: 2, maxSeqLen: 256 });
  const chat = chatTokenizer(gguf!);
  const r = await evalChat(m, conversations, chat);

  const t = engine.createTrainer({
    model: { ...m.loaded.config, maxSeqLen: 256 },
    optimizer: optimizerOptions,
    seqLen: 8,
    microBatch: 1,
    accumSteps: 1,
    seed: 0,
    threads: 2,
    source: { kind: "text-bytes", text: new Uint8Array(64), seed: 0 },
  });
  t.setTensors("params", m.loaded.tensors);
  let nll = 0,
    tokens = 0;
  for (const c of conversations) {
    const x = await encodeConversation(c, chat);
    const n = x.ids.length - 1;
    const inputs = Int32Array.from(x.ids.slice(0, n));
    const targets = Int32Array.from(x.ids.slice(1).map((id, i) => (x.learn[i + 1] ? id : -1)));
    const f = await t.forward(inputs, 1, n, targets);
    nll += f.tokenLosses!.reduce((a, b) => a + b, 0);
    tokens += targets.filter((id) => id >= 0).length;
  }
  assert.equal(r.tokens, tokens);
  assert.ok(Math.abs(r.nll - nll) / nll < 1e-3, `chat task NLL ${r.nll}, trainer ${nll}`);
  const ppl = r.metrics.find((x) => x.name === "perplexity")!.value;
  assert.ok(Math.abs(ppl - Math.exp(nll / tokens)) / ppl < 1e-3);
  assert.ok(ppl > 1 && ppl < 20, `perplexity ${ppl} of easy replies`);
});

test("herd eval --local runs a chat task on a JSONL of conversations", skip, async () => {
  const { runEvalLocal } = await import("../../workers/eval/run.ts");
  const dir = mkdtempSync(path.join(tmpdir(), "herd-chat-"));
  const data = path.join(dir, "conversations.jsonl");
  writeFileSync(
    data,
    conversations.map((c) => JSON.stringify({ messages: c.messages })).join("\n") + "\n",
  );
  const job = path.join(dir, "job.yaml");
  writeFileSync(
    job,
    `apiVersion: herd.dev/v1alpha1
kind: EvalJob
metadata: { name: chat }
spec:
  checkpoint: { uri: ${gguf}, format: gguf }
  tasks: [{ name: heldout, type: chat, uri: conversations.jsonl, limit: 1 }]
`,
  );
  const out = path.join(dir, "results.json");
  const results = await runEvalLocal({ manifest: job, out, threads: 2, log: () => {} });
  const task = results.tasks[0]!;
  assert.equal(task.type, "chat");
  assert.equal(task.examples, 1);
  assert.ok(task.metrics.some((x) => x.name === "perplexity" && x.value > 1));
});
