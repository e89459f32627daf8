// Objects round-trip through the dev server's S3 store with workers/s3.ts (the AWS SDK):
// single and multipart uploads, ranged downloads, retries of a throttling store, the
// credential chain, and a file past 4 GiB.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  createReadStream,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { S3, S3Error } from "../../workers/s3.ts";
import { cluster, unique } from "./harness.ts";

let s3: S3;
let prefix: string;
let tmp: string;
before(async () => {
  s3 = (await cluster()).s3Client();
  prefix = `${unique("s3-test")}/`;
  tmp = mkdtempSync(path.join(os.tmpdir(), "herd-s3-"));
});
after(async () => {
  for (const o of await s3.list(prefix)) await s3.delete(o.key);
  rmSync(tmp, { recursive: true, force: true });
});

test("an object round-trips: put, head, list, get, delete", async () => {
  const body = randomBytes(100_000);
  const key = `${prefix}step-000000001/model weights+1.safetensors`;
  await s3.put(key, body);
  const head = await s3.head(key);
  assert.equal(head?.size, body.length);
  const listed = await s3.list(prefix);
  assert.deepEqual(
    listed.map((o) => [o.key, o.size]),
    [[key, body.length]],
  );
  assert.equal(listed[0]?.etag, head?.etag);
  assert.ok((await s3.get(key)).equals(body));
  await s3.delete(key);
  assert.equal(await s3.head(key), undefined);
  assert.deepEqual(await s3.list(prefix), []);
});

test("files stream both ways", async () => {
  const body = randomBytes(9 * 1024 * 1024 + 17); // more than SeaweedFS's 4 MiB chunks
  const src = path.join(tmp, "src.bin");
  const dst = path.join(tmp, "dst.bin");
  writeFileSync(src, body);
  await s3.putFile(`${prefix}big.bin`, src);
  await s3.getFile(`${prefix}big.bin`, dst);
  assert.ok(readFileSync(dst).equals(body));
});

test("a missing key and a wrong secret are errors that say so", async () => {
  await assert.rejects(s3.get(`${prefix}missing`), (err: unknown) => {
    return err instanceof S3Error && err.status === 404 && err.code === "NoSuchKey";
  });
  const wrong = new S3({ ...s3.config, secretAccessKey: "not-the-secret" });
  await assert.rejects(wrong.put(`${prefix}x`, "x"), /SignatureDoesNotMatch/);
});

/**
 * An HTTP proxy in front of the store that records each request's method, URL and headers and
 * answers the first `failFirst` requests itself with 503 SlowDown, as a throttling S3 does.
 */
async function recordingProxy(target: string, failFirst = 0) {
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers });
    if (seen.length <= failFirst) {
      req.resume();
      res.writeHead(503, { "content-type": "application/xml" });
      res.end(
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
      );
      return;
    }
    const up = http.request(
      new URL(req.url!, target),
      { method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      },
    );
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}`, seen, close: () => server.close() };
}

test("multipart: a file over the part size goes up in parallel parts with CRC32 checksums and comes down by ranges", async () => {
  const proxy = await recordingProxy(s3.config.endpoint!);
  try {
    const parts = new S3(
      { ...s3.config, endpoint: proxy.endpoint },
      { partSize: 5 << 20, concurrency: 3 },
    );
    const body = randomBytes((23 << 20) + 5);
    const src = path.join(tmp, "multi.bin");
    const dst = path.join(tmp, "multi.out");
    writeFileSync(src, body);
    const key = `${prefix}multi.bin`;
    const { etag } = await parts.putFile(key, src);
    // A multipart object's ETag ends in its part count.
    assert.match(etag, /-5"?$/);
    const uploads = proxy.seen.filter((r) => r.method === "PUT" && /partNumber=/.test(r.url));
    assert.equal(uploads.length, 5);
    for (const u of uploads)
      assert.ok(
        u.headers["x-amz-checksum-crc32"] ?? u.headers["x-amz-trailer"],
        `part ${u.url} carries a CRC32 checksum: ${JSON.stringify(u.headers)}`,
      );
    await parts.getFile(key, dst);
    assert.ok(readFileSync(dst).equals(body));
    const ranges = proxy.seen.filter((r) => r.method === "GET" && r.headers.range);
    assert.deepEqual(
      ranges.map((r) => r.headers.range).sort(),
      [0, 1, 2, 3, 4]
        .map((i) => `bytes=${i * (5 << 20)}-${Math.min((i + 1) * (5 << 20), body.length) - 1}`)
        .sort(),
    );
    assert.ok(
      ranges.every((r) => r.headers["if-match"]),
      "each range is pinned to the ETag",
    );
  } finally {
    proxy.close();
  }
});

test("a throttling store (503 SlowDown) is retried with back-off; a lasting one fails naming it", async () => {
  const flaky = await recordingProxy(s3.config.endpoint!, 3);
  try {
    const client = new S3({ ...s3.config, endpoint: flaky.endpoint });
    await client.put(`${prefix}retried`, "x");
    assert.equal(flaky.seen.length, 4, "three 503s, then the PUT that succeeded");
    assert.equal((await s3.get(`${prefix}retried`)).toString(), "x");
  } finally {
    flaky.close();
  }
  const down = await recordingProxy(s3.config.endpoint!, 1000);
  try {
    const client = new S3({ ...s3.config, endpoint: down.endpoint });
    await assert.rejects(client.put(`${prefix}never`, "x"), (err: unknown) => {
      return err instanceof S3Error && err.status === 503 && /SlowDown/.test(err.message);
    });
    assert.equal(down.seen.length, 5, "the first try and four retries");
  } finally {
    down.close();
  }
});

test("no keys in the config: the SDK's credential chain finds them (here in the environment)", async () => {
  const saved = { ...process.env };
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: s3.config.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.config.secretAccessKey,
  });
  try {
    const { endpoint, region, bucket } = s3.config;
    const chained = new S3({ endpoint, region, bucket });
    await chained.put(`${prefix}chained`, "via the chain");
    assert.equal((await s3.get(`${prefix}chained`)).toString(), "via the chain");
  } finally {
    process.env = saved;
  }
});

test("past 4 GiB: a 4.5 GiB file up in 64 MiB parts and down by ranges, SHA-256 equal", async () => {
  const size = 4.5 * (1 << 30);
  const src = path.join(tmp, "huge.bin");
  const dst = path.join(tmp, "huge.out");
  // 1 MiB of random bytes, each copy with its index stamped in, so no two MiB are alike.
  const block = randomBytes(1 << 20);
  const sent = createHash("sha256");
  const out = openSync(src, "w");
  for (let i = 0; i < size / block.length; i++) {
    block.writeUInt32LE(i, 0);
    writeSync(out, block);
    sent.update(block);
  }
  closeSync(out);
  try {
    const key = `${prefix}huge.bin`;
    const { etag } = await s3.putFile(key, src);
    assert.match(etag, /-72"?$/, "72 parts of 64 MiB");
    rmSync(src);
    await s3.getFile(key, dst);
    const got = createHash("sha256");
    for await (const chunk of createReadStream(dst)) got.update(chunk as Buffer);
    assert.equal(got.digest("hex"), sent.digest("hex"));
    await s3.delete(key);
  } finally {
    rmSync(src, { force: true });
    rmSync(dst, { force: true });
  }
});
