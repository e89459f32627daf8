// A small S3 client for checkpoint storage: put/get/head/list/delete on one bucket, path-style
// URLs, AWS Signature Version 4. Written here instead of depending on @aws-sdk/client-s3
// (about a hundred packages) because checkpoints need only these few calls, and the same
// code talks to SeaweedFS in tests and to AWS S3 or any S3-compatible store in production.
import { createHash, createHmac } from "node:crypto";
import { createReadStream, createWriteStream, mkdirSync, statSync } from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";

export interface S3Config {
  /** e.g. http://127.0.0.1:8333 or https://s3.eu-west-1.amazonaws.com */
  endpoint: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface S3Object {
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
}

/** A storage URI as a local path: undefined for s3:// (object storage), file:// stripped. */
export function localPathOf(uri: string): string | undefined {
  if (uri.startsWith("s3://")) return undefined;
  return uri.startsWith("file://") ? uri.slice("file://".length) : uri;
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

const sha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");
const hmac = (key: string | Buffer, data: string) =>
  createHmac("sha256", key).update(data).digest();
/** RFC 3986 encoding as SigV4 wants it: everything but unreserved characters. */
const encode = (s: string) =>
  encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );

type Body = Uint8Array | string | { stream: Readable; length: number };

export class S3 {
  constructor(readonly config: S3Config) {
    if (!/^https?:\/\//.test(config.endpoint)) {
      throw new Error(`S3 endpoint must be an http(s) URL, got '${config.endpoint}'`);
    }
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

  async put(key: string, body: Uint8Array | string): Promise<{ etag: string }> {
    const res = await this.request("PUT", key, {}, body);
    return { etag: res.headers.get("etag") ?? "" };
  }

  /** Uploads a file without reading it into memory (the payload goes unsigned). */
  async putFile(key: string, file: string): Promise<{ etag: string }> {
    const length = statSync(file).size;
    const res = await this.request("PUT", key, {}, { stream: createReadStream(file), length });
    return { etag: res.headers.get("etag") ?? "" };
  }

  async get(key: string): Promise<Buffer> {
    const res = await this.request("GET", key);
    return Buffer.from(await res.arrayBuffer());
  }

  async getFile(key: string, file: string): Promise<void> {
    const res = await this.request("GET", key);
    if (!res.body) throw new S3Error(res.status, "EmptyBody", `GET ${key}: no body`);
    await pipeline(Readable.fromWeb(res.body as WebReadableStream), createWriteStream(file));
  }

  /** The object's size and etag, or undefined when there is no such key. */
  async head(key: string): Promise<S3Object | undefined> {
    try {
      const res = await this.request("HEAD", key);
      return {
        key,
        size: Number(res.headers.get("content-length") ?? 0),
        etag: res.headers.get("etag") ?? "",
        lastModified: new Date(res.headers.get("last-modified") ?? 0),
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
      const query: Record<string, string> = { "list-type": "2", prefix };
      if (token) query["continuation-token"] = token;
      const xml = await (await this.request("GET", "", query)).text();
      for (const m of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        const field = (name: string) => tag(m[1] ?? "", name) ?? "";
        out.push({
          key: field("Key"),
          size: Number(field("Size")),
          etag: field("ETag"),
          lastModified: new Date(field("LastModified")),
        });
      }
      token = tag(xml, "IsTruncated") === "true" ? tag(xml, "NextContinuationToken") : undefined;
    } while (token);
    return out;
  }

  /** Deletes the key; deleting a missing key is not an error (as in S3). */
  async delete(key: string): Promise<void> {
    await this.request("DELETE", key);
  }

  /** Creates the configured bucket; an existing one that is ours is fine. */
  async createBucket(): Promise<void> {
    try {
      await this.request("PUT", undefined);
    } catch (err) {
      if (err instanceof S3Error && /BucketAlreadyOwnedByYou|BucketAlreadyExists/.test(err.code)) {
        return;
      }
      throw err;
    }
  }

  /** One signed request; key undefined addresses the bucket itself. */
  private async request(
    method: string,
    key: string | undefined,
    query: Record<string, string> = {},
    body?: Body,
  ): Promise<Response> {
    if (key !== undefined && key.length === 0 && method !== "GET") {
      throw new Error("S3 key must not be empty");
    }
    const base = new URL(this.config.endpoint);
    const basePath = base.pathname.replace(/\/$/, "");
    const objectPath = key ? `/${key.split("/").map(encode).join("/")}` : "";
    const canonicalUri = `${basePath}/${encode(this.config.bucket)}${objectPath}`;
    const canonicalQuery = Object.keys(query)
      .sort()
      .map((k) => `${encode(k)}=${encode(query[k] ?? "")}`)
      .join("&");
    const url = `${base.origin}${canonicalUri}${canonicalQuery ? `?${canonicalQuery}` : ""}`;

    const streamed = body !== undefined && typeof body === "object" && "stream" in body;
    const payload = streamed ? undefined : body;
    const payloadHash = streamed ? "UNSIGNED-PAYLOAD" : sha256(payload ?? "");
    const now = new Date()
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d{3}/, "");
    const date = now.slice(0, 8);
    const headers: Record<string, string> = {
      host: base.host,
      "x-amz-content-sha256": payloadHash,
      "x-amz-date": now,
    };
    const signed = Object.keys(headers).sort();
    const canonicalRequest = [
      method,
      canonicalUri,
      canonicalQuery,
      signed.map((h) => `${h}:${headers[h]}\n`).join(""),
      signed.join(";"),
      payloadHash,
    ].join("\n");
    const scope = `${date}/${this.config.region}/s3/aws4_request`;
    const stringToSign = ["AWS4-HMAC-SHA256", now, scope, sha256(canonicalRequest)].join("\n");
    let signingKey = hmac(`AWS4${this.config.secretAccessKey}`, date);
    for (const part of [this.config.region, "s3", "aws4_request"]) {
      signingKey = hmac(signingKey, part);
    }
    const signature = createHmac("sha256", signingKey).update(stringToSign).digest("hex");
    const sent: Record<string, string> = { ...headers };
    delete sent.host; // fetch sets Host itself, to the same value
    const init: RequestInit & { duplex?: "half" } = {
      method,
      headers: {
        ...sent,
        authorization:
          `AWS4-HMAC-SHA256 Credential=${this.config.accessKeyId}/${scope}, ` +
          `SignedHeaders=${signed.join(";")}, Signature=${signature}`,
      },
    };
    if (streamed) {
      init.body = Readable.toWeb(body.stream) as ReadableStream;
      (init.headers as Record<string, string>)["content-length"] = String(body.length);
      init.duplex = "half";
    } else if (payload !== undefined) {
      init.body = payload;
    }
    const res = await fetch(url, init);
    if (!res.ok) {
      const text = method === "HEAD" ? "" : await res.text();
      const code = tag(text, "Code") ?? `HTTP${res.status}`;
      const message = tag(text, "Message") ?? res.statusText;
      throw new S3Error(res.status, code, `S3 ${method} ${key ?? "(bucket)"}: ${code}: ${message}`);
    }
    return res;
  }
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
  if (name !== "" && (await s3.head(name))) {
    await s3.getFile(name, dest);
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
    await s3.getFile(o.key, file);
  }
}

function tag(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m?.[1]
    ?.replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_m, n: string) => String.fromCharCode(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_m, n: string) => String.fromCharCode(parseInt(n, 16)))
    .replace(/&amp;/g, "&");
}
