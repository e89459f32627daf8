// A real training run for the report tests: llama-tiny trained with `herd train --local`
// (checkpoints every 4 steps) and evaluated by workers/eval/run.ts's code at two checkpoints.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { runEvalLocal, type ResultsFile } from "../../workers/eval/run.ts";
import { herdTrain, tinyJobManifest } from "../engine/fixtures.ts";
import { evalFile, tinyStories } from "../data/files.ts";
import { readTextDecompressed } from "../../workers/compressed.ts";

const root = path.resolve(import.meta.dirname, "../..");
export const herdBin = path.join(root, "bin/herd.mjs");

/** Tokens of one step of the fixture's job: 4 sequences of 64 bytes. */
export const tokensPerStep = 256;

/** Runs the herd command; returns its output and exit status. */
export const herd = (...args: string[]) =>
  spawnSync(process.execPath, [herdBin, ...args], { encoding: "utf8" });

/** Writes the fixture's TrainingJob into `dir` (checkpoints in `<dir>/run`); returns its path. */
export const trainingJob = (dir: string, name = "report-tiny"): string =>
  tinyJobManifest(dir, name, { checkpoint: { uri: "run", intervalSteps: 4 } });

/** `herd train --local` up to `steps`; returns the step events it logged. */
export function train(manifest: string, steps: number, out?: string): { loss: number }[] {
  const r = herdTrain(manifest, out, steps);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { event: string; loss: number })
    .filter((e) => e.event === "step");
}

// PIQA items short enough for llama-tiny's 128-byte context with the bytes tokenizer.
function shortPiqa(dir: string): string {
  const file = path.join(dir, "piqa-short.jsonl");
  const lines = readTextDecompressed(evalFile("piqa-val.jsonl.gz")).split("\n");
  const short = lines.filter((l) => {
    if (!l) return false;
    const item = JSON.parse(l) as { context: string; choices: string[] };
    return item.context.length + Math.max(...item.choices.map((c) => c.length)) < 100;
  });
  writeFileSync(file, short.slice(0, 8).join("\n") + "\n");
  return file;
}

/**
 * Evaluates checkpoint `step` of `runDir` as EvalJob `job` (8 short PIQA items, and
 * perplexity on 8 lines of TinyStories); the results land beside the checkpoint.
 */
export async function evaluate(runDir: string, step: number, job: string): Promise<ResultsFile> {
  const dir = path.dirname(runDir);
  const ckpt = path.join(runDir, `step-${String(step).padStart(9, "0")}`);
  const manifest = path.join(dir, `${job}.yaml`);
  writeFileSync(
    manifest,
    `apiVersion: herd.dev/v1alpha1
kind: EvalJob
metadata: { name: ${job} }
spec:
  checkpoint: { uri: ${ckpt}, format: herd }
  tokenizer: { type: bytes }
  tasks:
    - { name: piqa, type: multipleChoice, uri: ${shortPiqa(dir)} }
    - { name: tinystories, type: perplexity, uri: ${tinyStories}, limit: 8 }
`,
  );
  return runEvalLocal({ manifest, threads: 2 });
}
