// Token shards: what is written reads back, and every kind of damage is a clear error that
// names the file and the byte offset — at open, on read, in the loader, and in `herd data verify`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createMixtureLoader, readShard, verifyShard, writeShard } from "../../native/data.ts";
import { root } from "./helpers.ts";

const herd = (...args: string[]) =>
  spawnSync(process.execPath, [path.join(root, "bin/herd.mjs"), ...args], { encoding: "utf8" });

const ids = Int32Array.from({ length: 1000 }, (_, i) => (i * 37) % 500);
const docStarts = [0, 10, 10, 400, 1000];

async function withShard(fn: (file: string, bytes: Buffer, dir: string) => Promise<void>) {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-shard-"));
  try {
    const file = path.join(dir, "shard-000000.bin");
    await writeShard(file, ids, docStarts, 500);
    await fn(file, readFileSync(file), dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Asserts the promise rejects with a message naming the file and offset, and matching `what`. */
async function rejectsAt(p: Promise<unknown>, file: string, offset: number, what: RegExp) {
  await assert.rejects(p, (err: Error) => {
    assert.ok(err.message.includes(file), `no file name in: ${err.message}`);
    assert.match(err.message, new RegExp(`at byte offset ${offset}\\b`));
    assert.match(err.message, what);
    return true;
  });
}

test("a written shard reads back: header, ids, document index, uint16 or uint32", async () => {
  await withShard(async (file, bytes) => {
    const s = await readShard(file);
    assert.deepEqual(
      [s.version, s.tokenBytes, s.tokens, s.docs, s.vocabSize],
      [1, 2, 1000, 4, 500],
    );
    assert.deepEqual([...s.ids], [...ids]);
    assert.deepEqual(s.docStarts, docStarts);
    assert.equal(bytes.subarray(0, 8).toString("latin1"), "HERDTOK\0");
    assert.equal(bytes.length, 64 + 2000 + 5 * 8);
    assert.equal((await verifyShard(file)).tokens, 1000);
  });
  const dir = mkdtempSync(path.join(tmpdir(), "herd-shard-"));
  try {
    const wide = Int32Array.from([0, 70000, 99999, 5]);
    const file = path.join(dir, "wide.bin");
    await writeShard(file, wide, [0, 4], 100000);
    const s = await readShard(file);
    assert.equal(s.tokenBytes, 4);
    assert.deepEqual([...s.ids], [...wide]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a truncated shard names the file and the offset where it ends", async () => {
  await withShard(async (file, bytes) => {
    for (const cut of [1500, 30, 0]) {
      writeFileSync(file, bytes.subarray(0, cut));
      await rejectsAt(readShard(file), file, cut, /truncated/);
    }
  });
});

test("damaged headers and indexes name the field's offset", async () => {
  await withShard(async (file, bytes) => {
    const damaged = (offset: number, value: number, width: 1 | 4 | 8 = 1) => {
      const b = Buffer.from(bytes);
      if (width === 1) b[offset] = value;
      else if (width === 4) b.writeUInt32LE(value, offset);
      else b.writeBigUInt64LE(BigInt(value), offset);
      writeFileSync(file, b);
    };
    damaged(0, 0x58);
    await rejectsAt(readShard(file), file, 0, /bad magic/);
    damaged(8, 7, 4);
    await rejectsAt(readShard(file), file, 8, /unsupported version 7/);
    damaged(12, 3, 4);
    await rejectsAt(readShard(file), file, 12, /token width 3/);
    damaged(16, 2000, 8); // more tokens than the file holds
    await rejectsAt(readShard(file), file, bytes.length, /truncated/);
    const index = 64 + 2000;
    damaged(index + 2 * 8, 5, 8); // document 2 starts before document 1
    await rejectsAt(readShard(file), file, index + 16, /document index entry 2 is 5/);
    writeFileSync(file, Buffer.concat([bytes, Buffer.from([1, 2, 3])]));
    await rejectsAt(readShard(file), file, bytes.length, /trailing bytes/);
  });
});

test("an id outside the vocabulary names its offset in readShard, verify and the loader", async () => {
  await withShard(async (file, bytes, dir) => {
    const b = Buffer.from(bytes);
    b.writeUInt16LE(60000, 64 + 2 * 123);
    writeFileSync(file, b);
    await rejectsAt(
      readShard(file),
      file,
      64 + 246,
      /token id 60000 is not below the vocab size 500/,
    );
    await rejectsAt(verifyShard(file), file, 64 + 246, /token id 60000/);
    const loader = createMixtureLoader({
      sources: [{ name: "only", weight: 1, folder: dir }],
      seed: 1,
    });
    // Rows of 1000 tokens must cover the whole shard, so the bad id is read.
    await rejectsAt(loader.batch(0, 0, 1, 1, 998), file, 64 + 246, /token id 60000/);
  });
});

test("a flipped bit inside the vocabulary fails the payload hash in verify", async () => {
  await withShard(async (file, bytes) => {
    const b = Buffer.from(bytes);
    b[64 + 500] = b[64 + 500]! ^ 0x01;
    writeFileSync(file, b);
    await readShard(file); // structurally fine, ids in range
    await rejectsAt(verifyShard(file), file, 64, /payload hash mismatch/);
    const r = herd("data", "verify", path.dirname(file));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /FAILED shard .*shard-000000\.bin: payload hash mismatch/);
  });
});

test("herd data verify passes a good shard", async () => {
  await withShard(async (file) => {
    const r = herd("data", "verify", file);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ok .*shard-000000\.bin: 1000 tokens, 4 docs, vocab 500/);
  });
});

test("a missing shard or folder is a clear error", async () => {
  await assert.rejects(
    readShard("/nonexistent/shard-000000.bin"),
    /shard \/nonexistent\/shard-000000\.bin: cannot open/,
  );
  assert.throws(
    () => createMixtureLoader({ sources: [{ name: "x", weight: 1, folder: "/nonexistent" }] }),
    /shard folder \/nonexistent does not exist/,
  );
});

test("random damage and truncation: every read either succeeds or names the file", async () => {
  await withShard(async (file, bytes, dir) => {
    let seed = 99;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
    let refused = 0;
    for (let t = 0; t < 200; t++) {
      const b = Buffer.from(bytes.subarray(0, t % 5 === 0 ? rnd() % bytes.length : bytes.length));
      for (let j = 0; j < 1 + (rnd() % 4); j++) if (b.length > 0) b[rnd() % b.length] = rnd() % 256;
      writeFileSync(file, b);
      for (const attempt of [
        () => verifyShard(file),
        () =>
          createMixtureLoader({ sources: [{ name: "s", weight: 1, folder: dir }] }).batch(
            0,
            0,
            1,
            4,
            100,
          ),
      ]) {
        try {
          await attempt();
        } catch (err) {
          assert.ok((err as Error).message.includes(file), (err as Error).message);
          refused++;
        }
      }
    }
    assert.ok(refused > 200, `only ${refused} of 400 damaged reads refused`);
  });
});
