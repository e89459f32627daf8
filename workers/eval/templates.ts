// The template language of task definitions (data/eval/tasks.yaml): lm-evaluation-harness's
// doc_to_text/doc_to_choice/doc_to_target, cut down to what the LLaMA paper's tasks need, so a
// definition stays data and no definition runs code.
//
//   {{question}}            a field of the row
//   {{question.stem}}       a field of a field ("Answer Key": names may hold spaces)
//   {{choices[0]}}          an element of a list
//   {{question.choices[].text}}  a field of every element of a list
//   {{subject|words}}       a filter: words ("_" → " "), trim, keys, values, lines (a list
//                           joined by newlines), split:REGEX
//
// A template that is one {{…}} and nothing else yields the value as it is (a list, a number);
// any other template yields text, and every value in it must be text, a number or a boolean.

export class TemplateError extends Error {
  override name = "TemplateError";
}

type Value = unknown;

const filters: Record<string, (v: Value, arg: string | undefined, expr: string) => Value> = {
  words: (v, _a, e) => text(v, e).replace(/_/g, " "),
  trim: (v, _a, e) => text(v, e).trim(),
  keys: (v, _a, e) => Object.keys(object(v, e)),
  values: (v, _a, e) => Object.values(object(v, e)),
  lines: (v, _a, e) => {
    if (!Array.isArray(v)) throw new TemplateError(`{{${e}}}: not a list`);
    return v.map((x) => text(x, e)).join("\n");
  },
  split: (v, arg, e) =>
    text(v, e)
      .split(new RegExp(arg ?? "\\s+"))
      .map((s) => s.trim())
      .filter((s) => s !== ""),
};

function object(v: Value, expr: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new TemplateError(`{{${expr}}}: not an object`);
  return v as Record<string, unknown>;
}

function text(v: Value, expr: string): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new TemplateError(`{{${expr}}}: ${v === undefined ? "no such field" : "not text"}`);
}

/** One path step: a name, then any number of [n] or [] (map over the list). */
function step(values: Value[], segment: string, expr: string): Value[] {
  const m = /^([^[\]]*)((?:\[\d*\])*)$/.exec(segment);
  if (!m) throw new TemplateError(`{{${expr}}}: cannot read ${JSON.stringify(segment)}`);
  let out = values;
  if (m[1] !== "")
    out = out.map((v) => (v === null || v === undefined ? v : object(v, expr)[m[1]!]));
  for (const index of m[2]!.match(/\[\d*\]/g) ?? []) {
    const i = index.slice(1, -1);
    out = out.flatMap((v) => {
      if (!Array.isArray(v)) throw new TemplateError(`{{${expr}}}: ${segment} is not a list`);
      return i === "" ? v : [v[Number(i)]];
    });
  }
  return out;
}

/** The value of `path|filter|…` in the row. */
export function valueAt(row: Value, expr: string): Value {
  const [pathPart, ...filterParts] = expr.split("|").map((s) => s.trim());
  const segments = pathPart!.split(".");
  let values: Value[] = [row];
  for (const segment of segments) values = step(values, segment, expr);
  let v: Value = pathPart!.includes("[]") ? values : values[0];
  if (v === undefined) throw new TemplateError(`{{${expr}}}: no such field`);
  for (const f of filterParts) {
    const colon = f.indexOf(":");
    const name = colon < 0 ? f : f.slice(0, colon);
    const fn = filters[name];
    if (!fn)
      throw new TemplateError(
        `{{${expr}}}: no filter ${name} (filters: ${Object.keys(filters).join(", ")})`,
      );
    v = fn(v, colon < 0 ? undefined : f.slice(colon + 1), expr);
  }
  return v;
}

const placeholder = /\{\{(.*?)\}\}/gs;

/** Renders a template on a row; see the header for what it yields. */
export function render(template: string, row: Value): Value {
  const whole = /^\{\{(.*?)\}\}$/s.exec(template);
  if (whole && !whole[1]!.includes("{{")) return valueAt(row, whole[1]!);
  return template.replace(placeholder, (_m, expr: string) => text(valueAt(row, expr), expr));
}

export function renderText(template: string, row: Value): string {
  const v = render(template, row);
  return text(v, template);
}

/** One template that yields a list, or one template per element: the list's texts. */
export function renderList(templates: string[], row: Value): string[] {
  const one = templates.length === 1 ? render(templates[0]!, row) : undefined;
  const list = Array.isArray(one) ? one : templates.map((t) => render(t, row));
  return list.map((x, i) => text(x, templates[Math.min(i, templates.length - 1)]!));
}
