// The KV-cache inference engine against the training engine's full forward pass, on small
// random models with grouped-query attention, tied and untied embeddings.
import { test } from "node:test";
import assert from "node:assert/strict";
import { engine, type ModelConfig } from "../../native/engine.ts";
import { inference, type Inference } from "../../native/inference.ts";

const base: ModelConfig = {
  dim: 32,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  ffnHidden: 64,
  vocabSize: 261,
  maxSeqLen: 40,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedEmbeddings: true,
};

// A trainer with random weights (seeded) and an inference engine holding the same weights.
function pair(model: ModelConfig, seed = 7) {
  const trainer = engine.createTrainer({
    model,
    optimizer: {
      peakLr: 1e-3,
      minLrRatio: 0.1,
      warmupSteps: 1,
      totalSteps: 10,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      gradClip: 1,
    },
    seqLen: model.maxSeqLen,
    microBatch: 1,
    accumSteps: 1,
    seed,
    threads: 2,
    source: { kind: "text-bytes", text: new Uint8Array(4096), seed: 1 },
  });
  const inf = inference.createInference({ model, threads: 2 });
  const weights: Record<string, Float32Array> = {};
  for (const t of trainer.tensors("params")) weights[t.name] = t.data;
  inf.setTensors(weights);
  return { trainer, inf };
}

function randomTokens(n: number, vocab: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out[i] = s % vocab;
  }
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function logSoftmaxAt(logits: Float32Array, row: number, vocab: number, target: number): number {
  const z = logits.subarray(row * vocab, (row + 1) * vocab);
  let m = -Infinity;
  for (const x of z) m = Math.max(m, x);
  let s = 0;
  for (const x of z) s += Math.exp(x - m);
  return z[target]! - m - Math.log(s);
}

for (const variant of [
  { name: "GQA, tied embeddings", model: base },
  { name: "MHA, untied embeddings", model: { ...base, nKvHeads: 4, tiedEmbeddings: false } },
]) {
  test(`KV-cache logits equal the full forward's (${variant.name})`, async () => {
    const { trainer, inf } = pair(variant.model);
    const T = 23;
    const tokens = randomTokens(T, variant.model.vocabSize, 3);
    const full = await trainer.forward(tokens, 1, T);
    for (const chunk of [1, 5, T]) {
      const cached = await inf.logits(tokens, chunk);
      const diff = maxAbsDiff(cached, full.logits);
      assert.ok(diff < 1e-4, `chunk ${chunk}: max |Δlogit| ${diff}`);
    }
  });
}

test("scoring equals the summed log-softmax of the full forward, with shared contexts and prefixes", async () => {
  const { trainer, inf } = pair(base, 11);
  const V = base.vocabSize;
  const context = randomTokens(9, V, 5);
  const choices = [randomTokens(4, V, 6), randomTokens(1, V, 7), randomTokens(6, V, 8)];
  const requests = choices.map((c) => ({ context, continuation: c }));
  // a different context in between, then the first again
  requests.push({ context: randomTokens(3, V, 9), continuation: randomTokens(2, V, 10) });
  requests.push({ context, continuation: choices[0]! });
  // contexts that share only a beginning with the one before: the next question after the
  // same few-shot prompt, and a context that is the start of the previous one
  requests.push({
    context: Int32Array.from([...context.subarray(0, 6), ...randomTokens(5, V, 11)]),
    continuation: randomTokens(3, V, 12),
  });
  requests.push({ context: context.subarray(0, 4), continuation: randomTokens(2, V, 13) });
  requests.push({ context: context.subarray(0, 5), continuation: randomTokens(2, V, 14) });
  const results = await inf.score(requests);
  for (const [i, r] of requests.entries()) {
    const all = Int32Array.from([...r.context, ...r.continuation]);
    const { logits } = await trainer.forward(all, 1, all.length);
    let expected = 0;
    let greedy = true;
    for (let t = 0; t < r.continuation.length; t++) {
      const row = r.context.length - 1 + t;
      const target = r.continuation[t]!;
      expected += logSoftmaxAt(logits, row, V, target);
      const z = logits.subarray(row * V, (row + 1) * V);
      greedy &&= z[target]! >= Math.max(...z);
    }
    assert.ok(
      Math.abs(results[i]!.logprob - expected) < 1e-3,
      `request ${i}: ${results[i]!.logprob} vs ${expected}`,
    );
    assert.equal(results[i]!.greedy, greedy);
    assert.equal(results[i]!.tokens, r.continuation.length);
  }
  assert.equal(results[0]!.logprob, results[4]!.logprob);
});

test("rolling-window perplexity scores every token once; one window equals the full forward", async () => {
  const { trainer, inf } = pair(base, 13);
  const V = base.vocabSize;
  const tokens = randomTokens(30, V, 21);
  const { logits } = await trainer.forward(tokens, 1, tokens.length);
  let nll = 0;
  for (let t = 1; t < tokens.length; t++) nll -= logSoftmaxAt(logits, t - 1, V, tokens[t]!);
  const one = await inf.perplexity(tokens, 30, 30);
  assert.equal(one.tokens, 29);
  assert.ok(Math.abs(one.nll - nll) < 1e-3, `${one.nll} vs ${nll}`);
  // smaller windows: same token count, a different (less-context) total
  for (const [w, s] of [
    [8, 8],
    [8, 4],
    [2, 1],
  ] as const) {
    const r = await inf.perplexity(tokens, w, s);
    assert.equal(r.tokens, 29, `window ${w} stride ${s}`);
    assert.ok(Number.isFinite(r.nll) && r.nll > 0);
  }
  await assert.rejects(inf.perplexity(tokens, 1, 1), /window/);
});

async function greedyByHand(inf: Inference, prompt: Int32Array, n: number, V: number) {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const logits = await inf.logits(Int32Array.from(seq), seq.length);
    const last = logits.subarray((seq.length - 1) * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (last[v]! > last[best]!) best = v;
    seq.push(best);
  }
  return seq.slice(prompt.length);
}

test("generation: greedy is the arg-max chain; sampling is reproducible from its seed", async () => {
  const { inf } = pair(base, 17);
  const V = base.vocabSize;
  const prompt = randomTokens(5, V, 31);
  const greedy = await inf.generate(prompt, { maxNewTokens: 8 });
  assert.deepEqual([...greedy], await greedyByHand(inf, prompt, 8, V));
  const a = await inf.generate(prompt, { maxNewTokens: 12, temperature: 1.5, topP: 0.9, seed: 5 });
  const b = await inf.generate(prompt, { maxNewTokens: 12, temperature: 1.5, topP: 0.9, seed: 5 });
  const c = await inf.generate(prompt, { maxNewTokens: 12, temperature: 1.5, topP: 0.9, seed: 6 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  // a tiny nucleus keeps only the most likely token: greedy again
  const nucleus = await inf.generate(prompt, {
    maxNewTokens: 8,
    temperature: 1,
    topP: 1e-9,
    seed: 3,
  });
  assert.deepEqual(nucleus, greedy);
  // stop tokens end generation and are included
  const stop = await inf.generate(prompt, { maxNewTokens: 8, stop: Int32Array.of(greedy[2]!) });
  assert.deepEqual([...stop], [...greedy].slice(0, [...greedy].indexOf(greedy[2]!) + 1));
  // a stop sequence ends generation once the output ends with it
  const seq = await inf.generate(prompt, {
    maxNewTokens: 8,
    stopSequences: [Int32Array.of(999999), greedy.slice(3, 5)],
  });
  const g = [...greedy];
  const end = g.findIndex((_, i) => i >= 1 && g[i - 1] === g[3] && g[i] === g[4]) + 1;
  assert.ok(end >= 2 && end <= 5);
  assert.deepEqual([...seq], g.slice(0, end));
});

test("samples: one prompt, k outputs; the first is generate's, the set depends on the seed alone", async () => {
  const { inf } = pair(base, 17);
  const prompt = randomTokens(6, base.vocabSize, 8);
  const o = { maxNewTokens: 10, temperature: 1.2, seed: 9 };
  const k = await inf.generateSamples(prompt, { ...o, samples: 4 });
  assert.equal(k.length, 4);
  assert.deepEqual(k[0], await inf.generate(prompt, o));
  assert.deepEqual(k, await inf.generateSamples(prompt, { ...o, samples: 4 }));
  assert.ok(new Set(k.map((x) => x.join())).size > 1, "samples differ");
  // greedy samples are all the greedy output: each starts again from the prompt's cache
  const g = await inf.generateSamples(prompt, { maxNewTokens: 10, samples: 3 });
  const greedy = await inf.generate(prompt, { maxNewTokens: 10 });
  assert.deepEqual(g, [greedy, greedy, greedy]);
  await assert.rejects(inf.generateSamples(prompt, { samples: 0 }), /samples must be at least 1/);
});

test("bad input is rejected with a clear error", async () => {
  const { inf } = pair(base);
  await assert.rejects(inf.logits(Int32Array.of(1, 999), 1), /token id 999 out of range/);
  await assert.rejects(
    inf.score([{ context: new Int32Array(0), continuation: Int32Array.of(1) }]),
    /empty context/,
  );
  await assert.rejects(inf.logits(new Int32Array(41), 41), /exceeds maxSeqLen 40/);
  assert.throws(() => inf.setTensors({}), /tok_embeddings.weight is missing/);
  assert.throws(
    () => inference.createInference({ model: { ...base, nKvHeads: 3 }, threads: 1 }),
    /not divisible by nKvHeads/,
  );
});
