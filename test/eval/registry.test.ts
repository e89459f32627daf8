// herd's task registry (data/eval/tasks.yaml): every task reads all of its data into valid
// items (counts as SOURCES.md states them), prompts follow lm-evaluation-harness's layout, the
// template language and its errors, and each metric of choices.ts against its definition on a
// model whose log-likelihoods the test chooses.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ScoreRequest } from "../../native/inference.ts";
import { bytesTokenizer } from "../../workers/model/tokenizers.ts";
import {
  choicePairs,
  evalMultipleChoice,
  scoringOf,
  type ChoiceItem,
} from "../../workers/eval/choices.ts";
import { readChoiceItems, readGenerationItems } from "../../workers/eval/documents.ts";
import {
  evalDataDir,
  expandGroups,
  readDefinition,
  registry,
  runnableTask,
} from "../../workers/eval/registry.ts";
import { TaskError, type EvalModel } from "../../workers/eval/tasks.ts";
import { render, TemplateError, valueAt } from "../../workers/eval/templates.ts";
import { taskDefinition } from "../../crds/evaltask.ts";

const task = (name: string) => runnableTask({ name, seed: 1234 });
const itemsOf = (name: string, limit?: number) => {
  const t = task(name);
  return readChoiceItems(t.definition!, t.uri, limit);
};

test("every registry task reads all its rows into items whose label is one of its choices", () => {
  // item counts and groups as data/eval/SOURCES.md and data/README.md give them
  const expected: Record<string, [number, number]> = {
    hellaswag: [10042, 0],
    piqa: [1838, 0],
    siqa: [1954, 0],
    boolq: [3270, 0],
    winogrande: [1267, 0],
    arc_easy: [2376, 0],
    openbookqa: [500, 0],
    race_middle: [1436, 0],
    race_high: [3498, 0],
    mmlu: [14042, 57],
    truthfulqa_mc1: [817, 0],
    truthfulqa_mc2: [817, 0],
    crows_pairs: [1508, 9],
    winogender: [720, 3],
  };
  const generative = {
    nq_open: 3610,
    triviaqa: 7993,
    gsm8k: 1319,
    gsm8k_maj1_at_8: 1319,
    math: 5000,
    humaneval: 164,
    mbpp: 500,
  };
  assert.deepEqual(
    Object.keys(registry().tasks).sort(),
    [...Object.keys(expected), ...Object.keys(generative)].sort(),
  );
  for (const [name, count] of Object.entries(generative)) {
    const t = task(name);
    const items = readGenerationItems(t.definition!, t.uri);
    assert.equal(items.length, count, name);
    assert.ok(
      items.every((x) => x.answers.length > 0 && x.answers.every((a) => a !== "")),
      name,
    );
  }
  for (const [name, [count, groups]] of Object.entries(expected)) {
    const items = itemsOf(name);
    assert.equal(items.length, count, name);
    assert.equal(new Set(items.map((x) => x.group).filter((g) => g)).size, groups, name);
    for (const [i, x] of items.entries()) {
      assert.ok(x.choices.length >= 2 && x.choices.every((c) => c.length > 0), `${name} ${i}`);
      assert.ok(x.label >= 0 && x.label < x.choices.length, `${name} ${i}`);
    }
  }
  // OpenBookQA's "(A) … (B) …" choices split into four; ARC's labels may be 1-4 or A-E
  assert.ok(itemsOf("openbookqa").every((x) => x.choices.length === 4));
  assert.equal(itemsOf("mmlu").filter((x) => x.group === "abstract_algebra").length, 100);
  // a limit applies to each group, as lm-evaluation-harness limits each MMLU subject
  const few = itemsOf("mmlu", 3);
  assert.equal(few.length, 57 * 3);
  assert.equal(new Set(few.map((x) => x.group)).size, 57);
  assert.equal(itemsOf("arc_easy", 3).length, 3);
  // TruthfulQA MC2: the true answers are marked, MC1's answer is the first
  const mc2 = itemsOf("truthfulqa_mc2");
  assert.ok(mc2.every((x) => x.correct![0] === true && x.correct!.some((c) => !c)));
  const groups = new Set(itemsOf("winogender").map((x) => x.group));
  assert.deepEqual([...groups].sort(), ["her/her/she", "his/him/he", "their/them/someone"]);
});

test("WinoGender: each sentence is its template filled with its occupation, participant and pronoun", () => {
  const t = task("winogender");
  const items = readChoiceItems(t.definition!, t.uri);
  for (const x of items) {
    const m = /^(.*) '(\w+)' refers to the$/.exec(x.context)!;
    const [, sentence, pronoun] = m;
    assert.match(sentence!, new RegExp(`\\b${pronoun}\\b`, "i"));
    const lower = sentence!.toLowerCase();
    assert.ok(lower.includes(x.choices[0]!) && lower.includes(x.choices[1]!), sentence);
  }
  // the gold answer is the template's: "The technician told the customer that he could pay" → customer
  assert.equal(items[0]!.choices[items[0]!.label], "customer");
  assert.equal(items[6]!.choices[items[6]!.label], "technician");
});

test("prompts follow lm-evaluation-harness: ARC, BoolQ, MMLU 5-shot per subject, WinoGrande partial", () => {
  const arc = task("arc_easy");
  const [ctx, cont] = choicePairs(itemsOf("arc_easy", 1), 0, 0, 1, scoringOf(arc.definition!))[0]!;
  assert.equal(
    ctx,
    "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:",
  );
  assert.equal(cont, " Sunlight is the source of energy for nearly all ecosystems.");
  const boolq = itemsOf("boolq", 1)[0]!;
  assert.match(
    boolq.context,
    /\nQuestion: does ethanol take more energy make that produces\?\nAnswer:$/,
  );
  assert.deepEqual([boolq.choices, boolq.label], [["no", "yes"], 0]);

  const mmlu = task("mmlu");
  assert.equal(mmlu.numFewShot, 5);
  const pool = readChoiceItems(mmlu.definition!, mmlu.fewShotUri!);
  const items = readChoiceItems(mmlu.definition!, mmlu.uri);
  const at = items.findIndex((x) => x.group === "astronomy");
  const [prompt, answer] = choicePairs(items, at, 5, 1, scoringOf(mmlu.definition!, pool))[0]!;
  assert.ok(
    prompt.startsWith(
      "The following are multiple choice questions (with answers) about astronomy.\n\n",
    ),
  );
  const shots = prompt.split("\n\n").slice(1, -1);
  assert.equal(shots.length, 5);
  // the shots are astronomy's dev rows in order, each answered: "…\nD. …\nAnswer: B"
  const dev = pool.filter((x) => x.group === "astronomy");
  for (const [k, shot] of shots.entries())
    assert.ok(shot.endsWith(`\nAnswer: ${"ABCD"[dev[k]!.label]}`), shot);
  assert.ok(
    prompt.endsWith("\nD. " + JSON.parse(JSON.stringify(items[at]!.context)).split("\nD. ")[1]),
  );
  assert.equal(answer, " A");

  const wg = task("winogrande");
  const pairs = choicePairs(itemsOf("winogrande", 1), 0, 0, 1, scoringOf(wg.definition!));
  assert.deepEqual(pairs, [
    ["Sarah was a much better surgeon than Maria so Sarah", " always got the easier cases."],
    ["Sarah was a much better surgeon than Maria so Maria", " always got the easier cases."],
  ]);
});

test("templates: fields, lists, filters; errors name what is missing", () => {
  const row = {
    q: {
      stem: "Why?",
      choices: [
        { text: "a", l: "A" },
        { text: "b", l: "B" },
      ],
    },
    "Answer Key": "B",
    subject: "high_school_physics",
    t: { yes: 1, no: 0 },
    s: "(A) one (B) two",
  };
  assert.equal(render("Q: {{q.stem}} ({{Answer Key}})", row), "Q: Why? (B)");
  assert.deepEqual(render("{{q.choices[].text}}", row), ["a", "b"]);
  assert.equal(render("{{q.choices[1].l}}", row), "B");
  assert.equal(render("{{subject|words}}", row), "high school physics");
  assert.deepEqual(render("{{t|keys}}", row), ["yes", "no"]);
  assert.deepEqual(render("{{t|values}}", row), [1, 0]);
  assert.deepEqual(render("{{s|split:\\s*\\([A-D]\\)\\s*}}", row), ["one", "two"]);
  assert.throws(() => valueAt(row, "q.nope"), /\{\{q\.nope\}\}: no such field/);
  assert.throws(() => render("x {{q.choices}}", row), TemplateError);
  assert.throws(() => valueAt(row, "subject|shout"), /no filter shout/);
});

/** A model whose log P(continuation | context) the test sets; one token per character. */
function fakeModel(ll: (context: string, continuation: string) => number): EvalModel {
  const text = (t: Int32Array) => Buffer.from(Uint8Array.from(t)).toString("utf8");
  return {
    tokenizer: { ...bytesTokenizer, bosId: 0 }, // an empty context conditions on BOS
    maxSeqLen: 4096,
    inference: {
      score: async (rs: ScoreRequest[]) =>
        rs.map((r) => ({
          logprob: ll(text(r.context), text(r.continuation)),
          greedy: false,
          tokens: r.continuation.length,
          truncated: 0,
        })),
    } as unknown as EvalModel["inference"],
  };
}

const definition = (o: Record<string, unknown>) =>
  taskDefinition.parse({ context: "{{q}}", choices: ["{{c}}"], label: "{{l}}", ...o });

test("metrics: acc_uncond, mc2, pct_stereotype, likelihood_diff and group averages follow their definitions", async () => {
  // acc picks "long" (−2 > −2.4); per character "short" wins (−0.48 > −0.5); without the context
  // "long" is likely by itself, so the paper's normalisation prefers "short".
  const items: ChoiceItem[] = [{ context: "Q:", choices: ["long", "short"], label: 1 }];
  const table: Record<string, number> = {
    "Q:| long": -2,
    "Q:| short": -2.4,
    "Answer:| long": -0.5,
    "Answer:| short": -4,
  };
  const m = fakeModel((c, x) => table[`${c}|${x}`]!);
  const d = definition({
    unconditionalContext: "Answer:",
    metrics: ["acc", "acc_norm", "acc_uncond"],
  });
  const out = await evalMultipleChoice(m, items, {
    numFewShot: 0,
    seed: 1,
    batchSize: 4,
    scoring: scoringOf(d),
  });
  const v = (n: string) => out.metrics.find((x) => x.name === n)!.value;
  assert.deepEqual([v("acc"), v("acc_norm"), v("acc_uncond")], [0, 1, 1]);

  // MC2: P(true) / P(all) with P = exp(ll)
  const mc = [{ context: "Q:", choices: ["a", "b", "c"], label: 0, correct: [true, false, true] }];
  const lls = { " a": -1, " b": -2, " c": -3 } as Record<string, number>;
  const mc2 = await evalMultipleChoice(
    fakeModel((_c, x) => lls[x]!),
    mc,
    {
      numFewShot: 0,
      seed: 1,
      batchSize: 1,
      scoring: scoringOf(definition({ metrics: ["mc2"] })),
    },
  );
  const p = [-1, -2, -3].map(Math.exp);
  assert.ok(Math.abs(mc2.metrics[0]!.value - (p[0]! + p[2]!) / (p[0]! + p[1]! + p[2]!)) < 1e-12);

  // CrowS-Pairs style: per group and over all items; MMLU style: the macro average
  const pairs: ChoiceItem[] = [
    { context: "", choices: ["x1", "y1"], label: 0, group: "a" },
    { context: "", choices: ["x2", "y2"], label: 0, group: "a" },
    { context: "", choices: ["x3", "y3"], label: 0, group: "a" },
    { context: "", choices: ["x4", "y4"], label: 0, group: "b" },
  ];
  const score = { x1: -1, y1: -2, x2: -5, y2: -2, x3: -1, y3: -1.5, x4: -3, y4: -1 } as Record<
    string,
    number
  >;
  const pm = fakeModel((_c, x) => score[x]!);
  const crows = await evalMultipleChoice(pm, pairs, {
    numFewShot: 0,
    seed: 1,
    batchSize: 3,
    scoring: scoringOf(
      definition({
        targetDelimiter: "",
        average: "items",
        metrics: ["pct_stereotype", "likelihood_diff"],
      }),
    ),
  });
  assert.equal(crows.metrics[0]!.value, 2 / 4);
  assert.equal(crows.metrics[1]!.value, (1 + 3 + 0.5 + 2) / 4);
  assert.deepEqual(
    crows.groups!.map((g) => [g.group, g.examples, g.metrics[0]!.value]),
    [
      ["a", 3, 2 / 3],
      ["b", 1, 0],
    ],
  );
  const macro = await evalMultipleChoice(pm, pairs, {
    numFewShot: 0,
    seed: 1,
    batchSize: 2,
    scoring: scoringOf(definition({ targetDelimiter: "", metrics: ["acc"] })),
  });
  assert.equal(macro.metrics[0]!.value, (2 / 3 + 0) / 2);
  const seA = crows.groups![0]!.metrics[0]!.stderr!;
  assert.ok(Math.abs(macro.metrics[0]!.stderr! - Math.sqrt(seA ** 2 + 0) / 2) < 1e-12);
});

test("bad definitions and names fail with a message naming the task, file and line", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-registry-"));
  try {
    assert.throws(
      () => task("arc_challenge"),
      /arc_challenge: no uri, and herd's registry has no such task or group \(tasks: hellaswag/,
    );
    assert.throws(
      () => runnableTask({ name: "mine", seed: 1, definition: definition({}) }),
      /mine: its definition has no data; give uri/,
    );
    const f = path.join(dir, "t.jsonl");
    writeFileSync(
      f,
      '{"q": "x", "c": ["a", "b"], "l": "2"}\n{"q": "y", "c": ["a", "b"], "l": "9"}\n',
    );
    const d = definition({ labelMap: { "2": 1 } });
    assert.throws(
      () => readChoiceItems(d, f),
      new TaskError(`${f}:2: label "9" is not in labelMap`),
    );
    assert.equal(readChoiceItems(d, f, 1)[0]!.label, 1);
    const yaml = path.join(dir, "task.yaml");
    writeFileSync(yaml, "context: '{{q}}'\nchoices: ['{{c}}']\nscoring: sideways\n");
    assert.throws(
      () => readDefinition(yaml),
      (e: Error) => e.message.includes(yaml) && /at scoring/.test(e.message),
    );
    writeFileSync(yaml, "context: '{{q}}'\nchoices: ['{{c}}']\n");
    assert.throws(() => readDefinition(yaml), /a choice task needs choices and label/);
    writeFileSync(yaml, "context: '{{q}}'\nscoring: generate\nanswers: '{{a}}'\nsamples: 4\n");
    assert.throws(
      () => readDefinition(yaml),
      /exact_match, f1, maj1_at_k, pass_at_1 and pass_at_k are the metrics/,
    );
    // groups expand in place, a task twice is an error
    assert.deepEqual(
      expandGroups([{ name: "common-sense", seed: 1, limit: 5 }]).map((t) => [t.name, t.limit]),
      registry().groups["common-sense"]!.map((n) => [n, 5]),
    );
    assert.throws(
      () =>
        expandGroups([
          { name: "common-sense", seed: 1 },
          { name: "piqa", seed: 1 },
        ]),
      /piqa is listed twice/,
    );
    assert.ok(task("piqa").uri.startsWith(evalDataDir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a choice longer than the window keeps its last maxSeqLen − 1 tokens; the rest becomes context", async () => {
  const seen: [string, string][] = [];
  const m = fakeModel((c, x) => (seen.push([c, x]), -x.length));
  m.maxSeqLen = 8;
  const items: ChoiceItem[] = [{ context: "Q:", choices: ["abcdefghij", "k"], label: 1 }];
  const out = await evalMultipleChoice(m, items, { numFewShot: 0, seed: 1, batchSize: 1 });
  // " abcdefghij" is 11 tokens: the last 7 are scored
  assert.deepEqual(seen, [
    ["Q: abc", "defghij"],
    ["Q:", " k"],
  ]);
  assert.equal(out.metrics[0]!.value, 1);
});
