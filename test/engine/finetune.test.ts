// Fine-tuning SmolLM2-135M on oasst1 with `herd train --local`: spec.model.from (GGUF,
// Hugging Face safetensors, a herd checkpoint), instruction examples with learn masks, a
// resume that never reads the initial model again, errors that name the field, and the
// export to GGUF that herd and llama.cpp load. Skipped when SmolLM2 is not provisioned.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createExampleLoader } from "../../native/data.ts";
import { engine } from "../../native/engine.ts";
import { readGguf, readHerd } from "../../workers/model/formats.ts";
import { readSafetensorsLayout } from "../../workers/trainer/engine-checkpoint.ts";
import { llamaCppBin, smollm2Path } from "../../workers/model/smollm2.ts";
import { dataDir, llamaModel } from "../data/files.ts";
import { herdBin, optimizerOptions } from "./fixtures.ts";

const smol = smollm2Path();
const skip = { skip: smol ? false : "SmolLM2 not provisioned" };
let dir = "",
  base = "",
  shards = "";
const seqLen = 64,
  rows = 2;

const herd = (...args: string[]) =>
  spawnSync(process.execPath, [herdBin, ...args], { encoding: "utf8" });

/** oasst1's examples made with a tokenizer (a GGUF, or a Hugging Face folder) into `out`. */
function prepareOasst(tokenizer: string, out: string) {
  const r = herd(
    ...["data", "prepare", "--instruct", "--tokenizer", tokenizer, "--out", out],
    ...["--input", path.join(dataDir, "instruct/oasst1-en-validation.jsonl.gz")],
    ...["--holdout", "0.1"],
  );
  assert.equal(r.status, 0, r.stderr);
}

before(() => {
  if (!smol) return;
  dir = mkdtempSync(path.join(tmpdir(), "herd-finetune-"));
  base = path.join(dir, "base.gguf"); // a copy: the resume test deletes it
  copyFileSync(smol, base);
  shards = path.join(dir, "oasst");
  prepareOasst(base, shards);
});
after(() => dir && rmSync(dir, { recursive: true, force: true }));

/** A fine-tuning job: 2 rows of 64 tokens a step, a checkpoint every step. */
function job(name: string, model: string, extra = "", training = "", data = shards): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: herd.dev/v1alpha1
kind: TrainingJob
metadata: { name: ${name} }
spec:
  model:
${model}
  data:
    sources: [{ name: oasst1, uri: ${data}, format: examples }]
    seqLen: ${seqLen}
  training:
    steps: 3
    globalBatchTokens: ${rows * seqLen}
    microBatch: 1
    optimizer: { peakLr: 0.0001, warmupSteps: 1 }
    seed: 7
${training}
  checkpoint: { uri: ${path.join(dir, name)}, intervalSteps: 1 }
${extra}`,
  );
  return file;
}

const fromGguf = (uri: string) => `    from: { uri: ${uri} }`;

function train(file: string, ...extra: string[]) {
  const r = herd("train", "--local", "-f", file, "--threads", "2", "--log", "json", ...extra);
  const lines = r.stdout
    .split("\n")
    .concat(r.stderr.split("\n"))
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { event: string; step?: number; loss?: number; msg?: string });
  return { ...r, losses: lines.filter((l) => l.event === "step").map((l) => l.loss!), lines };
}

/** The loss of the pretrained model on step 1's rows, computed apart from the trainer. */
async function pretrainedLoss(): Promise<number> {
  const m = readGguf(base);
  const t = engine.createTrainer({
    model: m.config,
    optimizer: optimizerOptions,
    seqLen,
    microBatch: rows,
    accumSteps: 1,
    seed: 7,
    threads: 2,
    source: { kind: "examples", folder: shards, seed: 7 },
  });
  t.setTensors("params", m.tensors);
  const r = createExampleLoader({ folder: shards, seed: 7 }).rows(0, 0, 1, rows, seqLen);
  const inputs = new Int32Array(rows * seqLen),
    targets = new Int32Array(rows * seqLen);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < seqLen; j++) {
      inputs[i * seqLen + j] = r.tokens[i * (seqLen + 1) + j]!;
      targets[i * seqLen + j] = r.learn[i * seqLen + j] ? r.tokens[i * (seqLen + 1) + j + 1]! : -1;
    }
  return (await t.lossAndGrads(inputs, rows, seqLen, targets, r.positions)).loss;
}

let firstLoss = NaN;

test(
  "from a GGUF: step 1's loss is the pretrained model's on its rows, far below ln V",
  skip,
  async () => {
    const r = train(job("gguf", fromGguf(base)), "--steps", "1");
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.lines.some((l) => /^fine-tuning .*base\.gguf \(gguf\)/.test(l.msg ?? "")));
    firstLoss = r.losses[0]!;
    const want = await pretrainedLoss();
    assert.ok(Math.abs(firstLoss - want) < 1e-4, `step 1 loss ${firstLoss}, pretrained ${want}`);
    assert.ok(firstLoss < Math.log(49152) / 2, `loss ${firstLoss} is not a pretrained model's`);
  },
);

test("a resume reads only herd's checkpoint, never the initial model, and is exact", skip, () => {
  const whole = train(job("whole", fromGguf(base)));
  assert.equal(whole.status, 0, whole.stderr);
  const file = job("cut", fromGguf(base));
  const first = train(file, "--steps", "2");
  assert.equal(first.status, 0, first.stderr);
  const moved = `${base}.moved`;
  copyFileSync(base, moved);
  rmSync(base);
  try {
    const rest = train(file);
    assert.equal(rest.status, 0, rest.stderr);
    assert.ok(rest.lines.some((l) => /resumed from/.test(l.msg ?? "")));
    const a = readHerd(path.join(dir, "whole")),
      b = readHerd(path.join(dir, "cut"));
    assert.equal(a.step, 3);
    assert.equal(b.step, 3);
    for (const [name, t] of Object.entries(a.tensors))
      assert.deepEqual(b.tensors[name], t, `${name} differs from the uninterrupted run's`);
    assert.deepEqual(rest.losses, whole.losses.slice(2));
  } finally {
    copyFileSync(moved, base);
  }
});

test(
  "LoRA: step 1 is the pretrained model's, only the targets move, a resume is exact",
  skip,
  () => {
    const lora = "    lora: { rank: 8, alpha: 16, targets: [q_proj, v_proj, wo] }";
    const whole = train(job("lora-whole", fromGguf(base), "", lora));
    assert.equal(whole.status, 0, whole.stderr);
    assert.ok(Math.abs(whole.losses[0]! - firstLoss) < 1e-4, "B = 0: the base model's loss");
    const file = job("lora-cut", fromGguf(base), "", lora);
    assert.equal(train(file, "--steps", "2").status, 0);
    const rest = train(file);
    assert.equal(rest.status, 0, rest.stderr);
    assert.deepEqual(rest.losses, whole.losses.slice(2));
    const a = readHerd(path.join(dir, "lora-whole")),
      b = readHerd(path.join(dir, "lora-cut"));
    assert.equal(b.step, 3);
    const pretrained = readGguf(base).tensors;
    let moved = 0;
    for (const [name, t] of Object.entries(a.tensors)) {
      assert.deepEqual(b.tensors[name], t, `${name} differs from the uninterrupted run's`);
      const same = Buffer.from(t.buffer).equals(Buffer.from(pretrained[name]!.buffer));
      if (/attention\.(wq|wv|wo)\.weight$/.test(name)) moved += Number(!same);
      else assert.ok(same, `${name} is frozen but changed`);
    }
    assert.equal(moved, 3 * 30, "every adapted matrix of the 30 blocks moved");
    // AdamW's state is the adapters' alone: 3 matrices × 30 blocks × (A, B) × (m, v).
    const step = path.join(dir, "lora-cut", "step-000000003");
    const opt = readSafetensorsLayout(path.join(step, "optimizer.safetensors"), "optimizer");
    assert.equal(opt.entries.length, 3 * 30 * 2 * 2);
    assert.ok(opt.entries.every((e) => /\.lora_[AB]\.weight$/.test(e.name)));
    // Another LoRA on the same checkpoints is refused, naming the field.
    const other = train(job("lora-cut", fromGguf(base), "", lora.replace("rank: 8", "rank: 4")));
    assert.equal(other.status, 64);
    assert.match(
      other.stderr,
      /spec\.training\.lora: the checkpoint trained with LoRA .*"rank":8.* the job asks for .*"rank":4/,
    );
  },
);

test("from Hugging Face safetensors and from a herd checkpoint", skip, () => {
  const hf = path.join(dir, "hf");
  const c = herd("convert", "--from", base, "--to", hf, "--to-format", "safetensors");
  assert.equal(c.status, 0, c.stderr);
  // The job may name the GGUF's tokenizer, with which the shards were made ...
  const r = train(
    job("hf", `    from: { uri: ${hf} }`, `  tokenizer: { type: gguf, uri: ${base} }`),
    "--steps",
    "1",
  );
  assert.equal(r.status, 0, r.stderr);
  assert.ok(Math.abs(r.losses[0]! - firstLoss) < 1e-4, "the same weights give the same loss");
  // ... or take the folder's own tokenizer.json (herd convert wrote it), with shards made
  // from it: the same tokens, so the same loss.
  const hfShards = path.join(dir, "oasst-hf");
  prepareOasst(hf, hfShards);
  const own = train(job("hf-own", `    from: { uri: ${hf} }`, "", "", hfShards), "--steps", "1");
  assert.equal(own.status, 0, own.stderr);
  assert.ok(Math.abs(own.losses[0]! - firstLoss) < 1e-4, "tokenizer.json gives the GGUF's tokens");
  // Nor does a herd checkpoint: a fine-tuned model fine-tuned again names its tokenizer too.
  const h = train(
    job(
      "again",
      `    from: { uri: ${path.join(dir, "whole")}, format: herd }`,
      `  tokenizer: { type: gguf, uri: ${base} }`,
    ),
    "--steps",
    "1",
  );
  assert.equal(h.status, 0, h.stderr);
  assert.ok(h.lines.some((l) => /^fine-tuning .*whole \(herd\)/.test(l.msg ?? "")));
});

test("a job that does not match its pretrained model or data fails naming the field", skip, () => {
  const cases: [string, string, RegExp][] = [
    [
      fromGguf(base) + "\n    dim: 512",
      "",
      /spec\.model\.dim: the job says dim 512, the model in spec\.model\.from has 576/,
    ],
    [fromGguf(base) + "\n    preset: llama-tiny", "", /model\.from brings its own architecture/],
    [
      `    from: { uri: ${path.join(dir, "whole")}, format: herd }`,
      "",
      /spec\.tokenizer: required: spec\.model\.from is a herd checkpoint, which carries no tokenizer/,
    ],
    [
      `    from: { uri: ${path.join(dir, "hf")} }`,
      "",
      /spec\.model\.from\.uri: .*tokenizer\.json .* is not the tokenizer the shards were made with/,
    ],
    [
      fromGguf(base),
      `  tokenizer: { type: sentencepiece, uri: ${llamaModel} }`,
      /is not the tokenizer the shards were made with/,
    ],
    [
      fromGguf(path.join(dir, "nothing.gguf")),
      "",
      /spec\.model\.from\.uri .*nothing\.gguf.* does not exist/,
    ],
  ];
  for (const [model, extra, message] of cases) {
    const r = train(job("bad", model, extra), "--steps", "1");
    assert.equal(r.status, 64, `${message}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

test(
  "herd convert writes the fine-tuned model as GGUF with its tokenizer; herd generates from it",
  skip,
  () => {
    const out = path.join(dir, "ft.gguf");
    const bare = herd(
      "convert",
      "--from",
      path.join(dir, "whole"),
      "--to",
      out,
      "--to-format",
      "gguf",
    );
    assert.notEqual(bare.status, 0);
    assert.match(bare.stderr, /carries no tokenizer; give --tokenizer, the GGUF file/);
    const c = herd(
      ...["convert", "--from", path.join(dir, "whole"), "--to", out, "--to-format", "gguf"],
      ...["--type", "f16", "--tokenizer", base],
    );
    assert.equal(c.status, 0, c.stderr);
    const g = herd(
      "generate",
      "--checkpoint",
      out,
      "--prompt",
      "The capital of France is",
      "--max-tokens",
      "3",
      "--threads",
      "2",
    );
    assert.equal(g.status, 0, g.stderr);
    assert.match(g.stdout, /^The capital of France is Paris/);
  },
);

const llama = llamaCppBin();
test(
  "llama.cpp loads the exported GGUF and generates from it",
  {
    skip: !smol
      ? "SmolLM2 not provisioned"
      : !llama
        ? "llama.cpp not built (scripts/provision.d/41-llama-cpp.sh)"
        : false,
  },
  async () => {
    const out = path.join(dir, "ft.gguf");
    const port = 20000 + Math.floor(Math.random() * 20000);
    const server = spawn(
      path.join(llama!, "llama-server"),
      ["-m", out, "--port", String(port), "-t", "2", "-c", "256"],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let log = "";
    server.stderr.on("data", (d: Buffer) => (log += d.toString()));
    try {
      let body: { content?: string } | undefined;
      for (let i = 0; i < 120 && !body; i++) {
        await new Promise((r) => setTimeout(r, 500));
        const res = await fetch(`http://127.0.0.1:${port}/completion`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            prompt: "The capital of France is",
            n_predict: 3,
            temperature: 0,
          }),
        }).catch(() => undefined);
        if (res?.ok) body = (await res.json()) as { content?: string };
      }
      assert.ok(body, `llama-server did not answer: ${log.slice(-2000)}`);
      assert.match(body.content ?? "", /Paris/);
    } finally {
      server.kill("SIGKILL");
    }
  },
);
