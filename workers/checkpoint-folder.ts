// A TrainingJob's checkpoint folder as its readers see it: evaluation (which checkpoints are
// durable, which have results), sweeps and `herd report`. The folder is a local path (a
// volume) or an s3://bucket/prefix; both hold the layout of docs/formats.md, and this view
// hides which. The trainer's own writes go through trainer/checkpoint-store.ts, whose
// ordering (manifest before LATEST) is what lets a reader here trust LATEST.
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { localPathOf, parseS3Uri, S3, S3Error, type S3Config } from "./s3.ts";

/** A problem with a storage location, said in terms of the path or URI at fault. */
export class StorageError extends Error {
  override name = "StorageError";
}

export interface CheckpointFolder {
  /** The folder as the user named it (a path or URI), for messages. */
  readonly location: string;
  /** The path or URI of a name inside the folder. */
  uriOf(name: string): string;
  /** The names directly inside the folder (files and step folders); a local folder must exist. */
  list(): Promise<string[]>;
  /** A file's bytes by its path inside the folder ("step-000000100/trainer.json"); undefined when absent. */
  read(name: string): Promise<Buffer | undefined>;
  /** Whether the file is there (without reading it). */
  has(name: string): Promise<boolean>;
  /** Writes a whole file so that readers see all of it or none (rename; one PUT). Returns its URI. */
  write(name: string, data: string | Uint8Array): Promise<string>;
}

/** A folder on this machine (or a mounted volume). */
export function localCheckpointFolder(dir: string): CheckpointFolder {
  const full = (name: string) => path.join(dir, name);
  return {
    location: dir,
    uriOf: full,
    list: async () => {
      let isDir: boolean;
      try {
        isDir = statSync(dir).isDirectory();
      } catch {
        throw new StorageError(`checkpoint folder ${dir} does not exist`);
      }
      if (!isDir) throw new StorageError(`${dir} is not a folder (expected a checkpoint folder)`);
      return readdirSync(dir);
    },
    read: async (name) => {
      try {
        return readFileSync(full(name));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ENOTDIR") return undefined;
        throw new StorageError(`${full(name)}: ${(err as Error).message}`);
      }
    },
    has: async (name) => {
      try {
        statSync(full(name));
        return true;
      } catch {
        return false;
      }
    },
    write: async (name, data) => {
      const file = full(name);
      mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.tmp-${process.pid}`;
      writeFileSync(tmp, data);
      renameSync(tmp, file);
      return file;
    },
  };
}

/** An s3://bucket/prefix through `config` (the endpoint and credentials). */
export function s3CheckpointFolder(
  uri: string,
  config: Omit<S3Config, "bucket"> | undefined,
): CheckpointFolder {
  if (!config)
    throw new StorageError(
      `${uri}: no S3 endpoint and credentials are configured ` +
        "(HERD_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; see `herd dev env`)",
    );
  const { bucket, key } = parseS3Uri(uri);
  const prefix = key === "" || key.endsWith("/") ? key : `${key}/`;
  const s3 = new S3({ ...config, bucket });
  const location = uri.replace(/\/+$/, "");
  return {
    location,
    uriOf: (name) => `s3://${bucket}/${prefix}${name}`,
    list: async () => {
      const names = new Set<string>();
      for (const o of await s3.list(prefix)) names.add(o.key.slice(prefix.length).split("/")[0]!);
      names.delete("");
      return [...names];
    },
    read: async (name) => {
      try {
        return await s3.get(prefix + name);
      } catch (err) {
        if (err instanceof S3Error && err.status === 404) return undefined;
        throw err;
      }
    },
    has: async (name) => (await s3.head(prefix + name)) !== undefined,
    write: async (name, data) => {
      await s3.put(prefix + name, data);
      return `s3://${bucket}/${prefix}${name}`;
    },
  };
}

/**
 * The folder a checkpoint URI names: s3:// through `s3`, file:// or a path otherwise
 * (relative paths resolve against `base`, a manifest's folder).
 */
export function checkpointFolder(
  uri: string,
  opts: { base?: string; s3?: Omit<S3Config, "bucket"> } = {},
): CheckpointFolder {
  const dir = localPathOf(uri);
  if (dir === undefined) return s3CheckpointFolder(uri, opts.s3);
  return localCheckpointFolder(path.resolve(opts.base ?? ".", dir));
}

/** A checkpoint URI split into its folder and its name in that folder (step-NNNNNNNNN). */
export function splitCheckpointUri(uri: string): { folder: string; name: string } {
  const trimmed = uri.replace(/\/+$/, "");
  const at = trimmed.lastIndexOf("/");
  if (at < 0) return { folder: ".", name: trimmed };
  return { folder: trimmed.slice(0, at) || "/", name: trimmed.slice(at + 1) };
}
