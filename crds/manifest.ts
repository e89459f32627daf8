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

/** Parses one YAML document of the given schema; `source` names it in errors. */
export function parseManifest<S extends z.ZodType>(
  schema: S,
  text: string,
  source: string,
): z.output<S> {
  const docs = parseAllDocuments(text);
  if (Array.isArray(docs) === false || docs.length === 0)
    throw new ManifestError(`${source}: empty manifest`);
  const [doc] = docs;
  if (docs.length > 1)
    throw new ManifestError(`${source}: expected one YAML document, found ${docs.length}`);
  if (doc!.errors.length > 0)
    throw new ManifestError(`${source}: invalid YAML: ${doc!.errors[0]!.message}`);
  const result = schema.safeParse(doc!.toJS());
  if (!result.success)
    throw new ManifestError(`${source}: invalid manifest\n${describeIssues(result.error)}`);
  return result.data;
}

export function readTrainingJob(file: string): TrainingJob {
  return parseManifest(trainingJob, readFileSync(file, "utf8"), file);
}

export function readEvalJob(file: string): EvalJob {
  return parseManifest(evalJob, readFileSync(file, "utf8"), file);
}

export function readEvalSweep(file: string): EvalSweep {
  return parseManifest(evalSweep, readFileSync(file, "utf8"), file);
}

/** Any herd object, validated with the schema its `kind` names. */
export function parseHerdObject(text: string, source: string): TrainingJob | EvalJob | EvalSweep {
  const docs = parseAllDocuments(text);
  const kind = Array.isArray(docs)
    ? (docs[0]?.toJS() as { kind?: unknown } | null)?.kind
    : undefined;
  if (kind === "TrainingJob") return parseManifest(trainingJob, text, source);
  if (kind === "EvalJob") return parseManifest(evalJob, text, source);
  if (kind === "EvalSweep") return parseManifest(evalSweep, text, source);
  throw new ManifestError(
    `${source}: kind must be TrainingJob, EvalJob or EvalSweep, got ${JSON.stringify(kind ?? null)}`,
  );
}
