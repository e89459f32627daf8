// Shards in the real S3 store (SeaweedFS of the local control plane), read through herd's S3
// client and the local cache, give the same batches as the same shards on a folder.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { writeShard } from "../../native/data.ts";
import { openMixture, s3ObjectClient } from "../../workers/shard-store.ts";
import { cluster, unique } from "../cluster/harness.ts";

test("a mixture over shards in the S3 store equals the same mixture over a folder", async () => {
  const c = await cluster();
  const dir = mkdtempSync(path.join(tmpdir(), "herd-s3-shards-"));
  try {
    const local = path.join(dir, "web");
    mkdirSync(local);
    for (let i = 0; i < 2; i++) {
      const ids = Int32Array.from({ length: 900 }, (_, j) => (i * 900 + j * 7) % 32000);
      await writeShard(path.join(local, `shard-00000${i}.bin`), ids, [0, 400, 900], 32000);
    }
    writeFileSync(path.join(local, "meta.json"), JSON.stringify({ tokenizer: { sha256: "ab" } }));

    const s3 = c.s3Client();
    const prefix = `${unique("shards")}/web/`;
    for (const name of readdirSync(local)) await s3.putFile(prefix + name, path.join(local, name));

    const { bucket, ...config } = c.s3;
    const cacheDir = path.join(dir, "cache");
    const uri = `s3://${bucket}/${prefix}`;
    const fromS3 = await openMixture([{ name: "web", weight: 1, uri }], 11, {
      s3: s3ObjectClient(config),
      cacheDir,
    });
    const fromFolder = await openMixture([{ name: "web", weight: 1, uri: local }], 11);
    for (const step of [0, 1, 5])
      assert.deepEqual(
        await fromS3.batch(step, 0, 1, 4, 64),
        await fromFolder.batch(step, 0, 1, 4, 64),
      );
    // The shards were downloaded into the cache, under bucket/key.
    assert.deepEqual(
      readdirSync(path.join(cacheDir, bucket, prefix))
        .filter((f) => f.endsWith(".bin"))
        .sort(),
      ["shard-000000.bin", "shard-000001.bin"],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
