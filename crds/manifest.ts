// Reading herd manifests from YAML with errors that name the field, for the CLI and workers.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import type { z } from "zod";
import { evalJob, type EvalJob } from "./evaljob.ts";
import { evalSweep, type EvalSweep } from "./evalsweep.ts";
import { trainingJob, type TrainingJob } from "./trainingjob.ts";

export class ManifestError extends Error {
  override name = "ManifestError";
}

/** Formats zod issues as "spec.training.steps: expected int, received string" lines. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("\n");
}

/**
 * The fields of `input` that the schema dropped from `output` (zod strips keys it does not
 * know), as paths: a misspelt field is otherwise silently ignored and takes its default.
 */
export function unknownFields(input: unknown, output: unknown, at = ""): string[] {
  const isObject = (x: unknown): x is Record<string, unknown> =>
    typeof x === "object" && x !== null && !Array.isArray(x);
  if (Array.isArray(input) && Array.isArray(output) && input.length === output.length)
    return input.flatMap((x, i) => unknownFields(x, output[i], `${at}[${i}]`));
  if (!isObject(input) || !isObject(output)) return [];
  return Object.keys(input).flatMap((key) => {
    const path = at ? `${at}.${key}` : key;
    return key in output ? unknownFields(input[key], output[key], path) : [path];
  });
}

/**
 * Parses one YAML document of the given schema; `source` names it in errors. Unknown fields
 * are not errors (a trainer image older than the CRDs must still read the spec the cluster
 * defaulted), but `onUnknown` hears of each, for a warning.
 */
export function parseManifest<S extends z.ZodType>(
  schema: S,
  text: string,
  source: string,
  onUnknown?: (message: string) => void,
): z.output<S> {
  const docs = parseAllDocuments(text);
  if (Array.isArray(docs) === false || docs.length === 0)
    throw new ManifestError(`${source}: empty manifest`);
  const [doc] = docs;
  if (docs.length > 1)
    throw new ManifestError(`${source}: expected one YAML document, found ${docs.length}`);
  if (doc!.errors.length > 0)
    throw new ManifestError(`${source}: invalid YAML: ${doc!.errors[0]!.message}`);
  const input: unknown = doc!.toJS();
  const result = schema.safeParse(input);
  if (!result.success)
    throw new ManifestError(`${source}: invalid manifest\n${describeIssues(result.error)}`);
  for (const path of unknownFields(input, result.data))
    onUnknown?.(`${source}: unknown field ${path} is ignored (docs/api.md lists the fields)`);
  return result.data;
}

export function readTrainingJob(file: string, onUnknown?: (message: string) => void): TrainingJob {
  return parseManifest(trainingJob, readFileSync(file, "utf8"), file, onUnknown);
}

export function readEvalJob(file: string, onUnknown?: (message: string) => void): EvalJob {
  return parseManifest(evalJob, readFileSync(file, "utf8"), file, onUnknown);
}

export function readEvalSweep(file: string, onUnknown?: (message: string) => void): EvalSweep {
  return parseManifest(evalSweep, readFileSync(file, "utf8"), file, onUnknown);
}

/** Any herd object, validated with the schema its `kind` names. */
export function parseHerdObject(
  text: string,
  source: string,
  onUnknown?: (message: string) => void,
): TrainingJob | EvalJob | EvalSweep {
  const docs = parseAllDocuments(text);
  const kind = Array.isArray(docs)
    ? (docs[0]?.toJS() as { kind?: unknown } | null)?.kind
    : undefined;
  if (kind === "TrainingJob") return parseManifest(trainingJob, text, source, onUnknown);
  if (kind === "EvalJob") return parseManifest(evalJob, text, source, onUnknown);
  if (kind === "EvalSweep") return parseManifest(evalSweep, text, source, onUnknown);
  throw new ManifestError(
    `${source}: kind must be TrainingJob, EvalJob or EvalSweep, got ${JSON.stringify(kind ?? null)}`,
  );
}
