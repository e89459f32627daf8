// Compressed inputs (workers/compressed.ts): gzip and zstd files read back byte for byte, whole
// and streamed, and a file whose name says compressed but whose bytes are not fails naming it.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { gzipSync } from "node:zlib";
import {
  compressionOf,
  createDecompressedStream,
  readDecompressed,
  uncompressedName,
} from "../../workers/compressed.ts";
import { readMultipleChoice } from "../../workers/eval/documents.ts";

const dir = mkdtempSync(path.join(tmpdir(), "herd-compressed-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// 3 MB of text with multi-byte characters, so stream chunks split characters and lines.
const lines = Array.from(
  { length: 40000 },
  (_, i) => `line ${i}: café ü 日本 🎉 ${"x".repeat(i % 50)}`,
);
const text = Buffer.from(lines.join("\n") + "\n");

function files(): { plain: string; gzip: string; zstd: string } {
  const plain = path.join(dir, "a.txt");
  writeFileSync(plain, text);
  writeFileSync(`${plain}.gz`, gzipSync(text));
  // the zstd CLI (a Debian package the test provisioning installs) makes the .zst
  execFileSync("zstd", ["-q", "-f", "-3", plain, "-o", `${plain}.zst`]);
  return { plain, gzip: `${plain}.gz`, zstd: `${plain}.zst` };
}

async function streamed(file: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of createDecompressedStream(file)) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

test("the extension names the compression", () => {
  assert.equal(compressionOf("x/a.jsonl.gz"), "gzip");
  assert.equal(compressionOf("a.TXT.ZST"), "zstd");
  assert.equal(compressionOf("a.gzip.txt"), "none");
  assert.equal(uncompressedName("d/hellaswag-val.jsonl.gz"), "d/hellaswag-val.jsonl");
});

test("gzip, zstd and plain files read back the same bytes, whole and streamed", async () => {
  for (const [kind, file] of Object.entries(files())) {
    assert.ok(readDecompressed(file).equals(text), `${kind}: whole read differs`);
    assert.ok((await streamed(file)).equals(text), `${kind}: streamed read differs`);
  }
});

test("a task file reads the same compressed as plain", () => {
  const items = Array.from({ length: 50 }, (_, i) => ({
    context: `Question ${i}: ünïcode?`,
    choices: ["yes", "no", `maybe ${i}`],
    label: i % 3,
  }));
  const jsonl = items.map((x) => JSON.stringify(x)).join("\n");
  const plain = path.join(dir, "task.jsonl");
  writeFileSync(plain, jsonl);
  writeFileSync(`${plain}.gz`, gzipSync(jsonl));
  assert.deepEqual(readMultipleChoice(`${plain}.gz`, 20), readMultipleChoice(plain, 20));
  assert.equal(readMultipleChoice(`${plain}.gz`).length, 50);
});

test("a file named .gz or .zst that is not fails, naming the file", async () => {
  const notGzip = path.join(dir, "plain.txt.gz");
  writeFileSync(notGzip, "just text\n");
  assert.throws(() => readDecompressed(notGzip), /plain\.txt\.gz: not a valid gzip file/);
  await assert.rejects(streamed(notGzip), /plain\.txt\.gz: not a valid gzip file/);

  const { zstd } = files();
  const truncated = path.join(dir, "cut.txt.zst");
  const whole = readFileSync(zstd);
  writeFileSync(truncated, whole.subarray(0, whole.length >> 1));
  assert.throws(() => readDecompressed(truncated), /cut\.txt\.zst: not a valid zstd file/);
  await assert.rejects(streamed(truncated), /cut\.txt\.zst: not a valid zstd file/);
  assert.ok(readDecompressed(zstd).equals(text));

  await assert.rejects(streamed(path.join(dir, "missing.gz")), /ENOENT/);
});
