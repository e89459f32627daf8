// Reading herd manifests from YAML with errors that name the field, for the CLI and workers.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import type { z } from "zod";
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
