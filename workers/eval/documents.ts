// A task definition applied to a JSONL file: rows → documents (exploded or joined where the
// definition says) → scored items. Every error names the file, the line and what is wrong.
import { readFileSync } from "node:fs";
import path from "node:path";
import type { TaskDefinition } from "../../crds/evaltask.ts";
import { readTextDecompressed } from "../compressed.ts";
import type { ChoiceItem } from "./choices.ts";
import { TaskError, type MultipleChoiceItem } from "./tasks.ts";
import { render, renderList, renderText, TemplateError } from "./templates.ts";

interface Document {
  row: Record<string, unknown>;
  where: string;
}

function readRows(file: string): Document[] {
  const docs: Document[] = [];
  for (const [i, line] of readTextDecompressed(file).split("\n").entries()) {
    if (line.trim() === "") continue;
    const where = `${file}:${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (err) {
      throw new TaskError(`${where}: not valid JSON (${(err as Error).message})`);
    }
    if (row === null || typeof row !== "object" || Array.isArray(row))
      throw new TaskError(`${where}: not a JSON object`);
    docs.push({ row: row as Record<string, unknown>, where });
  }
  return docs;
}

/** Reads the first `limit` items of herd's multiple-choice JSONL, checking every field. */
export function readMultipleChoice(file: string, limit?: number): MultipleChoiceItem[] {
  const items: MultipleChoiceItem[] = [];
  for (const { row: o, where } of readRows(file)) {
    if (limit !== undefined && items.length >= limit) break;
    if (typeof o.context !== "string") throw new TaskError(`${where}: context must be a string`);
    if (
      !Array.isArray(o.choices) ||
      o.choices.length < 2 ||
      !o.choices.every((c) => typeof c === "string")
    )
      throw new TaskError(`${where}: choices must be an array of at least two strings`);
    const label = o.label as number;
    if (!Number.isInteger(label) || label < 0 || label >= o.choices.length)
      throw new TaskError(`${where}: label must be an index into choices`);
    items.push({ context: o.context, choices: o.choices as string[], label });
  }
  if (items.length === 0) throw new TaskError(`${file}: no items`);
  return items;
}

/** One document per position of the parallel lists in `fields` (RACE: one per question). */
function explode(docs: Document[], fields: string[]): Document[] {
  return docs.flatMap(({ row, where }) => {
    const lists = fields.map((f) => row[f]);
    if (!lists.every(Array.isArray))
      throw new TaskError(`${where}: explode needs ${fields.join(", ")} to be lists`);
    const n = (lists[0] as unknown[]).length;
    if (lists.some((l) => (l as unknown[]).length !== n))
      throw new TaskError(`${where}: ${fields.join(", ")} differ in length`);
    return Array.from({ length: n }, (_, k) => ({
      row: { ...row, ...Object.fromEntries(fields.map((f, j) => [f, (lists[j] as unknown[])[k]])) },
      where: `${where}[${k}]`,
    }));
  });
}

const pronouns = {
  male: { NOM: "he", POSS: "his", ACC: "him", group: "his/him/he" },
  female: { NOM: "she", POSS: "her", ACC: "her", group: "her/her/she" },
  neutral: { NOM: "they", POSS: "their", ACC: "them", group: "their/them/someone" },
} as const;

/**
 * WinoGender: each sentence (sentid occupation.participant.answer.gender.txt) joined with its
 * template (winogender-templates.jsonl beside it; the answer says whom the pronoun means:
 * 0 the occupation, 1 the participant), giving the pronoun and the gold choice.
 */
function winogender(docs: Document[], file: string): Document[] {
  const templatesFile = path.join(path.dirname(file), "winogender-templates.jsonl");
  const templates = readFileSync(templatesFile, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, string>);
  return docs.map(({ row, where }) => {
    const m = /^([^.]+)\.([^.]+)\.([01])\.(male|female|neutral)\.txt$/.exec(String(row.sentid));
    if (!m)
      throw new TaskError(`${where}: sentid ${JSON.stringify(row.sentid)} is not WinoGender's`);
    const [, occupation, participant, answer, gender] = m;
    const t = templates.find((x) => x["occupation(0)"] === occupation && x.answer === answer);
    if (!t) throw new TaskError(`${where}: no template for ${occupation}, answer ${answer}`);
    const slot = /\$(NOM|POSS|ACC)_PRONOUN/.exec(t.sentence!);
    if (!slot) throw new TaskError(`${templatesFile}: a template without a pronoun`);
    const p = pronouns[gender as keyof typeof pronouns];
    const doc = {
      ...row,
      occupation,
      participant,
      answer: Number(answer),
      pronoun: p[slot[1] as "NOM" | "POSS" | "ACC"],
      pronouns: p.group,
    };
    return { row: doc, where };
  });
}

/** The gold choice's index, from the label value and labelMap or labelIn. */
function labelOf(d: TaskDefinition, row: Record<string, unknown>, choices: string[]): number {
  const v = render(d.label!, row);
  let label: number;
  if (d.labelMap) {
    const key = String(v);
    if (!(key in d.labelMap))
      throw new TemplateError(`label ${JSON.stringify(v)} is not in labelMap`);
    label = d.labelMap[key]!;
  } else if (d.labelIn) {
    const among = renderList(d.labelIn, row);
    label = among.indexOf(String(v));
    if (label < 0) throw new TemplateError(`label ${JSON.stringify(v)} is not in labelIn`);
  } else {
    label = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : (v as number);
    if (!Number.isInteger(label))
      throw new TemplateError(`label ${JSON.stringify(v)} is not an index`);
  }
  if (label < 0 || label >= choices.length)
    throw new TemplateError(`label ${label} is outside the ${choices.length} choices`);
  return label;
}

function choiceItemOf(d: TaskDefinition, row: Record<string, unknown>): ChoiceItem {
  const choices = renderList(d.choices!, row);
  if (choices.length < 2) throw new TemplateError("fewer than two choices");
  const item: ChoiceItem = {
    context: renderText(d.context, row),
    choices,
    label: labelOf(d, row, choices),
  };
  if (d.preamble) item.preamble = renderText(d.preamble, row);
  if (d.group) item.group = renderText(d.group, row);
  if (d.correct) {
    const correct = renderList([d.correct], row);
    if (correct.length !== choices.length)
      throw new TemplateError(
        `correct has ${correct.length} entries for ${choices.length} choices`,
      );
    item.correct = correct.map((c) => c === "1" || c === "true");
  }
  return item;
}

/** A question the model answers in its own words, with the answers that count. */
export interface GenerationItem {
  context: string;
  preamble?: string;
  /** A solved example's answer, when the item is a few-shot example. */
  target: string;
  answers: string[];
  group?: string;
  /** Code tasks: the program that tests an answer, `outputSlot` where the answer goes. */
  program?: string;
}

/** Stands for the model's answer in a rendered program until the answer is known. */
export const outputSlot = "\u0000output\u0000";

function generationItemOf(d: TaskDefinition, row: Record<string, unknown>): GenerationItem {
  const answers = renderList([d.answers!], row);
  if (answers.length === 0) throw new TemplateError("no gold answers");
  const item: GenerationItem = {
    context: renderText(d.context, row),
    target: d.target ? renderText(d.target, row) : answers[0]!,
    answers,
  };
  if (d.preamble) item.preamble = renderText(d.preamble, row);
  if (d.group) item.group = renderText(d.group, row);
  if (d.program) item.program = renderText(d.program, { ...row, output: outputSlot });
  return item;
}

/**
 * The items of a file under a definition: the first `limit`, or with groups, as
 * lm-evaluation-harness limits each subtask, the first `limit` of each group.
 */
function readItems<T extends { group?: string }>(
  d: TaskDefinition,
  file: string,
  limit: number | undefined,
  itemOf: (d: TaskDefinition, row: Record<string, unknown>) => T,
): T[] {
  let docs = readRows(file);
  if (d.prepare === "winogender") docs = winogender(docs, file);
  if (d.explode) docs = explode(docs, d.explode);
  if (limit !== undefined && !d.group) docs = docs.slice(0, limit);
  let items = docs.map(({ row, where }) => {
    try {
      return itemOf(d, row);
    } catch (err) {
      if (err instanceof TemplateError) throw new TaskError(`${where}: ${err.message}`);
      throw err;
    }
  });
  if (limit !== undefined && d.group) {
    const taken = new Map<string | undefined, number>();
    items = items.filter((x) => {
      const n = taken.get(x.group) ?? 0;
      taken.set(x.group, n + 1);
      return n < limit;
    });
  }
  if (items.length === 0) throw new TaskError(`${file}: no items`);
  return items;
}

export const readChoiceItems = (d: TaskDefinition, file: string, limit?: number) =>
  readItems(d, file, limit, choiceItemOf);

export const readGenerationItems = (d: TaskDefinition, file: string, limit?: number) =>
  readItems(d, file, limit, generationItemOf);
