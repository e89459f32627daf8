// Where token shards come from: a mounted folder (a PVC, a host path) or an S3 bucket read
// through a local cache folder. Both sit behind ObjectStore, so the trainer resolves a data
// source to local shard files the same way wherever it lives, and the native loader only
// ever maps local files.
//
// The S3 side takes its client by injection (S3ObjectClient below is the whole seam; herd's
// own client lives in workers/s3.ts), so this module holds only the cache logic.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createMixtureLoader, type MixtureLoader, type MixtureOptions } from "../native/data.ts";
import { parseS3Uri, S3, type S3Config } from "./s3.ts";

export interface StoredObject {
  uri: string;
  size: number;
}

export interface ObjectStore {
  /** Objects directly under a folder URI, sorted by name. */
  list(folderUri: string): Promise<StoredObject[]>;
  /** A local path holding the object's bytes (fetched into the cache first when remote). */
  fetchObject(uri: string): Promise<string>;
}

/** Plain paths and file:// URIs: nothing to fetch. */
export class FileObjectStore implements ObjectStore {
  private static local(uri: string): string {
    return uri.startsWith("file://") ? fileURLToPath(uri) : uri;
  }

  async list(folderUri: string): Promise<StoredObject[]> {
    const dir = FileObjectStore.local(folderUri);
    if (!existsSync(dir) || !statSync(dir).isDirectory())
      throw new Error(`shard folder ${dir} does not exist`);
    return readdirSync(dir)
      .sort()
      .map((name) => path.join(dir, name))
      .filter((p) => statSync(p).isFile())
      .map((p) => ({ uri: p, size: statSync(p).size }));
  }

  async fetchObject(uri: string): Promise<string> {
    const p = FileObjectStore.local(uri);
    if (!existsSync(p)) throw new Error(`${p} does not exist`);
    return p;
  }
}

/** What the S3 cache needs from an S3 client: list a prefix, stream an object. */
export interface S3ObjectClient {
  listObjects(
    bucket: string,
    prefix: string,
  ): Promise<{ key: string; size: number; etag?: string }[]>;
  getObject(bucket: string, key: string): Promise<Uint8Array | AsyncIterable<Uint8Array>>;
}

/** The S3 cache's client over herd's S3 client (workers/s3.ts), one connection per bucket. */
export function s3ObjectClient(config: Omit<S3Config, "bucket">): S3ObjectClient {
  const buckets = new Map<string, S3>();
  const bucket = (name: string) => {
    let s3 = buckets.get(name);
    if (!s3) buckets.set(name, (s3 = new S3({ ...config, bucket: name })));
    return s3;
  };
  return {
    listObjects: async (name, prefix) => bucket(name).list(prefix),
    getObject: async (name, key) => bucket(name).get(key),
  };
}

/**
 * s3://bucket/key objects, each downloaded once into cacheDir/<bucket>/<key>: streamed to a
 * temporary name, size-checked, fsynced and renamed, with the object's ETag and size kept
 * beside it, so a later fetch of the unchanged object is a local read and a changed
 * object is fetched again. Concurrent fetches of one object (two ranks on a node) each
 * write their own temporary file; the rename makes either result whole.
 */
export class S3CacheObjectStore implements ObjectStore {
  private readonly known = new Map<string, { size: number; etag?: string }>();

  constructor(
    private readonly client: S3ObjectClient,
    private readonly cacheDir: string,
  ) {}

  async list(folderUri: string): Promise<StoredObject[]> {
    const { bucket, key } = parseS3Uri(folderUri);
    const prefix = key === "" || key.endsWith("/") ? key : `${key}/`;
    const objects = (await this.client.listObjects(bucket, prefix))
      .filter((o) => o.key.startsWith(prefix) && !o.key.slice(prefix.length).includes("/"))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const o of objects)
      this.known.set(`s3://${bucket}/${o.key}`, { size: o.size, etag: o.etag });
    return objects.map((o) => ({ uri: `s3://${bucket}/${o.key}`, size: o.size }));
  }

  async fetchObject(uri: string): Promise<string> {
    const { bucket, key } = parseS3Uri(uri);
    if (key === "" || key.split("/").some((part) => part === ".." || part === "."))
      throw new Error(`'${uri}' has no usable object key`);
    const local = path.join(this.cacheDir, bucket, ...key.split("/"));
    const expected = this.known.get(uri) ?? (await this.describe(bucket, key, uri));
    const tag = JSON.stringify({ size: expected.size, etag: expected.etag ?? null });
    if (
      existsSync(local) &&
      existsSync(`${local}.meta`) &&
      statSync(local).size === expected.size
    ) {
      if ((await readFile(`${local}.meta`, "utf8")) === tag) return local;
    }
    await mkdir(path.dirname(local), { recursive: true });
    const tmp = `${local}.part-${process.pid}-${randomBytes(4).toString("hex")}`;
    const fh = await open(tmp, "w");
    let written = 0;
    try {
      const body = await this.client.getObject(bucket, key);
      const chunks = body instanceof Uint8Array ? [body] : body;
      for await (const chunk of chunks) {
        await fh.write(chunk);
        written += chunk.byteLength;
      }
      if (written !== expected.size)
        throw new Error(`${uri}: downloaded ${written} bytes, the store lists ${expected.size}`);
      await fh.sync();
    } catch (err) {
      await fh.close();
      await rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    await rename(tmp, local);
    await writeFile(`${local}.meta`, tag);
    return local;
  }

  private async describe(bucket: string, key: string, uri: string) {
    const dir = key.includes("/") ? key.slice(0, key.lastIndexOf("/") + 1) : "";
    const found = (await this.client.listObjects(bucket, dir)).find((o) => o.key === key);
    if (!found) throw new Error(`${uri} does not exist`);
    this.known.set(uri, { size: found.size, etag: found.etag });
    return { size: found.size, etag: found.etag };
  }
}

export interface StoreOptions {
  /** Needed for s3:// sources. */
  s3?: S3ObjectClient;
  /** Local cache folder for s3:// sources. */
  cacheDir?: string;
}

export function storeFor(uri: string, options: StoreOptions = {}): ObjectStore {
  if (!uri.startsWith("s3://")) return new FileObjectStore();
  if (!options.s3 || !options.cacheDir)
    throw new Error(`${uri}: reading shards from S3 needs an S3 client and a cache folder`);
  return new S3CacheObjectStore(options.s3, options.cacheDir);
}

export interface ShardSourceFiles {
  uri: string;
  shards: string[];
  /** The folder's meta.json from `herd data prepare`, when it has one. */
  meta?: { tokenizer?: { sha256?: string; vocabSize?: number } };
}

/** A shard folder (local or S3) as local files: its shard-*.bin in name order, and meta.json. */
export async function resolveShardSource(
  uri: string,
  options: StoreOptions = {},
): Promise<ShardSourceFiles> {
  const store = storeFor(uri, options);
  const objects = await store.list(uri);
  const shardObjects = objects.filter((o) => /(^|\/)shard-\d+\.bin$/.test(o.uri));
  if (shardObjects.length === 0) throw new Error(`${uri} has no shard-*.bin files`);
  const shards: string[] = [];
  for (const o of shardObjects) shards.push(await store.fetchObject(o.uri));
  const metaObject = objects.find((o) => /(^|\/)meta\.json$/.test(o.uri));
  let meta: ShardSourceFiles["meta"];
  if (metaObject) {
    const file = await store.fetchObject(metaObject.uri);
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new Error(`${metaObject.uri}: not JSON (${(err as Error).message})`);
    }
    meta = checkMeta(parsed, metaObject.uri);
  }
  return { uri, shards, meta };
}

// The fields of meta.json the loader relies on, checked so a damaged file is named, not a
// TypeError deep in openMixture.
function checkMeta(parsed: unknown, where: string): ShardSourceFiles["meta"] {
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new Error(`${where}: not a JSON object`);
  const tokenizer = (parsed as { tokenizer?: unknown }).tokenizer;
  if (tokenizer === undefined) return parsed as ShardSourceFiles["meta"];
  if (typeof tokenizer !== "object" || tokenizer === null)
    throw new Error(`${where}: tokenizer must be an object`);
  const { sha256, vocabSize } = tokenizer as { sha256?: unknown; vocabSize?: unknown };
  if (sha256 !== undefined && typeof sha256 !== "string")
    throw new Error(`${where}: tokenizer.sha256 must be a string`);
  if (vocabSize !== undefined && !Number.isInteger(vocabSize))
    throw new Error(`${where}: tokenizer.vocabSize must be an integer`);
  return parsed as ShardSourceFiles["meta"];
}

export interface MixtureSourceUri {
  name: string;
  weight: number;
  /** A shard folder: a path, file:// or s3:// URI. */
  uri: string;
}

/**
 * The trainer's data: every source resolved to local shards, all made with one tokenizer
 * (by the sha256 in their meta.json), as a mixture loader.
 */
export async function openMixture(
  sources: MixtureSourceUri[],
  seed: number,
  options: StoreOptions = {},
): Promise<MixtureLoader> {
  return createMixtureLoader((await resolveMixture(sources, seed, options)).options);
}

/**
 * The mixture's options with every source resolved to local shard files (downloaded into
 * the cache for s3://), after checking that they share one tokenizer; and that tokenizer's
 * sha256 when their meta.json files name it.
 */
export async function resolveMixture(
  sources: MixtureSourceUri[],
  seed: number,
  options: StoreOptions = {},
): Promise<{ options: MixtureOptions; tokenizerSha256?: string }> {
  const resolved = [];
  let tokenizer: { sha256: string; uri: string } | undefined;
  for (const s of sources) {
    const files = await resolveShardSource(s.uri, options);
    const sha = files.meta?.tokenizer?.sha256;
    if (sha) {
      if (tokenizer && tokenizer.sha256 !== sha)
        throw new Error(
          `source ${s.name} (${s.uri}) was tokenized with ${sha.slice(0, 12)}…, ` +
            `${tokenizer.uri} with ${tokenizer.sha256.slice(0, 12)}…: mix only shards of one tokenizer`,
        );
      tokenizer ??= { sha256: sha, uri: s.uri };
    }
    resolved.push({ name: s.name, weight: s.weight, shards: files.shards });
  }
  return {
    options: { sources: resolved, seed },
    ...(tokenizer && { tokenizerSha256: tokenizer.sha256 }),
  };
}
