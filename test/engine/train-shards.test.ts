// `herd train --local` on the API's main data path: a SentencePiece tokenizer (LLaMA's own,
// from data/) and a weighted mixture of token-shard sources made by `herd data
// prepare` (the paper's recipe on a small scale). The loss falls from about ln(32000), resume
// is exact (the mixture's position travels in trainer.json), and bad data or a tokenizer
// that is not the shards' are refused, named, with exit 64.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { stepName } from "../../workers/trainer/checkpoint.ts";
import { corpus, herdBin, herdTrain, tinyJobManifest } from "./fixtures.ts";

const data = path.dirname(path.dirname(corpus));
const tokenizer = path.join(data, "tokenizers/llama-sp32000.model");
const work = mkdtempSync(path.join(tmpdir(), "herd-train-shards-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

function prepare(name: string, input: string): string {
  const out = path.join(work, name);
  const r = spawnSync(
    process.execPath,
    [
      herdBin,
      "data",
      "prepare",
      "--input",
      input,
      "--tokenizer",
      tokenizer,
      "--out",
      out,
      "--quiet",
    ],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  return out;
}

const shakespeare = prepare("shakespeare", corpus);
const stories = prepare("stories", path.join(data, "corpus/tinystories_sample.txt"));

/** Two sources, 3:1, through the job's SentencePiece tokenizer. */
function job(name: string, sources = [shakespeare, stories], tok = tokenizer): string {
  const file = tinyJobManifest(work, name, { steps: 8, checkpoint: { intervalSteps: 4 } });
  const list = sources
    .map((uri, i) => `{ name: s${i}, uri: ${uri}, format: shards, weight: ${i === 0 ? 3 : 1} }`)
    .join(", ");
  writeFileSync(
    file,
    readFileSync(file, "utf8")
      .replace("tokenizer: { type: bytes }", `tokenizer: { type: sentencepiece, uri: ${tok} }`)
      .replace(/sources: \[.*\]/, `sources: [${list}]`),
  );
  return file;
}

const steps = (stdout: string) =>
  stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { event: string; loss: number })
    .filter((e) => e.event === "step");
const file = (out: string, step: number, name: string) =>
  readFileSync(path.join(out, stepName(step), name));

test("a mixture of token shards trains, and resumes exactly where it stopped", () => {
  const manifest = job("mix");
  const straight = path.join(work, "straight");
  let r = herdTrain(manifest, straight, 8);
  assert.equal(r.status, 0, r.stderr);
  const losses = steps(r.stdout).map((s) => s.loss);
  assert.equal(losses.length, 8);
  // A 32000-token vocabulary: the untrained model is near ln(32000) ≈ 10.37.
  assert.ok(Math.abs(losses[0]! - Math.log(32000)) < 0.5, `first loss ${losses[0]}`);
  assert.ok(losses[7]! < losses[0]! - 0.5, `losses ${losses.join(", ")}`);
  const state = JSON.parse(file(straight, 8, "trainer.json").toString()) as {
    dataSource: unknown;
    model: { vocabSize: number };
  };
  assert.equal(state.model.vocabSize, 32000, "the model's vocabulary is the shards'");
  assert.match(
    String(state.dataSource),
    /^herd-mixture-state 1\n[\s\S]*source s0 [\s\S]*source s1 /,
  );

  const split = path.join(work, "split");
  assert.equal(herdTrain(manifest, split, 4).status, 0);
  r = herdTrain(manifest, split, 8);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /resumed from [^"]*step-000000004/);
  for (const name of ["model.safetensors", "optimizer.safetensors"])
    assert.ok(file(split, 8, name).equals(file(straight, 8, name)), name);

  // The trained checkpoint evaluates with the same tokenizer: perplexity on the TinyStories
  // text is below a uniform guess over 32000 tokens and agrees with the training loss.
  const evalJob = path.join(work, "eval-sp.yaml");
  writeFileSync(
    evalJob,
    `apiVersion: herd.dev/v1alpha1
kind: EvalJob
metadata: { name: sp }
spec:
  checkpoint: { uri: ${path.join(straight, stepName(8))}, format: herd }
  tokenizer: { type: sentencepiece, uri: ${tokenizer} }
  tasks: [{ name: stories, type: perplexity, uri: ${path.join(data, "corpus/tinystories_sample.txt")} }]
`,
  );
  const results = path.join(work, "eval-sp.json");
  const e = spawnSync(
    process.execPath,
    [herdBin, "eval", "--local", "-f", evalJob, "--out", results, "--threads", "2"],
    { encoding: "utf8" },
  );
  assert.equal(e.status, 0, e.stderr);
  const ppl = (
    JSON.parse(readFileSync(results, "utf8")) as {
      tasks: { metrics: { name: string; value: number }[] }[];
    }
  ).tasks[0]!.metrics.find((m) => m.name === "perplexity")!.value;
  assert.ok(ppl > 1 && ppl < 32000, `perplexity ${ppl}`);
  assert.ok(Math.abs(Math.log(ppl) - losses[7]!) < 1, `ln ${ppl} vs loss ${losses[7]}`);
});

test("bad data for a SentencePiece job: exit 64, naming the source or the tokenizer", () => {
  const cases: [string, RegExp][] = [
    [job("missing", [path.join(work, "nowhere")]), /spec\.data\.sources: .*nowhere/],
    [
      // A text source needs the bytes tokenizer.
      tinyJobManifest(work, "text-sp"),
      /spec\.data\.sources\[0\]\.format: text is read with the bytes tokenizer only/,
    ],
    [
      job("other-tokenizer", [shakespeare], corpus),
      /spec\.tokenizer\.uri: .*tinyshakespeare\.txt\.gz \(sha256 [0-9a-f]{12}…\) is not the tokenizer the shards were made with/,
    ],
  ];
  const textJob = cases[1]![0];
  writeFileSync(
    textJob,
    readFileSync(textJob, "utf8").replace(
      "tokenizer: { type: bytes }",
      `tokenizer: { type: sentencepiece, uri: ${tokenizer} }`,
    ),
  );
  for (const [manifest, message] of cases) {
    const r = herdTrain(manifest, path.join(work, `out-${path.basename(manifest)}`), 2);
    assert.equal(r.status, 64, `${manifest}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});
