// Where an evaluation finds a TrainingJob's checkpoints and their results: through the
// checkpoint folder's reader view (../checkpoint-folder.ts), so a local folder (a PVC, this
// machine's disk for the local control plane) and an s3://bucket/prefix are read alike, laid
// out as docs/formats.md "Checkpoints" says.
import type { S3Config } from "../s3.ts";
import {
  checkpointFolder,
  splitCheckpointUri,
  type CheckpointFolder,
} from "../checkpoint-folder.ts";
import { latestFile, manifestFile, stepName } from "../trainer/checkpoint.ts";

export class CheckpointResolutionError extends Error {
  override name = "CheckpointResolutionError";
}

export interface CheckpointAt {
  step: number;
  /** The checkpoint's directory (step-NNNNNNNNN): a path or s3:// URI. */
  uri: string;
}

/** The S3 endpoint and credentials, for s3:// URIs. */
export type StorageOptions = { s3?: Omit<S3Config, "bucket"> };

const stepDir = /^step-(\d{9})$/;

/**
 * The durable checkpoints in a TrainingJob's checkpoint folder, oldest first: those LATEST
 * has published (a step directory newer than LATEST was renamed or uploaded but never
 * published) whose manifest is in place.
 */
export async function durableCheckpoints(
  uri: string,
  opts: StorageOptions = {},
): Promise<CheckpointAt[]> {
  const folder = checkpointFolder(uri, opts);
  const latest = stepDir.exec((await folder.read(latestFile))?.toString("utf8").trim() ?? "");
  if (!latest) return [];
  const steps = (await folder.list())
    .map((name) => stepDir.exec(name))
    .filter((m) => m !== null && Number(m[1]) <= Number(latest[1]))
    .map((m) => Number(m![1]))
    .sort((a, b) => a - b);
  const found: CheckpointAt[] = [];
  for (const step of steps)
    if (await folder.has(`${stepName(step)}/${manifestFile}`))
      found.push({ step, uri: folder.uriOf(stepName(step)) });
  return found;
}

/**
 * The checkpoint of a TrainingJob to evaluate: `step`, or the latest durable one. Throws,
 * naming the step and the folder, when there is none.
 */
export async function resolveTrainingCheckpoint(
  trainingJob: string,
  uri: string,
  step?: number,
  opts: StorageOptions = {},
): Promise<CheckpointAt> {
  const all = await durableCheckpoints(uri, opts);
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

/** The name of an EvalJob's results file: beside the checkpoint, named after the job. */
const resultsName = (checkpoint: string, job: string) => `${checkpoint}.eval-${job}.json`;

/** The results file of an EvalJob: beside the checkpoint, named after the job. */
export function resultsUriOf(checkpointUri: string, job: string): string {
  return resultsName(checkpointUri.replace(/\/+$/, ""), job);
}

/** The folder holding a checkpoint, and the name of the EvalJob's results file in it. */
function resultsFileOf(
  checkpointUri: string,
  job: string,
  opts: StorageOptions,
): { folder: CheckpointFolder; name: string } {
  const { folder, name } = splitCheckpointUri(checkpointUri);
  return { folder: checkpointFolder(folder, opts), name: resultsName(name, job) };
}

/** Whether the EvalJob `job` has written its results for this checkpoint. */
export async function hasResults(
  checkpointUri: string,
  job: string,
  opts: StorageOptions = {},
): Promise<boolean> {
  const { folder, name } = resultsFileOf(checkpointUri, job, opts);
  return folder.has(name);
}

/** The text of an EvalJob's results file for this checkpoint; throws naming it when absent. */
export async function readResultsText(
  checkpointUri: string,
  job: string,
  opts: StorageOptions = {},
): Promise<string> {
  const { folder, name } = resultsFileOf(checkpointUri, job, opts);
  const bytes = await folder.read(name);
  if (!bytes) throw new Error(`${folder.uriOf(name)}: the evaluator wrote no results file`);
  return bytes.toString("utf8");
}

/** Writes an EvalJob's results beside the checkpoint (whole or not at all); returns its URI. */
export async function writeResults(
  checkpointUri: string,
  job: string,
  text: string,
  opts: StorageOptions = {},
): Promise<string> {
  const { folder, name } = resultsFileOf(checkpointUri, job, opts);
  return folder.write(name, text);
}
