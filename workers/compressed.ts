// Compressed input files, read as if they were plain: `NAME.gz` (gzip) and `NAME.zst` (zstd).
// A corpus, a `herd data prepare` input, a tokenizer-training input and an evaluation task file
// may each be stored compressed (data/ keeps its large text files so); every reader of such a
// file goes through here, so each accepts both forms. The extension decides, as it does for
// gzip(1) and zstd(1): a file named .gz that is not gzip fails with a message naming it.
// Node 20 has gzip but not zstd in zlib; fzstd is a small, dependency-free zstd decoder.
import { readFileSync, createReadStream } from "node:fs";
import { PassThrough, pipeline, Transform, type Readable } from "node:stream";
import { createGunzip, gunzipSync } from "node:zlib";
import { Decompress, decompress as zstdDecompress } from "fzstd";

export type Compression = "gzip" | "zstd" | "none";

/** The compression a file's name says it has. */
export function compressionOf(file: string): Compression {
  if (/\.gz$/i.test(file)) return "gzip";
  if (/\.zst$/i.test(file)) return "zstd";
  return "none";
}

/** The file's name without its compression extension (`a.jsonl.gz` → `a.jsonl`). */
export function uncompressedName(file: string): string {
  return compressionOf(file) === "none" ? file : file.replace(/\.(gz|zst)$/i, "");
}

function failed(file: string, c: Compression, err: unknown): Error {
  return new Error(`${file}: not a valid ${c} file (${(err as Error).message})`);
}

/** The whole file's bytes, decompressed. */
export function readDecompressed(file: string): Buffer {
  const c = compressionOf(file);
  const raw = readFileSync(file);
  try {
    if (c === "gzip") return gunzipSync(raw);
    if (c === "zstd") {
      const out = zstdDecompress(raw);
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    }
  } catch (err) {
    throw failed(file, c, err);
  }
  return raw;
}

/** The whole file as UTF-8 text, decompressed. */
export function readTextDecompressed(file: string): string {
  return readDecompressed(file).toString("utf8");
}

// fzstd's streaming decoder as a Transform: each input chunk yields the pieces it completes.
function zstdStream(): Transform {
  const pieces: Buffer[] = [];
  const decoder = new Decompress((piece) => pieces.push(Buffer.from(piece)));
  const step = (t: Transform, chunk: Uint8Array, final: boolean, done: (e?: Error) => void) => {
    try {
      decoder.push(chunk, final);
    } catch (err) {
      return done(err as Error);
    }
    for (const piece of pieces.splice(0)) t.push(piece);
    done();
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      step(this, chunk, false, done);
    },
    flush(done) {
      step(this, new Uint8Array(0), true, done);
    },
  });
}

/** A stream of the file's decompressed bytes, for files too large to hold at once. */
export function createDecompressedStream(file: string): Readable {
  const c = compressionOf(file);
  if (c === "none") return createReadStream(file);
  const decoder = c === "gzip" ? createGunzip() : zstdStream();
  const out = new PassThrough();
  // errors reach the reader through `out`, naming the file as readDecompressed does
  pipeline(createReadStream(file), decoder, (err) => {
    if (err) out.destroy("code" in err && err.code === "ENOENT" ? err : failed(file, c, err));
  });
  decoder.pipe(out);
  return out;
}
