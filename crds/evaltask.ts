// One evaluation task of an EvalJob (and of an EvalSweep's template), and the task definition
// that herd's registry (data/eval/tasks.yaml) is written in. A definition says how one row of a
// JSONL file becomes a scored question: templates for the context and the choices, where the
// label is, which few-shot examples to prepend, and which metrics to report. The same schema
// checks the registry, an inline `definition` and a `definitionUri` file.
import { z } from "zod";
import { storageUri } from "./common.ts";
import { validated } from "./rules.ts";

/** `{{path|filter}}` text; a template that is one `{{…}}` alone yields the value itself. */
const template = z.string().max(4096);

export const choiceMetric = z.enum([
  "acc",
  "acc_norm",
  "acc_per_token",
  "acc_uncond",
  "mc2",
  "pct_stereotype",
  "likelihood_diff",
]);

export const generationMetric = z.enum([
  "exact_match",
  "f1",
  "maj1_at_k",
  "pass_at_1",
  "pass_at_k",
]);

export const taskMetric = z.enum([...choiceMetric.options, ...generationMetric.options]);

export const metricName = z.enum([
  ...taskMetric.options,
  "perplexity",
  "byte_perplexity",
  "bits_per_byte",
  "nll_per_token",
]);

export type ChoiceMetric = z.infer<typeof choiceMetric>;
export type GenerationMetric = z.infer<typeof generationMetric>;
export type MetricName = z.infer<typeof metricName>;

export const taskDefinition = z
  .object({
    description: z.string().max(1024).optional().describe("What the task measures, for people."),
    data: z
      .string()
      .max(2048)
      .optional()
      .describe("The rows: a file under herd's data/eval/, or a path or s3:// URI."),
    explode: z
      .array(z.string().max(128))
      .max(8)
      .optional()
      .describe(
        "Fields holding parallel lists (RACE's questions, options, answers): each row becomes one document per position, the fields then holding that position's value.",
      ),
    prepare: z
      .enum(["winogender"])
      .optional()
      .describe("A named step in code for data that templates cannot join (WinoGender)."),
    scoring: z
      .enum(["choices", "partial", "generate"])
      .default("choices")
      .describe(
        "choices: score each choice as a continuation of the context; partial: each choice fills the blank of the context and the rest of the sentence is scored (WinoGrande's partial scoring); generate: the model writes an answer, compared with the gold answers.",
      ),
    preamble: template
      .optional()
      .describe("Text before the few-shot examples, e.g. MMLU's subject line."),
    context: template.describe("The question, e.g. 'Question: {{question}}\\nAnswer:'."),
    choices: z
      .array(template)
      .min(1)
      .max(64)
      .optional()
      .describe("One template per choice, or one template that yields the list of choices."),
    label: template
      .optional()
      .describe("The gold answer: an index, or a value mapped by labelMap/labelIn."),
    labelMap: z
      .record(z.string(), z.int().min(0))
      .optional()
      .describe("Label value → choice index, e.g. {'1': 0, '2': 1}."),
    labelIn: z
      .array(template)
      .min(1)
      .max(64)
      .optional()
      .describe(
        "The label is this list's element at the gold choice, e.g. ['A','B','C','D'], or one template yielding the list.",
      ),
    correct: template
      .optional()
      .describe("Per choice, 1 when it is true (TruthfulQA MC2 scores every true choice)."),
    group: template
      .optional()
      .describe("Per-group metrics and their macro average, e.g. '{{subject}}' for MMLU."),
    average: z
      .enum(["groups", "items"])
      .default("groups")
      .describe(
        "With group: the task's metrics are the macro average over groups (MMLU), or over all items (CrowS-Pairs).",
      ),
    blank: z.string().min(1).max(8).default("_").describe("The blank of partial scoring."),
    targetDelimiter: z.string().max(8).default(" ").describe("Between context and choice."),
    fewShotDelimiter: z.string().max(8).default("\n\n").describe("Between examples."),
    fewShot: z
      .object({
        data: z.string().max(2048).optional().describe("Examples from this file; default: data."),
        sampler: z
          .enum(["random", "first"])
          .default("random")
          .describe("random: k other rows by seed; first: the first k rows (MMLU's dev)."),
        sameGroup: z.boolean().default(false).describe("Only examples of the item's group."),
      })
      .optional()
      .describe("Where few-shot examples come from."),
    numFewShot: z.int().min(0).max(64).default(0).describe("The task's usual number of shots."),
    unconditionalContext: z
      .string()
      .max(64)
      .optional()
      .describe(
        "The LLaMA paper's normalisation: acc_uncond ranks choices by log P(choice|context) − log P(choice|this), e.g. 'Answer:'.",
      ),
    answers: template
      .optional()
      .describe("generate: the gold answers, a list or one text (any of them counts)."),
    target: template
      .optional()
      .describe("generate: a solved few-shot example's answer (GSM8k's worked solution)."),
    until: z
      .array(z.string().min(1).max(32))
      .max(8)
      .default(["\n\n"])
      .describe("generate: the answer ends before the first of these strings."),
    maxNewTokens: z.int().min(1).max(4096).default(256).describe("generate: the longest answer."),
    extract: z
      .string()
      .max(256)
      .optional()
      .describe(
        "generate: a regular expression whose first group is the answer, applied to the output and to the gold answers alike (GSM8k: '#### (-?[0-9.,]+)'); without a match, the last number when normalize is number, else the whole text.",
      ),
    normalize: z
      .enum(["squad", "number", "math"])
      .default("squad")
      .describe(
        "generate: squad lowercases and drops punctuation, articles and extra spaces (NQ, TriviaQA); number drops commas, $ and trailing zeros (GSM8k); math takes the last \\boxed{} and normalises LaTeX as Hendrycks et al. (MATH).",
      ),
    program: template
      .optional()
      .describe(
        "generate, code tasks: the program that tests an answer, {{output}} being the answer (HumanEval: prompt + output + its tests); it runs in a sandbox, and passes when it exits 0.",
      ),
    samples: z
      .int()
      .min(1)
      .max(128)
      .default(1)
      .describe("generate: answers drawn per question; maj1_at_k votes among them."),
    temperature: z
      .number()
      .min(0)
      .max(4)
      .default(0)
      .describe("generate: 0 is greedy; samples > 1 needs a temperature above 0."),
    metrics: z
      .array(taskMetric)
      .min(1)
      .max(8)
      .default(["acc", "acc_norm"])
      .describe("The metrics reported (see choiceMetric in docs/api.md)."),
  })
  .describe("How a file's rows become scored questions (the schema of data/eval/tasks.yaml).");

const generating: string[] = generationMetric.options;

export const taskDefinitionChecked = validated(taskDefinition, [
  {
    rule: "self.scoring == 'generate' ? has(self.answers) : (has(self.choices) && has(self.label))",
    message: "a generate task needs answers; a choice task needs choices and label",
    check: (d) =>
      d.scoring === "generate"
        ? d.answers !== undefined
        : d.choices !== undefined && d.label !== undefined,
  },
  {
    rule: "self.metrics.all(m, (m in ['exact_match', 'f1', 'maj1_at_k', 'pass_at_1', 'pass_at_k']) == (self.scoring == 'generate'))",
    message:
      "exact_match, f1, maj1_at_k, pass_at_1 and pass_at_k are the metrics of generate tasks, and only they",
    fieldPath: ".metrics",
    check: (d) => d.metrics.every((m) => generating.includes(m) === (d.scoring === "generate")),
  },
  {
    rule: "has(self.program) == self.metrics.exists(m, m in ['pass_at_1', 'pass_at_k'])",
    message: "pass_at_1 and pass_at_k need program, and program needs one of them",
    fieldPath: ".program",
    check: (d) =>
      (d.program !== undefined) === d.metrics.some((m) => m === "pass_at_1" || m === "pass_at_k"),
  },
  {
    rule: "self.samples == 1 || self.temperature > 0.0",
    message: "samples above 1 need a temperature above 0 (greedy answers are all the same)",
    fieldPath: ".temperature",
    check: (d) => d.samples === 1 || d.temperature > 0,
  },
]);

export type TaskDefinition = z.infer<typeof taskDefinition>;

export const evalTask = z
  .object({
    name: z
      .string()
      .min(1)
      .max(63)
      .regex(/^[a-z0-9]([-_a-z0-9]*[a-z0-9])?$/, "must be lower case letters, digits, - and _")
      .describe(
        "Task name, unique in the job. Without uri, definition or definitionUri, a task (arc_easy, mmlu, …) or group (llama-paper) of herd's registry, data/eval/tasks.yaml.",
      ),
    type: z
      .enum(["multipleChoice", "perplexity", "chat"])
      .optional()
      .describe(
        "multipleChoice: pick the choice with the highest log-likelihood (acc, and acc_norm normalised by the choice's length in characters); perplexity: token-level perplexity of held-out text; chat: perplexity of the assistant's replies in conversations rendered with the model's chat template (a fine-tuning run's held-out loss). Default: multipleChoice.",
      ),
    uri: storageUri
      .optional()
      .describe(
        "Task data: JSONL (rows of {context, choices, label} unless a definition says otherwise) for multipleChoice; a text file for perplexity; JSONL conversations for chat (as `herd data prepare --instruct` reads; its heldout.jsonl). A registry task's own data when omitted.",
      ),
    definition: taskDefinitionChecked
      .optional()
      .describe("A custom multiple-choice task, declared inline."),
    definitionUri: storageUri
      .optional()
      .describe("A custom multiple-choice task, declared in a YAML file (one definition)."),
    numFewShot: z
      .int()
      .min(0)
      .max(64)
      .optional()
      .describe(
        "Solved examples prepended to each question; 0 is zero-shot. Default: the task's own (MMLU 5), else 0.",
      ),
    limit: z
      .int()
      .positive()
      .optional()
      .describe("Evaluate only the first this many examples (all when omitted)."),
    seed: z.int().min(0).default(1234).describe("Seed for choosing the few-shot examples."),
  })
  .describe("One evaluation task.");

export const evalTaskChecked = validated(evalTask, [
  {
    rule: "!has(self.type) || self.type == 'multipleChoice' || !has(self.numFewShot) || self.numFewShot == 0",
    message: "numFewShot applies to multipleChoice tasks only",
    fieldPath: ".numFewShot",
    check: (t) => t.type === undefined || t.type === "multipleChoice" || !t.numFewShot,
  },
  {
    rule: "!has(self.type) || self.type == 'multipleChoice' || has(self.uri)",
    message: "a perplexity or chat task needs uri",
    fieldPath: ".uri",
    reason: "FieldValueRequired",
    check: (t) => t.type === undefined || t.type === "multipleChoice" || t.uri !== undefined,
  },
  {
    rule: "!(has(self.definition) && has(self.definitionUri))",
    message: "give at most one of definition and definitionUri",
    fieldPath: ".definitionUri",
    check: (t) => !(t.definition && t.definitionUri),
  },
]);

export type EvalTask = z.infer<typeof evalTask>;

export const evalTasks = validated(
  z
    .array(evalTaskChecked)
    .min(1)
    .max(32)
    .describe("Tasks to evaluate, each scored separately; a registry group counts as one here."),
  [
    {
      rule: "self.all(t, self.exists_one(u, u.name == t.name))",
      message: "task names must be unique",
      check: (ts) => new Set(ts.map((t) => t.name)).size === ts.length,
    },
  ],
);
