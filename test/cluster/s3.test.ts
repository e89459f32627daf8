// Objects round-trip through the dev server's S3 store with workers/s3.ts.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { S3, S3Error } from "../../workers/s3.ts";
import { cluster, unique } from "./harness.ts";

let s3: S3;
let prefix: string;
let tmp: string;
before(async () => {
  s3 = new S3((await cluster()).s3);
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
