// Shard sources on a mounted folder or in S3 behind a local cache. The S3 client is injected
// (workers/s3.ts provides the real one); here a client that serves a local folder as a bucket
// stands in for it, and counts what it is asked, so the cache's behaviour can be checked.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createMixtureLoader, writeShard } from "../../native/data.ts";
import { openMixture, resolveShardSource, type S3ObjectClient } from "../../workers/shard-store.ts";

class FolderBucketClient implements S3ObjectClient {
  gets: string[] = [];
  shortBy = 0;
  constructor(private readonly root: string) {}
  async listObjects(bucket: string, prefix: string) {
    const dir = path.join(this.root, bucket, prefix);
    return readdirSync(dir).map((name) => {
      const bytes = readFileSync(path.join(dir, name));
      return {
        key: prefix + name,
        size: bytes.length,
        etag: createHash("md5").update(bytes).digest("hex"),
      };
    });
  }
  async getObject(bucket: string, key: string) {
    this.gets.push(key);
    const bytes = readFileSync(path.join(this.root, bucket, key));
    const body = bytes.subarray(0, bytes.length - this.shortBy);
    // Streamed in small chunks, as a network body would be.
    return (async function* () {
      for (let i = 0; i < body.length; i += 1000) yield body.subarray(i, i + 1000);
    })();
  }
}

async function makeFolder(dir: string, base: number, tokenizerSha: string) {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 3; i++) {
    const ids = Int32Array.from({ length: 700 }, (_, j) => base + ((i * 700 + j) % 1000));
    await writeShard(path.join(dir, `shard-00000${i}.bin`), ids, [0, 300, 700], 32000);
  }
  writeFileSync(
    path.join(dir, "meta.json"),
    JSON.stringify({ tokenizer: { sha256: tokenizerSha } }),
  );
}

test("a local shard folder resolves to its shards in order, and opens as a mixture", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-store-"));
  try {
    await makeFolder(path.join(dir, "a"), 0, "aa");
    await makeFolder(path.join(dir, "b"), 5000, "aa");
    const files = await resolveShardSource(path.join(dir, "a"));
    assert.deepEqual(
      files.shards.map((f) => path.basename(f)),
      ["shard-000000.bin", "shard-000001.bin", "shard-000002.bin"],
    );
    assert.equal(files.meta?.tokenizer?.sha256, "aa");
    const mixed = await openMixture(
      [
        { name: "a", weight: 3, uri: path.join(dir, "a") },
        { name: "b", weight: 1, uri: `file://${path.join(dir, "b")}` },
      ],
      1,
    );
    const direct = createMixtureLoader({
      sources: [
        { name: "a", weight: 3, folder: path.join(dir, "a") },
        { name: "b", weight: 1, folder: path.join(dir, "b") },
      ],
      seed: 1,
    });
    assert.deepEqual(await mixed.batch(3, 0, 1, 8, 16), await direct.batch(3, 0, 1, 8, 16));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("S3 shards are fetched once into the cache, refetched when changed, never left half-written", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-store-"));
  try {
    const buckets = path.join(dir, "buckets");
    const cacheDir = path.join(dir, "cache");
    await makeFolder(path.join(buckets, "data/web"), 0, "aa");
    await makeFolder(path.join(buckets, "data/books"), 5000, "aa");
    cpSync(path.join(buckets, "data"), path.join(dir, "local"), { recursive: true });
    const sources = [
      { name: "web", weight: 2, uri: "s3://data/web/" },
      { name: "books", weight: 1, uri: "s3://data/books" },
    ];
    const client = new FolderBucketClient(buckets);
    const loader = await openMixture(sources, 4, { s3: client, cacheDir });
    assert.equal(client.gets.length, 8); // 3 shards + meta.json, per source
    const local = createMixtureLoader({
      sources: [
        { name: "web", weight: 2, folder: path.join(dir, "local/web") },
        { name: "books", weight: 1, folder: path.join(dir, "local/books") },
      ],
      seed: 4,
    });
    assert.deepEqual(await loader.batch(0, 0, 1, 16, 32), await local.batch(0, 0, 1, 16, 32));
    assert.equal(statSync(path.join(cacheDir, "data/web/shard-000001.bin")).size, 64 + 1400 + 24);

    // A second trainer on this node: everything from the cache.
    client.gets = [];
    await openMixture(sources, 4, { s3: client, cacheDir });
    assert.deepEqual(client.gets, []);

    // One object changes in the bucket: only it is fetched again.
    const changed = Int32Array.from({ length: 700 }, (_, j) => 9000 + j);
    await writeShard(path.join(buckets, "data/web/shard-000001.bin"), changed, [0, 700], 32000);
    const again = await openMixture(sources, 4, { s3: client, cacheDir });
    assert.deepEqual(client.gets, ["web/shard-000001.bin"]);
    assert.notDeepEqual(await again.batch(0, 0, 1, 16, 32), await local.batch(0, 0, 1, 16, 32));

    // A body shorter than the listing: an error naming the object, nothing left behind.
    rmSync(cacheDir, { recursive: true, force: true });
    client.shortBy = 10;
    await assert.rejects(
      openMixture(sources, 4, { s3: client, cacheDir }),
      /s3:\/\/data\/web\/shard-000000\.bin: downloaded 1478 bytes, the store lists 1488/,
    );
    assert.deepEqual(readdirSync(path.join(cacheDir, "data/web")), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sources from different tokenizers, or S3 without a client, are refused", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-store-"));
  try {
    await makeFolder(path.join(dir, "a"), 0, "aaaa");
    await makeFolder(path.join(dir, "b"), 0, "bbbb");
    await assert.rejects(
      openMixture(
        [
          { name: "a", weight: 1, uri: path.join(dir, "a") },
          { name: "b", weight: 1, uri: path.join(dir, "b") },
        ],
        0,
      ),
      /source b .* was tokenized with bbbb…, .* with aaaa…: mix only shards of one tokenizer/,
    );
    await assert.rejects(
      resolveShardSource("s3://bucket/x"),
      /needs an S3 client and a cache folder/,
    );
    await assert.rejects(resolveShardSource(path.join(dir, "nope")), /does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a meta.json of the wrong shape is an error naming the file and the field", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-store-"));
  try {
    await makeFolder(dir, 0, "aa");
    const meta = path.join(dir, "meta.json");
    for (const [content, field] of [
      ["[1, 2]", /not a JSON object/],
      ['{"tokenizer": 7}', /tokenizer must be an object/],
      ['{"tokenizer": {"sha256": 12}}', /tokenizer\.sha256 must be a string/],
      [
        '{"tokenizer": {"sha256": "aa", "vocabSize": 1.5}}',
        /tokenizer\.vocabSize must be an integer/,
      ],
    ] as const) {
      writeFileSync(meta, content);
      await assert.rejects(resolveShardSource(dir), (err: Error) => {
        assert.ok(err.message.startsWith(meta), err.message);
        assert.match(err.message, field);
        return true;
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
