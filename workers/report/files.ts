// Where `herd report` reads a training run from: a checkpoint folder, behind the two
// operations the report needs (list the folder, read a file), so that an S3 prefix can stand
// in for the local folder.
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

/** A problem with the report's input, said in terms of the file or argument at fault. */
export class ReportError extends Error {
  override name = "ReportError";
}

/** A checkpoint folder, read-only: `<dir>/step-NNNNNNNNN/…`, metrics.jsonl, eval results. */
export interface CheckpointFiles {
  /** The folder as the user named it (a path or URI), for messages. */
  readonly location: string;
  /** The names directly inside the folder (files and step folders). */
  list(): Promise<string[]>;
  /** A file's bytes by its path inside the folder ("step-000000100/trainer.json"); undefined when absent. */
  read(name: string): Promise<Buffer | undefined>;
}

/** A checkpoint folder on this machine (or a mounted volume). */
export function localCheckpointFiles(dir: string): CheckpointFiles {
  return {
    location: dir,
    list: async () => {
      let isDir: boolean;
      try {
        isDir = statSync(dir).isDirectory();
      } catch {
        throw new ReportError(`checkpoint folder ${dir} does not exist`);
      }
      if (!isDir) throw new ReportError(`${dir} is not a folder (expected a checkpoint folder)`);
      return readdirSync(dir);
    },
    read: async (name) => {
      try {
        return readFileSync(path.join(dir, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new ReportError(`${path.join(dir, name)}: ${(err as Error).message}`);
      }
    },
  };
}

/**
 * The checkpoint folder a TrainingJob's spec.checkpoint.uri names; relative paths resolve
 * against `base` (a manifest's folder). s3:// is where S3 storage slots in.
 */
export function checkpointFiles(uri: string, base: string): CheckpointFiles {
  if (uri.startsWith("s3://"))
    throw new ReportError(
      `spec.checkpoint.uri: ${uri} is object storage, which herd report cannot read yet; ` +
        "copy the folder here and pass --checkpoints <dir>",
    );
  if (uri.startsWith("file://")) return localCheckpointFiles(uri.slice("file://".length));
  return localCheckpointFiles(path.resolve(base, uri));
}
