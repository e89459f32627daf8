// The checkpoint directory protocol (docs/formats.md, "Checkpoints"):
//
//   <dir>/step-000000120/{model.safetensors, optimizer.safetensors, trainer.json, manifest.json}
//   <dir>/LATEST            "step-000000120\n"
//
// A checkpoint is written into a temporary directory, each file fsynced, the manifest (sizes
// and SHA-256 of the other files) written last, the directory fsynced and renamed into place,
// the parent fsynced; only then is LATEST replaced (temporary file, fsync, rename, fsync) and
// only after that are old checkpoints pruned. Loading starts at LATEST, verifies the manifest
// and every file, and falls back to the newest earlier checkpoint that verifies, warning.
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  readSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import { SafetensorsError } from "./safetensors.ts";

export class CheckpointError extends Error {
  override name = "CheckpointError";
}

export const latestFile = "LATEST";
export const manifestFile = "manifest.json";
const stepDir = /^step-(\d{9})$/;

export function stepName(step: number): string {
  if (!Number.isSafeInteger(step) || step < 0 || step > 999_999_999)
    throw new CheckpointError(`step ${step} cannot be named with 9 digits`);
  return `step-${String(step).padStart(9, "0")}`;
}

export interface Manifest {
  format: "herd-checkpoint";
  version: 1;
  step: number;
  files: Record<string, { size: number; sha256: string }>;
}

/**
 * A file too large to hold in memory: its bytes as a sequence of chunks, each valid only until
 * the next is asked for (one buffer, refilled). The model and optimizer files of a run stream
 * from the engine this way (train.ts), so no file is ever whole in JavaScript; a Node Buffer
 * stops at 2 GiB for reads and 4 GiB for allocations.
 */
export interface StreamedFile {
  chunks(): Iterable<Uint8Array>;
}

/** A checkpoint file's contents: bytes, text, or a stream of chunks. */
export type FileContent = Uint8Array | string | StreamedFile;

/** Bytes per read when a file is hashed or loaded in pieces. */
export const chunkBytes = 16 << 20;

const isStreamed = (c: FileContent): c is StreamedFile =>
  typeof c === "object" && "chunks" in c && typeof c.chunks === "function";

/** Writes the file and fsyncs it; returns its size and SHA-256, hashed as it is written. */
function writeDurably(file: string, content: FileContent): { size: number; sha256: string } {
  const chunks = isStreamed(content)
    ? content.chunks()
    : [typeof content === "string" ? Buffer.from(content) : content];
  const hash = createHash("sha256");
  let size = 0;
  const fd = openSync(file, "w");
  try {
    for (const chunk of chunks) {
      hash.update(chunk);
      let at = 0;
      while (at < chunk.length) at += writeSync(fd, chunk, at, chunk.length - at);
      size += chunk.length;
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { size, sha256: hash.digest("hex") };
}

/** The SHA-256 of a file, read in chunks. */
function sha256OfFile(file: string): string {
  const hash = createHash("sha256");
  const buf = Buffer.allocUnsafe(chunkBytes);
  const fd = openSync(file, "r");
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Step numbers of the complete checkpoint directories in `dir`, newest first. */
export function listCheckpoints(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => stepDir.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
}

/** The step LATEST points at, or undefined when it is missing or does not name a step. */
export function readLatest(dir: string): number | undefined {
  try {
    const m = stepDir.exec(readFileSync(path.join(dir, latestFile), "utf8").trim());
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes checkpoint `step` with the given files durably, points LATEST at it, then prunes
 * all but the newest `keep` checkpoints. Returns the checkpoint's directory.
 */
export function saveCheckpoint(
  dir: string,
  step: number,
  files: Record<string, FileContent>,
  keep: number,
  /** Runs after the checkpoint is durable and before it is published; may throw to stop there. */
  beforePublish: () => void = () => {},
): string {
  mkdirSync(dir, { recursive: true });
  const name = stepName(step);
  const final = path.join(dir, name);
  const tmp = path.join(dir, `.tmp-${name}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const manifest: Manifest = { format: "herd-checkpoint", version: 1, step, files: {} };
  for (const [file, content] of Object.entries(files))
    manifest.files[file] = writeDurably(path.join(tmp, file), content);
  writeDurably(path.join(tmp, manifestFile), JSON.stringify(manifest, null, 2) + "\n");
  fsyncDir(tmp);
  // A checkpoint of the same step can exist when a run was cut off after the rename but
  // before LATEST moved; training is deterministic, so the new one replaces it.
  if (existsSync(final)) {
    const old = path.join(dir, `.old-${name}-${process.pid}`);
    renameSync(final, old);
    renameSync(tmp, final);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmp, final);
  }
  fsyncDir(dir);
  beforePublish();
  const latestTmp = path.join(dir, `.${latestFile}.tmp-${process.pid}`);
  writeDurably(latestTmp, name + "\n");
  renameSync(latestTmp, path.join(dir, latestFile));
  fsyncDir(dir);
  prune(dir, step, keep);
  return final;
}

// Removes checkpoints beyond the newest `keep` that are not newer than the durable one, and
// leftovers of interrupted writes.
function prune(dir: string, durable: number, keep: number): void {
  const older = listCheckpoints(dir).filter((s) => s <= durable);
  for (const step of older.slice(Math.max(1, keep)))
    rmSync(path.join(dir, stepName(step)), { recursive: true, force: true });
  for (const name of readdirSync(dir))
    if (name.startsWith(".tmp-") || name.startsWith(".old-"))
      rmSync(path.join(dir, name), { recursive: true, force: true });
}

/**
 * The files of a checkpoint that verified: where each is, and (for the small ones, or files
 * under 2 GiB) its bytes. Large files are read in pieces from `path`.
 */
export interface VerifiedFiles {
  path(name: string): string;
  get(name: string): Buffer;
}

/**
 * Checks a checkpoint directory against its manifest (each file's size, and its SHA-256 read
 * in chunks); returns its files or throws why not.
 */
export function verifyCheckpoint(checkpointDir: string, required: string[]): VerifiedFiles {
  const where = path.basename(checkpointDir);
  let manifest: unknown;
  try {
    manifest = JSON.parse(readFileSync(path.join(checkpointDir, manifestFile), "utf8"));
  } catch (err) {
    throw new CheckpointError(`${where}: ${manifestFile} unreadable: ${(err as Error).message}`);
  }
  const m = manifest as Partial<Manifest>;
  if (typeof m !== "object" || m === null || m.format !== "herd-checkpoint" || m.version !== 1)
    throw new CheckpointError(
      `${where}: ${manifestFile} is not a herd-checkpoint version 1 manifest`,
    );
  if (typeof m.files !== "object" || m.files === null)
    throw new CheckpointError(`${where}: ${manifestFile} has no files table`);
  for (const name of required)
    if (!(name in m.files))
      throw new CheckpointError(`${where}: ${manifestFile} does not list ${name}`);
  const names = new Set<string>();
  for (const [name, entry] of Object.entries(m.files)) {
    if (name.includes("/") || name.startsWith("."))
      throw new CheckpointError(
        `${where}: ${manifestFile} names a file outside the checkpoint: ${name}`,
      );
    const e = entry as { size?: unknown; sha256?: unknown };
    if (
      typeof e !== "object" ||
      e === null ||
      typeof e.size !== "number" ||
      typeof e.sha256 !== "string"
    )
      throw new CheckpointError(`${where}: ${manifestFile} entry for ${name} lacks size or sha256`);
    const file = path.join(checkpointDir, name);
    let sha256: string;
    try {
      if (statSync(file).size !== e.size)
        throw new CheckpointError(
          `${where}/${name}: size ${statSync(file).size}, manifest says ${e.size}`,
        );
      sha256 = sha256OfFile(file);
    } catch (err) {
      if (err instanceof CheckpointError) throw err;
      throw new CheckpointError(`${where}/${name}: unreadable: ${(err as Error).message}`);
    }
    if (sha256 !== e.sha256)
      throw new CheckpointError(`${where}/${name}: SHA-256 does not match the manifest`);
    names.add(name);
  }
  const pathOf = (name: string) => {
    if (!names.has(name)) throw new CheckpointError(`${where}: ${name} is not in the manifest`);
    return path.join(checkpointDir, name);
  };
  return { path: pathOf, get: (name) => readFileSync(pathOf(name)) };
}

/**
 * The checkpoints resume tries, in order: those LATEST has published (not newer than it),
 * newest first; all of them when LATEST names none. Checkpoints newer than LATEST were
 * written but never published (a crash between the rename or upload and LATEST): skipped.
 */
export function resumeCandidates(
  latest: number | undefined,
  latestPresent: boolean,
  all: number[],
  warn: (message: string) => void,
): number[] {
  if (all.length === 0) return [];
  if (latest === undefined && latestPresent)
    warn(`${latestFile} does not name a checkpoint; trying the checkpoints present`);
  if (latest !== undefined && !all.includes(latest))
    warn(`${latestFile} names ${stepName(latest)}, which is missing`);
  const published = latest === undefined ? [] : all.filter((s) => s <= latest);
  return published.length > 0 ? published : all;
}

export interface Loaded<T> {
  step: number;
  path: string;
  value: T;
}

/**
 * Opens the newest usable checkpoint: LATEST first, then older ones, newest first. `open`
 * turns verified files into a value and may throw CheckpointError or SafetensorsError (a
 * malformed file) — that checkpoint is then skipped too; other errors propagate. Each skip is reported through `warn`. Returns undefined when `dir`
 * holds no checkpoint; throws when checkpoints exist but none is usable.
 */
export function loadCheckpoint<T>(
  dir: string,
  required: string[],
  open: (files: VerifiedFiles, step: number) => T,
  warn: (message: string) => void,
): Loaded<T> | undefined {
  const all = listCheckpoints(dir);
  if (all.length === 0) return undefined;
  const candidates = resumeCandidates(
    readLatest(dir),
    existsSync(path.join(dir, latestFile)),
    all,
    warn,
  );
  const reasons: string[] = [];
  for (const step of candidates) {
    const where = path.join(dir, stepName(step));
    try {
      const value = open(verifyCheckpoint(where, required), step);
      if (reasons.length > 0)
        warn(`falling back to checkpoint ${stepName(step)}: ${reasons.join("; ")}`);
      return { step, path: where, value };
    } catch (err) {
      // Damage (a file that does not verify or parse) means: try the next one. Anything else
      // — say, a checkpoint of a different model — is not fixed by an older checkpoint.
      if (!(err instanceof CheckpointError || err instanceof SafetensorsError)) throw err;
      reasons.push(err.message);
    }
  }
  throw new CheckpointError(`no usable checkpoint in ${dir}: ${reasons.join("; ")}`);
}
