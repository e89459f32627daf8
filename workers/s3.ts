// Object storage for checkpoints, data shards and eval results: one bucket, through the AWS
// SDK (@aws-sdk/client-s3, and @aws-sdk/lib-storage for multipart uploads). The same code
// talks to SeaweedFS in tests and to AWS S3 or any S3-compatible store in production.
//
// What the SDK brings that checkpoints of billions of parameters need: multipart uploads (a
// single PUT stops at 5 GB), in parallel; retries with back-off; the standard credential chain
// (static keys, session tokens, web identity/IRSA, SSO, container and instance roles);
// CRC32 checksums on every upload part, checked by the store, and on downloads. Downloads of
// large objects are ranged GETs in parallel, written in place, each pinned to the ETag the
// object had when the download began (a replaced object fails the download, it is not mixed).
import { createReadStream, createWriteStream, mkdirSync } from "node:fs";
import { open } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

// Under Node 20 the SDK warns, once per process, that its releases after January 2027 will
// need Node 22. herd pins a release that supports Node 20 (package.json), so the warning would
// only clutter every CLI run and pod log; upgrading the SDK past that means moving to Node 22
// first (docs/architecture.md).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

export interface S3Config {
  /** e.g. http://127.0.0.1:8333 or https://s3.eu-west-1.amazonaws.com; unset: AWS's own. */
  endpoint?: string;
  region: string;
  bucket: string;
  /**
   * Static keys (with a session token for temporary ones). Unset, the SDK's credential chain
   * finds them: AWS_* variables, web identity (IRSA: AWS_ROLE_ARN and
   * AWS_WEB_IDENTITY_TOKEN_FILE), SSO and shared config, container and instance roles.
   */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
}

/** A store at an endpoint of its own, reached with static keys (the local plane's). */
export type S3KeyConfig = S3Config & {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
};

export interface S3Object {
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
}

/** Sizes and parallelism of transfers; tests shrink the part size. */
export interface TransferOptions {
  /** Bytes per multipart-upload part and per ranged GET (S3 allows 5 MiB to 5 GiB). */
  partSize: number;
  /** Parts in flight at once, per file. */
  concurrency: number;
}

export const defaultTransfer: TransferOptions = { partSize: 64 << 20, concurrency: 4 };

/** A storage URI as a local path: undefined for s3:// (object storage), file:// stripped. */
export function localPathOf(uri: string): string | undefined {
  if (uri.startsWith("s3://")) return undefined;
  return uri.startsWith("file://") ? uri.slice("file://".length) : uri;
}

/**
 * A local storage URI as a path on this machine: file:// stripped, ~/ in the home folder,
 * a relative path against `base` (a manifest's folder).
 */
export function localPathFrom(uri: string, base: string): string {
  if (uri.startsWith("file://")) return uri.slice("file://".length);
  if (uri.startsWith("~/")) return path.join(os.homedir(), uri.slice(2));
  return path.resolve(base, uri);
}

/** s3://bucket/key → its bucket and key (the key may be empty or a prefix). */
export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m) throw new Error(`'${uri}' is not an s3://bucket/key URI`);
  return { bucket: m[1]!, key: m[2]! };
}

/** An error answer from the store, with S3's error code (NoSuchKey, NoSuchBucket, ...). */
export class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "S3Error";
  }
}

/** Attempts per request (the first and 4 retries, exponential back-off with jitter). */
const maxAttempts = 5;

export class S3 {
  readonly client: S3Client;

  constructor(
    readonly config: S3Config,
    readonly transfer: TransferOptions = defaultTransfer,
  ) {
    if (config.endpoint !== undefined && !/^https?:\/\//.test(config.endpoint))
      throw new Error(`S3 endpoint must be an http(s) URL, got '${config.endpoint}'`);
    const keys = config.accessKeyId && config.secretAccessKey;
    this.client = new S3Client({
      region: config.region,
      ...(config.endpoint && { endpoint: config.endpoint, forcePathStyle: true }),
      ...(keys && {
        credentials: {
          accessKeyId: config.accessKeyId!,
          secretAccessKey: config.secretAccessKey!,
          ...(config.sessionToken && { sessionToken: config.sessionToken }),
        },
      }),
      maxAttempts,
      retryMode: "standard",
      // A connection that does not open in 10 s, or a socket silent for 2 min, fails the try
      // (and is retried) instead of hanging the checkpoint.
      requestHandler: { connectionTimeout: 10_000, socketTimeout: 120_000 },
    });
  }

  /** From HERD_S3_ENDPOINT, HERD_S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): S3 {
    const need = (name: string) => {
      const v = env[name];
      if (!v) throw new Error(`${name} is not set (see \`herd dev env\`)`);
      return v;
    };
    return new S3({
      endpoint: need("HERD_S3_ENDPOINT"),
      bucket: need("HERD_S3_BUCKET"),
      accessKeyId: need("AWS_ACCESS_KEY_ID"),
      secretAccessKey: need("AWS_SECRET_ACCESS_KEY"),
      region: env.AWS_REGION || "us-east-1",
    });
  }

  private get bucket() {
    return this.config.bucket;
  }

  /** Runs one SDK call; its error becomes an S3Error naming the call and the key. */
  private async call<T>(what: string, key: string | undefined, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw asS3Error(err, `S3 ${what} ${key ?? "(bucket)"}`);
    }
  }

  async put(key: string, body: Uint8Array | string): Promise<{ etag: string }> {
    requireKey(key);
    const r = await this.call("PUT", key, () =>
      this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body })),
    );
    return { etag: r.ETag ?? "" };
  }

  /**
   * Uploads a file without reading it into memory: one PUT up to the part size, a multipart
   * upload of parts in parallel above it (a failed upload aborts, leaving no parts behind).
   */
  async putFile(key: string, file: string): Promise<{ etag: string }> {
    requireKey(key);
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: createReadStream(file) },
      partSize: this.transfer.partSize,
      queueSize: this.transfer.concurrency,
      leavePartsOnError: false,
    });
    const r = await this.call("PUT", key, () => upload.done());
    return { etag: r.ETag ?? "" };
  }

  async get(key: string): Promise<Buffer> {
    const r = await this.call("GET", key, () =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })),
    );
    return Buffer.from(await r.Body!.transformToByteArray());
  }

  /**
   * Downloads an object into `file`: one GET up to the part size, ranged GETs in parallel
   * above it, each written at its offset and each pinned to the object's ETag. `known`, the
   * object as a list or head just returned it, saves asking for its size and ETag again.
   */
  async getFile(key: string, file: string, known?: Pick<S3Object, "size" | "etag">): Promise<void> {
    const head = known ?? (await this.head(key));
    if (!head) throw new S3Error(404, "NoSuchKey", `S3 GET ${key}: NoSuchKey: no such key`);
    const { partSize, concurrency } = this.transfer;
    const get = (range?: [number, number]) =>
      this.call("GET", key, () =>
        this.client.send(
          new GetObjectCommand({
            Bucket: this.bucket,
            Key: key,
            IfMatch: head.etag,
            ...(range && { Range: `bytes=${range[0]}-${range[1]}` }),
          }),
        ),
      );
    if (head.size <= partSize) {
      const r = await get();
      await pipeline(r.Body as Readable, createWriteStream(file));
      return;
    }
    const out = await open(file, "w");
    try {
      await out.truncate(head.size);
      const starts = Array.from(
        { length: Math.ceil(head.size / partSize) },
        (_, i) => i * partSize,
      );
      const next = () => starts.shift();
      const worker = async () => {
        for (let start = next(); start !== undefined; start = next()) {
          const end = Math.min(start + partSize, head.size) - 1;
          const r = await get([start, end]);
          let at = start;
          for await (const chunk of r.Body as Readable) {
            const b = chunk as Buffer;
            await out.write(b, 0, b.length, at);
            at += b.length;
          }
          if (at !== end + 1)
            throw new S3Error(
              0,
              "ShortRead",
              `S3 GET ${key}: bytes ${start}-${end} ended at ${at}`,
            );
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
    } finally {
      await out.close();
    }
  }

  /** The object's size and etag, or undefined when there is no such key. */
  async head(key: string): Promise<S3Object | undefined> {
    try {
      const r = await this.call("HEAD", key, () =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })),
      );
      return {
        key,
        size: r.ContentLength ?? 0,
        etag: r.ETag ?? "",
        lastModified: r.LastModified ?? new Date(0),
      };
    } catch (err) {
      if (err instanceof S3Error && err.status === 404) return undefined;
      throw err;
    }
  }

  /** Every object whose key starts with prefix, in key order (follows continuation tokens). */
  async list(prefix = ""): Promise<S3Object[]> {
    const out: S3Object[] = [];
    let token: string | undefined;
    do {
      const r = await this.call("LIST", prefix, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            ...(token && { ContinuationToken: token }),
          }),
        ),
      );
      for (const o of r.Contents ?? [])
        out.push({
          key: o.Key ?? "",
          size: o.Size ?? 0,
          etag: o.ETag ?? "",
          lastModified: o.LastModified ?? new Date(0),
        });
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /** Deletes the key; deleting a missing key is not an error (as in S3). */
  async delete(key: string): Promise<void> {
    requireKey(key);
    await this.call("DELETE", key, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })),
    );
  }

  /** Creates the configured bucket; an existing one that is ours is fine. */
  async createBucket(): Promise<void> {
    try {
      await this.call("PUT", undefined, () =>
        this.client.send(new CreateBucketCommand({ Bucket: this.bucket })),
      );
    } catch (err) {
      if (err instanceof S3Error && /BucketAlreadyOwnedByYou|BucketAlreadyExists/.test(err.code))
        return;
      throw err;
    }
  }
}

function requireKey(key: string) {
  if (key.length === 0) throw new Error("S3 key must not be empty");
}

/** An SDK error as an S3Error: the HTTP status and S3's error code, the call named. */
function asS3Error(err: unknown, what: string): Error {
  if (err instanceof S3Error) return err;
  if (err instanceof S3ServiceException) {
    const status = err.$metadata.httpStatusCode ?? 0;
    // HEAD answers have no body, so no code: the status says it.
    const code = err.name === "NotFound" || err.name === "Unknown" ? `HTTP${status}` : err.name;
    return new S3Error(
      status,
      code === "HTTP404" ? "NoSuchKey" : code,
      `${what}: ${code}: ${err.message}`,
    );
  }
  const e = err as Error;
  return new S3Error(0, e.name || "Error", `${what}: ${e.message}`);
}

/**
 * Copies s3://bucket/key to `dest` on this machine: the object of that key when there is one,
 * else every object under key/ as a folder (a herd checkpoint, a Hugging Face model folder).
 * Throws, naming the URI, when there is neither.
 */
export async function downloadUri(
  uri: string,
  config: Omit<S3Config, "bucket">,
  dest: string,
): Promise<void> {
  const { bucket, key } = parseS3Uri(uri);
  const s3 = new S3({ ...config, bucket });
  const name = key.replace(/\/+$/, "");
  mkdirSync(path.dirname(dest), { recursive: true });
  const single = name === "" ? undefined : await s3.head(name);
  if (single) {
    await s3.getFile(name, dest, single);
    return;
  }
  const prefix = name === "" ? "" : `${name}/`;
  const objects = await s3.list(prefix);
  if (objects.length === 0) throw new S3Error(404, "NoSuchKey", `${uri}: no such object or folder`);
  for (const o of objects) {
    const rel = o.key.slice(prefix.length);
    if (rel === "" || rel.endsWith("/") || rel.split("/").includes("..")) continue;
    const file = path.join(dest, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    await s3.getFile(o.key, file, o);
  }
}
