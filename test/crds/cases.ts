// Valid herd objects and a list of invalid ones, shared by the schema unit tests (zod) and the
// API-server tests (CEL + OpenAPI): the same manifest must be rejected by both, naming the
// same field. Transition cases (immutable fields) only the API server can judge.

export type Obj = Record<string, unknown> & {
  metadata: { name: string; namespace?: string };
  spec: Record<string, unknown>;
};

export function trainingJobObject(name = "tiny"): Obj {
  return {
    apiVersion: "herd.dev/v1alpha1",
    kind: "TrainingJob",
    metadata: { name },
    spec: {
      model: { preset: "llama-tiny" },
      tokenizer: { type: "bytes" },
      data: { sources: [{ name: "shakespeare", uri: "data.txt", format: "text" }], seqLen: 64 },
      training: { steps: 10, globalBatchTokens: 1024 },
      checkpoint: { uri: "./ckpt" },
    },
  };
}

export function evalJobObject(name = "eval-tiny"): Obj {
  return {
    apiVersion: "herd.dev/v1alpha1",
    kind: "EvalJob",
    metadata: { name },
    spec: {
      checkpoint: { trainingJob: { name: "tiny" } },
      tasks: [
        { name: "hellaswag", type: "multipleChoice", uri: "tasks/hellaswag.jsonl" },
        { name: "wikitext", type: "perplexity", uri: "tasks/wikitext.txt" },
      ],
    },
  };
}

export function evalSweepObject(name = "sweep-tiny"): Obj {
  return {
    apiVersion: "herd.dev/v1alpha1",
    kind: "EvalSweep",
    metadata: { name },
    spec: {
      trainingJob: { name: "tiny" },
      schedule: { cron: "*/30 * * * *" },
      template: {
        spec: { tasks: [{ name: "piqa", type: "multipleChoice", uri: "tasks/piqa.jsonl" }] },
      },
    },
  };
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface InvalidCase {
  name: string;
  make: () => Obj;
  /** The error must name this field (zod path "a.b.0.c" or API server path "a.b[0].c"). */
  field: RegExp;
  /** For immutable fields: applied to the stored object as an update. */
  update?: (o: Json) => void;
}

function tj(edit: (s: Json) => void): () => Obj {
  return () => {
    const o = trainingJobObject();
    edit(o.spec as Json);
    return o;
  };
}
function ej(edit: (s: Json) => void): () => Obj {
  return () => {
    const o = evalJobObject();
    edit(o.spec as Json);
    return o;
  };
}
function es(edit: (s: Json) => void): () => Obj {
  return () => {
    const o = evalSweepObject();
    edit(o.spec as Json);
    return o;
  };
}

export const invalidCases: InvalidCase[] = [
  {
    name: "negative steps",
    make: tj((s) => (s.training.steps = -1)),
    field: /spec\.training\.steps/,
  },
  { name: "zero steps", make: tj((s) => (s.training.steps = 0)), field: /spec\.training\.steps/ },
  {
    name: "steps as a string",
    make: tj((s) => (s.training.steps = "ten")),
    field: /spec\.training\.steps/,
  },
  {
    name: "fractional steps",
    make: tj((s) => (s.training.steps = 2.5)),
    field: /spec\.training\.steps/,
  },
  {
    name: "zero global batch",
    make: tj((s) => (s.training.globalBatchTokens = 0)),
    field: /spec\.training\.globalBatchTokens/,
  },
  {
    name: "unknown preset",
    make: tj((s) => (s.model.preset = "llama-3t")),
    field: /spec\.model\.preset/,
  },
  { name: "zero seqLen", make: tj((s) => (s.data.seqLen = 0)), field: /spec\.data\.seqLen/ },
  { name: "no data sources", make: tj((s) => (s.data.sources = [])), field: /spec\.data\.sources/ },
  {
    name: "negative source weight",
    make: tj((s) => (s.data.sources[0].weight = -1)),
    field: /spec\.data\.sources(\[0\]|\.0)\.weight/,
  },
  {
    name: "zero workers",
    make: tj((s) => (s.parallelism = { workers: 0 })),
    field: /spec\.parallelism\.workers/,
  },
  {
    name: "negative GPUs",
    make: tj((s) => (s.parallelism = { gpusPerWorker: -1 })),
    field: /spec\.parallelism\.gpusPerWorker/,
  },
  {
    name: "unknown precision",
    make: tj((s) => (s.training.precision = "fp8")),
    field: /spec\.training\.precision/,
  },
  {
    name: "beta1 of 1",
    make: tj((s) => (s.training.optimizer = { beta1: 1 })),
    field: /spec\.training\.optimizer\.beta1/,
  },
  {
    name: "batch not divisible by the sequence length",
    make: tj((s) => (s.training.globalBatchTokens = 1000)),
    field: /spec\.training\.globalBatchTokens.*divisible/,
  },
  {
    name: "batch not divisible by the data-parallel width",
    make: tj((s) => (s.parallelism = { workers: 3 })),
    field: /spec\.training\.globalBatchTokens.*divisible/,
  },
  {
    name: "batch not divisible by GPUs × micro-batch",
    make: tj((s) => {
      s.parallelism = { workers: 2, gpusPerWorker: 3 };
      s.training.microBatch = 2;
    }),
    field: /spec\.training\.globalBatchTokens.*divisible/,
  },
  {
    name: "neither steps nor tokens",
    make: tj((s) => delete s.training.steps),
    field: /spec\.training\.steps.*give training\.steps or training\.tokens/,
  },
  {
    name: "sentencepiece without a model file",
    make: tj((s) => (s.tokenizer = { type: "sentencepiece" })),
    field: /spec\.tokenizer\.uri/,
  },
  {
    name: "gguf tokenizer without a file",
    make: tj((s) => (s.tokenizer = { type: "gguf" })),
    field: /spec\.tokenizer\.uri/,
  },
  {
    name: "no tokenizer and no pretrained model",
    make: tj((s) => delete s.tokenizer),
    field: /spec\.tokenizer.*only with model\.from/,
  },
  {
    name: "a preset beside a pretrained model",
    make: tj((s) => (s.model = { preset: "llama-tiny", from: { uri: "base.gguf" } })),
    field: /spec\.model\.preset.*brings its own architecture/,
  },
  {
    name: "LoRA without a pretrained model",
    make: tj((s) => (s.training.lora = { rank: 8 })),
    field: /spec\.training\.lora.*give model\.from/,
  },
  {
    name: "LoRA of an unknown matrix",
    make: tj((s) => {
      s.model = { from: { uri: "base.gguf" } };
      s.training.lora = { targets: ["wq", "lm_head"] };
    }),
    field: /spec\.training\.lora\.targets(\[1\]|\.1)/,
  },
  {
    name: "pretrained model of an unknown format",
    make: tj((s) => (s.model = { from: { uri: "base.gguf", format: "onnx" } })),
    field: /spec\.model\.from\.format/,
  },
  {
    name: "unknown data format",
    make: tj((s) => (s.data.sources[0].format = "parquet")),
    field: /spec\.data\.sources(\[0\]|\.0)\.format/,
  },
  {
    name: "http checkpoint URI",
    make: tj((s) => (s.checkpoint.uri = "http://x")),
    field: /spec\.checkpoint\.uri/,
  },
  {
    name: "no preset and no dimensions",
    make: tj((s) => (s.model = { normEps: 1e-5 })),
    field: /spec\.model\.preset/,
  },
  {
    name: "dim not divisible by heads",
    make: tj((s) => (s.model = { dim: 100, nLayers: 2, nHeads: 3 })),
    field: /spec\.model\.dim/,
  },
  {
    name: "bad CPU quantity",
    make: tj((s) => (s.resources = { cpu: "lots" })),
    field: /spec\.resources\.cpu/,
  },
  {
    name: "unknown toleration operator",
    make: tj((s) => (s.resources = { tolerations: [{ key: "gpu", operator: "Maybe" }] })),
    field: /spec\.resources\.tolerations(\[0\]|\.0)\.operator/,
  },
  { name: "suspend as a string", make: tj((s) => (s.suspend = "yes")), field: /spec\.suspend/ },
  {
    name: "keep zero checkpoints",
    make: tj((s) => (s.checkpoint.keep = 0)),
    field: /spec\.checkpoint\.keep/,
  },
  { name: "no checkpoint", make: tj((s) => delete s.checkpoint), field: /spec\.checkpoint/ },
  {
    name: "model changed after creation",
    make: tj(() => {}),
    update: (o) => (o.spec.model.preset = "llama-15m"),
    field: /spec\.model.*immutable/,
  },
  {
    name: "checkpoint URI changed after creation",
    make: tj(() => {}),
    update: (o) => (o.spec.checkpoint.uri = "./other"),
    field: /spec\.checkpoint\.uri.*immutable/,
  },
  {
    name: "workers changed after creation",
    make: tj(() => {}),
    update: (o) => (o.spec.parallelism.workers = 2),
    field: /spec\.parallelism.*immutable/,
  },
  {
    name: "sequence length changed after creation",
    make: tj(() => {}),
    update: (o) => (o.spec.data.seqLen = 128),
    field: /spec\.data.*immutable/,
  },
  {
    name: "tokenizer changed after creation",
    make: tj(() => {}),
    update: (o) => (o.spec.tokenizer = { type: "sentencepiece", uri: "tok.model" }),
    field: /spec\.tokenizer.*immutable/,
  },
  // EvalJob
  {
    name: "checkpoint from a job and a URI",
    make: ej((s) => (s.checkpoint.uri = "./ckpt")),
    field: /spec\.checkpoint\.uri.*exactly one/,
  },
  {
    name: "unknown task type",
    make: ej((s) => (s.tasks[0].type = "qa")),
    field: /spec\.tasks(\[0\]|\.0)\.type/,
  },
  {
    name: "duplicate task names",
    make: ej((s) => (s.tasks[1].name = s.tasks[0].name)),
    field: /spec\.tasks.*unique/,
  },
  {
    name: "negative few-shot",
    make: ej((s) => (s.tasks[0].numFewShot = -1)),
    field: /spec\.tasks(\[0\]|\.0)\.numFewShot/,
  },
  {
    name: "a perplexity task without data",
    make: ej((s) => delete s.tasks[1].uri),
    field: /spec\.tasks(\[1\]|\.1)\.uri.*perplexity or chat task needs uri/,
  },
  {
    name: "a chat task without conversations",
    make: ej((s) => (s.tasks[1] = { name: "heldout", type: "chat" })),
    field: /spec\.tasks(\[1\]|\.1)\.uri.*perplexity or chat task needs uri/,
  },
  {
    name: "few-shot for a perplexity task",
    make: ej((s) => (s.tasks[1].numFewShot = 2)),
    field: /spec\.tasks(\[1\]|\.1)\.numFewShot/,
  },
  {
    name: "a task defined inline and in a file",
    make: ej(
      (s) =>
        (s.tasks[0] = {
          name: "mine",
          uri: "rows.jsonl",
          definitionUri: "mine.yaml",
          definition: { context: "{{q}}", choices: ["{{c}}"], label: "{{l}}" },
        }),
    ),
    field: /spec\.tasks(\[0\]|\.0)\.definitionUri.*at most one/,
  },
  {
    name: "a task definition with an unknown scoring",
    make: ej(
      (s) =>
        (s.tasks[0] = {
          name: "mine",
          uri: "rows.jsonl",
          definition: { context: "x", choices: ["a", "b"], label: "0", scoring: "sideways" },
        }),
    ),
    field: /spec\.tasks(\[0\]|\.0)\.definition\.scoring/,
  },
  {
    name: "zero limit",
    make: ej((s) => (s.tasks[0].limit = 0)),
    field: /spec\.tasks(\[0\]|\.0)\.limit/,
  },
  {
    name: "GGUF format for a TrainingJob checkpoint",
    make: ej((s) => (s.checkpoint.format = "gguf")),
    field: /spec\.checkpoint\.format/,
  },
  {
    name: "a llama2.c file without a tokenizer",
    make: ej((s) => (s.checkpoint = { uri: "model.bin", format: "llama2c" })),
    field: /spec\.tokenizer/,
  },
  {
    name: "tasks changed after creation",
    make: ej(() => {}),
    update: (o) => (o.spec.tasks[0].numFewShot = 5),
    field: /spec\.tasks.*immutable/,
  },
  // EvalSweep
  {
    name: "cron minute out of range",
    make: es((s) => (s.schedule.cron = "61 * * * *")),
    field: /spec\.schedule\.cron/,
  },
  {
    name: "cron in words",
    make: es((s) => (s.schedule.cron = "every day")),
    field: /spec\.schedule\.cron/,
  },
  {
    name: "cron with four fields",
    make: es((s) => (s.schedule.cron = "0 * * *")),
    field: /spec\.schedule\.cron/,
  },
  {
    name: "cron hour 24",
    make: es((s) => (s.schedule.cron = "0 24 * * *")),
    field: /spec\.schedule\.cron/,
  },
  {
    name: "cron and interval together",
    make: es((s) => (s.schedule.interval = "1h")),
    field: /spec\.schedule\.cron.*exactly one/,
  },
  {
    name: "interval under five seconds",
    make: es((s) => (s.schedule = { interval: "4s" })),
    field: /spec\.schedule\.interval/,
  },
  {
    name: "interval in days",
    make: es((s) => (s.schedule = { interval: "1d" })),
    field: /spec\.schedule\.interval/,
  },
  { name: "zero history", make: es((s) => (s.historyLimit = 0)), field: /spec\.historyLimit/ },
  {
    name: "unknown overlap policy",
    make: es((s) => (s.overlapPolicy = "Sometimes")),
    field: /spec\.overlapPolicy/,
  },
  {
    name: "evaluated TrainingJob changed after creation",
    make: es(() => {}),
    update: (o) => (o.spec.trainingJob.name = "other"),
    field: /spec\.trainingJob.*immutable/,
  },
];
