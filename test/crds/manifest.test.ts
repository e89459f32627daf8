// TrainingJob manifests through the zod schema: defaults filled, bad input named by field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseManifest } from "../../crds/manifest.ts";
import { trainingJob } from "../../crds/trainingjob.ts";
import { ffnHidden } from "../../crds/presets.ts";

const minimal = `
apiVersion: herd.dev/v1alpha1
kind: TrainingJob
metadata: { name: tiny }
spec:
  model: { preset: llama-tiny }
  tokenizer: { type: bytes }
  data: { sources: [{ name: shakespeare, uri: data.txt, format: text }], seqLen: 64 }
  training: { steps: 10, globalBatchTokens: 1024 }
  checkpoint: { uri: ./ckpt }
`;

test("a minimal TrainingJob gets the paper's optimizer defaults", () => {
  const job = parseManifest(trainingJob, minimal, "tiny.yaml");
  const opt = job.spec.training.optimizer;
  assert.deepEqual(
    [opt.beta1, opt.beta2, opt.weightDecay, opt.gradClip, opt.minLrRatio, opt.warmupSteps],
    [0.9, 0.95, 0.1, 1.0, 0.1, 2000],
  );
  assert.equal(job.spec.parallelism.workers, 1);
  assert.equal(job.spec.retry.failureLimit, 3);
  assert.equal(job.spec.data.sources[0]!.weight, 1);
});

test("invalid fields are named in the error", () => {
  const cases: [string, RegExp][] = [
    [minimal.replace("steps: 10", "steps: -1"), /spec\.training\.steps/],
    [minimal.replace("llama-tiny", "llama-3t"), /spec\.model\.preset/],
    [minimal.replace("type: bytes", "type: sentencepiece"), /spec\.tokenizer\.uri.*required/],
    [minimal.replace("steps: 10, ", ""), /give training\.steps or training\.tokens/],
    [minimal.replace("uri: ./ckpt", "uri: http://x"), /spec\.checkpoint\.uri/],
    [minimal + "\n---\nkind: x\n", /expected one YAML document/],
    ["a: [", /invalid YAML/],
  ];
  for (const [text, pattern] of cases)
    assert.throws(() => parseManifest(trainingJob, text, "bad.yaml"), pattern, text);
});

test("SwiGLU hidden size follows the paper: 2/3·4d rounded up", () => {
  assert.equal(ffnHidden(4096, 256), 11008); // LLaMA-7B
  assert.equal(ffnHidden(5120, 256), 13824); // LLaMA-13B
  assert.equal(ffnHidden(8192, 256), 22016); // LLaMA-65B
});
