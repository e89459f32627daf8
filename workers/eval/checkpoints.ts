// Where an evaluation finds a TrainingJob's checkpoints and their results. Everything that
// reads checkpoint storage for evaluation goes through this file, so object storage (s3://)
// slots in here: today a checkpoint URI is a local folder (a PVC, or this machine's disk for
// the local control plane), laid out as docs/formats.md "Checkpoints" says.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { localPathOf } from "../s3.ts";
import { listCheckpoints, manifestFile, readLatest, stepName } from "../trainer/checkpoint.ts";

export class CheckpointResolutionError extends Error {
  override name = "CheckpointResolutionError";
}

export interface CheckpointAt {
  step: number;
  /** The checkpoint's directory (step-NNNNNNNNN). */
  uri: string;
}

/** The folder a checkpoint URI names; object storage is not readable here yet. */
function folderOf(uri: string): string {
  const dir = localPathOf(uri);
  if (dir === undefined)
    throw new CheckpointResolutionError(
      `${uri}: evaluating checkpoints in object storage is not supported yet`,
    );
  return dir;
}

/**
 * The durable checkpoints under a TrainingJob's spec.checkpoint.uri, oldest first: those
 * LATEST has published (a step directory newer than LATEST was renamed into place but never
 * published) whose manifest is in place.
 */
export async function durableCheckpoints(uri: string): Promise<CheckpointAt[]> {
  const dir = folderOf(uri);
  const latest = readLatest(dir);
  if (latest === undefined) return [];
  return listCheckpoints(dir)
    .filter((step) => step <= latest)
    .map((step) => ({ step, uri: path.join(dir, stepName(step)) }))
    .filter((c) => existsSync(path.join(c.uri, manifestFile)))
    .reverse();
}

/**
 * The checkpoint of a TrainingJob to evaluate: `step`, or the latest durable one. Throws,
 * naming the step and the folder, when there is none.
 */
export async function resolveTrainingCheckpoint(
  trainingJob: string,
  uri: string,
  step?: number,
): Promise<CheckpointAt> {
  const all = await durableCheckpoints(uri);
  if (step === undefined) {
    const latest = all.at(-1);
    if (!latest)
      throw new CheckpointResolutionError(
        `TrainingJob ${trainingJob} has no durable checkpoint yet in ${uri}`,
      );
    return latest;
  }
  const found = all.find((c) => c.step === step);
  if (!found)
    throw new CheckpointResolutionError(
      `spec.checkpoint.trainingJob.step ${step}: TrainingJob ${trainingJob} has no durable ` +
        `checkpoint of that step in ${uri} (steps there: ${all.map((c) => c.step).join(", ") || "none"})`,
    );
  return found;
}

/** The results file of an EvalJob: beside the checkpoint, named after the job. */
export function resultsUriOf(checkpointUri: string, job: string): string {
  return `${checkpointUri.replace(/\/+$/, "")}.eval-${job}.json`;
}

/** Whether the EvalJob `job` has written its results for this checkpoint. */
export async function hasResults(checkpointUri: string, job: string): Promise<boolean> {
  return existsSync(folderOf(resultsUriOf(checkpointUri, job)));
}

/** The text of a results file. */
export async function readResultsText(resultsUri: string): Promise<string> {
  return readFileSync(folderOf(resultsUri), "utf8");
}
