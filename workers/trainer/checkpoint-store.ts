// Where a TrainingJob's checkpoints live (spec.checkpoint.uri): a folder (a volume) or an
// s3://bucket/prefix. Both keep the layout of docs/formats.md. A local folder is written in
// place by saveCheckpoint. Object storage has no rename, so the order of writes carries the
// guarantees instead:
//
//   1. the checkpoint is written durably to a local staging folder (saveCheckpoint: fsync, rename);
//   2. its files are uploaded to <prefix>/step-NNNNNNNNN/, manifest.json last;
//   3. only then is <prefix>/LATEST replaced (one PUT, atomic in S3);
//   4. only then are older checkpoints beyond `keep` deleted.
//
// A reader therefore never follows LATEST to an incomplete checkpoint, and a checkpoint that a
// crash left half-uploaded is newer than LATEST and ignored. Resume downloads the newest
// published checkpoint that verifies against its manifest into the staging folder and opens it
// there with the same loader as a local folder.
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { localPathOf, parseS3Uri, S3, type S3Config } from "../s3.ts";
import { metricsFile } from "./metrics-log.ts";
import {
  CheckpointError,
  latestFile,
  manifestFile,
  readLatest,
  resumeCandidates,
  saveCheckpoint,
  stepName,
  verifyCheckpoint,
  type FileContent,
} from "./checkpoint.ts";

/**
 * Which attempt of which TrainingJob writes a checkpoint folder: the OWNER file at its root.
 * A trainer pod claims the folder at start; before it publishes a checkpoint it checks that
 * it still owns it. A trainer left running on a partitioned node after its attempt was
 * replaced (docs/training.md, "Node loss") thus stops at its next checkpoint instead of
 * publishing over the new attempt's.
 */
export interface Owner {
  /** The TrainingJob's uid: another job (or a recreated one) takes the folder over. */
  uid: string;
  attempt: number;
}

export const ownerFile = "OWNER";

/** This trainer's attempt no longer owns the folder: it must stop without publishing. */
export class StaleAttemptError extends Error {
  override name = "StaleAttemptError";
}

/** The owner a trainer pod runs as: HERD_TRAININGJOB_UID and HERD_ATTEMPT; none for --local. */
export function ownerFromEnv(env: NodeJS.ProcessEnv = process.env): Owner | undefined {
  const uid = env.HERD_TRAININGJOB_UID;
  const attempt = Number(env.HERD_ATTEMPT);
  if (!uid || !Number.isSafeInteger(attempt)) return undefined;
  return { uid, attempt };
}

function parseOwner(text: string | undefined): Owner | undefined {
  if (text === undefined) return undefined;
  try {
    const o = JSON.parse(text) as Partial<Owner>;
    if (typeof o.uid === "string" && Number.isSafeInteger(o.attempt))
      return { uid: o.uid, attempt: o.attempt! };
  } catch {
    // unreadable: whoever claims next takes the folder
  }
  return undefined;
}

/** Whether `me` may claim a folder that `current` owns: not if a newer attempt of my job does. */
function mayClaim(current: Owner | undefined, me: Owner): boolean {
  return !(current && current.uid === me.uid && current.attempt > me.attempt);
}

const stale = (uri: string, current: Owner | undefined, me: Owner) =>
  new StaleAttemptError(
    `${uri}: attempt ${me.attempt} no longer owns this checkpoint folder (` +
      (current
        ? current.uid === me.uid
          ? `attempt ${current.attempt} does`
          : `TrainingJob uid ${current.uid} does`
        : "its OWNER file is gone") +
      "); this trainer is stale and stops without publishing",
  );

const sameOwner = (a: Owner | undefined, b: Owner) => a?.uid === b.uid && a.attempt === b.attempt;

export interface CheckpointStore {
  /** The spec's URI, for messages. */
  readonly uri: string;
  /** A local folder laid out as a checkpoint folder, which the loader reads. */
  readonly localDir: string;
  /** Fetches what resume needs into localDir (nothing for a folder). */
  prepareResume(warn: (message: string) => void): Promise<void>;
  /**
   * Saves checkpoint `step` durably and publishes it; returns where it is (a path or s3://
   * URI). After claim(), throws StaleAttemptError instead of publishing when another attempt
   * has claimed the folder since.
   */
  save(step: number, files: Record<string, FileContent>, keep: number): Promise<string>;
  /** Claims the folder for `owner`; throws StaleAttemptError when a newer attempt holds it. */
  claim(owner: Owner): Promise<void>;
  /**
   * Waits until every saved checkpoint is published; rethrows a failed upload. Object storage
   * uploads in the background (save returns once the checkpoint is durable on local disk);
   * a folder publishes within save.
   */
  flush(): Promise<void>;
}

/** The S3 endpoint and credentials of this process, from the environment (`herd dev env`). */
export function s3ConfigFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): Omit<S3Config, "bucket"> | undefined {
  const endpoint = env.HERD_S3_ENDPOINT ?? env.AWS_ENDPOINT_URL_S3;
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  const keys = accessKeyId && secretAccessKey;
  // Keys of a web identity (IRSA) come through the SDK's credential chain, not from here.
  if (!endpoint && !keys && !env.AWS_WEB_IDENTITY_TOKEN_FILE) return undefined;
  return {
    ...(endpoint && { endpoint }),
    region: env.AWS_REGION || "us-east-1",
    ...(keys && { accessKeyId, secretAccessKey }),
    ...(keys && env.AWS_SESSION_TOKEN && { sessionToken: env.AWS_SESSION_TOKEN }),
  };
}

/**
 * The local staging folder for an object-storage URI: under the pod's scratch space
 * (HERD_POD_DIR, else the system's temporary folder), one per URI.
 */
export function stagingDirFor(uri: string, env: NodeJS.ProcessEnv = process.env): string {
  const scratch =
    env.HERD_CHECKPOINT_STAGING ?? path.join(env.HERD_POD_DIR ?? os.tmpdir(), "herd-checkpoints");
  return path.join(scratch, createHash("sha256").update(uri).digest("hex").slice(0, 16));
}

/** A folder: checkpoints are written and read in place. */
export function folderStore(dir: string): CheckpointStore {
  let me: Owner | undefined;
  const owner = () => {
    try {
      return parseOwner(readFileSync(path.join(dir, ownerFile), "utf8"));
    } catch {
      return undefined;
    }
  };
  return {
    uri: dir,
    localDir: dir,
    prepareResume: async () => {},
    save: async (step, files, keep) =>
      saveCheckpoint(dir, step, files, keep, () => {
        if (!me) return;
        const current = owner();
        if (!sameOwner(current, me)) throw stale(dir, current, me);
      }),
    flush: async () => {},
    async claim(o) {
      const current = owner();
      if (!mayClaim(current, o)) throw stale(dir, current, o);
      mkdirSync(dir, { recursive: true });
      const tmp = path.join(dir, `.${ownerFile}.tmp-${process.pid}`);
      writeFileSync(tmp, JSON.stringify(o) + "\n");
      renameSync(tmp, path.join(dir, ownerFile));
      me = o;
    },
  };
}

/** The S3 prefix of a checkpoint URI, ending in "/" unless it is the bucket's root. */
function prefixOf(uri: string): { bucket: string; prefix: string } {
  const { bucket, key } = parseS3Uri(uri);
  return { bucket, prefix: key === "" || key.endsWith("/") ? key : `${key}/` };
}

/** Checkpoint steps under an S3 prefix (any object below step-N/ counts), newest first. */
async function s3Steps(s3: S3, prefix: string): Promise<number[]> {
  const steps = new Set<number>();
  for (const o of await s3.list(prefix)) {
    const m = /^step-(\d{9})\//.exec(o.key.slice(prefix.length));
    if (m) steps.add(Number(m[1]));
  }
  return [...steps].sort((a, b) => b - a);
}

/** The step <prefix>/LATEST names; undefined when absent; `present` when the object exists. */
async function s3Latest(s3: S3, prefix: string): Promise<{ step?: number; present: boolean }> {
  if (!(await s3.head(prefix + latestFile))) return { present: false };
  const m = /^step-(\d{9})$/.exec((await s3.get(prefix + latestFile)).toString("utf8").trim());
  return { step: m ? Number(m[1]) : undefined, present: true };
}

/**
 * An s3://bucket/prefix, staged through `stagingDir` (the pod's scratch space). `config` is
 * the endpoint and credentials; the bucket comes from the URI.
 */
export function s3Store(
  uri: string,
  stagingDir: string,
  config: Omit<S3Config, "bucket">,
): CheckpointStore {
  const { bucket, prefix } = prefixOf(uri);
  const s3 = new S3({ ...config, bucket });
  const published = (step: number) => `s3://${bucket}/${prefix}${stepName(step)}`;
  let me: Owner | undefined;
  let pending: Promise<void> | undefined; // the upload and publish in flight
  const flush = async () => {
    const p = pending;
    pending = undefined;
    await p;
  };
  const owner = async () =>
    (await s3.head(prefix + ownerFile))
      ? parseOwner((await s3.get(prefix + ownerFile)).toString("utf8"))
      : undefined;

  async function upload(step: number, dir: string): Promise<void> {
    const key = prefix + stepName(step) + "/";
    const files = readdirSync(dir).filter((f) => f !== manifestFile);
    for (const f of files) await s3.putFile(key + f, path.join(dir, f));
    await s3.putFile(key + manifestFile, path.join(dir, manifestFile));
  }

  // Deletes checkpoints beyond the newest `keep` published ones; never the durable one.
  async function prune(durable: number, keep: number): Promise<void> {
    const older = (await s3Steps(s3, prefix)).filter((s) => s <= durable);
    for (const step of older.slice(Math.max(1, keep)))
      for (const o of await s3.list(prefix + stepName(step) + "/")) await s3.delete(o.key);
  }

  // Downloads one checkpoint into the staging folder; returns the reason it is unusable, if so.
  async function download(step: number): Promise<string | undefined> {
    const name = stepName(step);
    const dir = path.join(stagingDir, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const objects = await s3.list(prefix + name + "/");
    for (const o of objects) {
      const file = o.key.slice(prefix.length + name.length + 1);
      if (file.includes("/") || file.startsWith(".")) continue;
      await s3.getFile(o.key, path.join(dir, file), o);
    }
    try {
      verifyCheckpoint(dir, []);
      return undefined;
    } catch (err) {
      if (!(err instanceof CheckpointError)) throw err;
      rmSync(dir, { recursive: true, force: true });
      return err.message;
    }
  }

  return {
    uri,
    localDir: stagingDir,
    async prepareResume(warn) {
      // The staging folder mirrors S3 for this run only: what an earlier pod left is stale.
      rmSync(stagingDir, { recursive: true, force: true });
      mkdirSync(stagingDir, { recursive: true });
      const metrics = await s3.head(prefix + metricsFile);
      if (metrics)
        await s3.getFile(prefix + metricsFile, path.join(stagingDir, metricsFile), metrics);
      const latest = await s3Latest(s3, prefix);
      const candidates = resumeCandidates(
        latest.step,
        latest.present,
        await s3Steps(s3, prefix),
        (m) => warn(`${uri}: ${m}`),
      );
      const reasons: string[] = [];
      for (const step of candidates) {
        const reason = await download(step);
        if (reason === undefined) {
          if (reasons.length > 0)
            warn(`${uri}: falling back to checkpoint ${stepName(step)}: ${reasons.join("; ")}`);
          writeFileSync(path.join(stagingDir, latestFile), stepName(step) + "\n");
          return;
        }
        reasons.push(reason);
      }
      if (reasons.length > 0)
        throw new CheckpointError(`no usable checkpoint in ${uri}: ${reasons.join("; ")}`);
    },
    async save(step, files, keep) {
      // One upload at a time: the staging folder keeps one checkpoint, the one in flight.
      await flush();
      const dir = saveCheckpoint(stagingDir, step, files, 1);
      // The loss history goes with the checkpoint it covers (docs/formats.md, metrics.jsonl):
      // a copy as of now, since the trainer goes on appending to the file while this uploads.
      const metrics = path.join(stagingDir, metricsFile);
      const metricsCopy = path.join(stagingDir, `.${metricsFile}.${stepName(step)}`);
      const hasMetrics = existsSync(metrics);
      if (hasMetrics) copyFileSync(metrics, metricsCopy);
      const publish = async () => {
        await upload(step, dir);
        if (me) {
          const current = await owner();
          if (!sameOwner(current, me)) throw stale(uri, current, me);
        }
        if (hasMetrics) await s3.putFile(prefix + metricsFile, metricsCopy);
        await s3.put(prefix + latestFile, stepName(step) + "\n");
        await prune(step, keep);
        rmSync(metricsCopy, { force: true });
      };
      // Training goes on while the upload runs; its failure surfaces at the next save or flush.
      pending = publish();
      pending.catch(() => {}); // observed by flush(); not an unhandled rejection meanwhile
      return published(step);
    },
    flush,
    async claim(o) {
      const current = await owner();
      if (!mayClaim(current, o)) throw stale(uri, current, o);
      await s3.put(prefix + ownerFile, JSON.stringify(o) + "\n");
      me = o;
    },
  };
}

/** The newest published checkpoint of a store, without downloading it (the workflow's view). */
export async function latestPublished(
  uri: string,
  config: Omit<S3Config, "bucket"> | undefined,
): Promise<{ step: number; uri: string; time: string } | undefined> {
  const dir = localPathOf(uri);
  if (dir !== undefined) {
    const step = readLatest(dir);
    if (step === undefined) return undefined;
    const where = path.join(dir, stepName(step));
    try {
      return {
        step,
        uri: where,
        time: statSync(path.join(where, manifestFile)).mtime.toISOString(),
      };
    } catch {
      return undefined; // LATEST names a checkpoint that is gone
    }
  }
  if (!config) throw new Error(`${uri}: no S3 endpoint and credentials are configured`);
  const { bucket, prefix } = prefixOf(uri);
  const s3 = new S3({ ...config, bucket });
  const { step } = await s3Latest(s3, prefix);
  if (step === undefined) return undefined;
  const manifest = await s3.head(`${prefix}${stepName(step)}/${manifestFile}`);
  if (!manifest) return undefined;
  return {
    step,
    uri: `s3://${bucket}/${prefix}${stepName(step)}`,
    time: manifest.lastModified.toISOString(),
  };
}
