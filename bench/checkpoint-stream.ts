// Checkpoint write and resume speed against the disk's own: a trainer of about P million
// parameters (default 150: 0.6 GB per tensor set, files of 0.6 and 1.2 GB) saves a checkpoint
// through the protocol (engine → 16 MiB chunks → file, SHA-256 while writing, fsync), then
// verifies it (SHA-256 read in chunks) and streams it back into the engine. The baselines, in
// the same run and on the same disk: the same byte count written from one JavaScript buffer
// with one fsync (the best of one run before and two after the checkpoint, so none pays
// alone for a cold disk), SHA-256 of bytes in memory (the hash's own speed, which bounds
// verification), and reading the checkpoint's files back (as cached as the load's reads).
// Also the process's memory growth while saving, which streaming keeps to the chunk, and the
// training stall of an asynchronous checkpoint (Trainer.snapshot(): the state copied in memory,
// written while training goes on) against an in-memory copy of as many bytes (Buffer.copy of
// 256 MiB, scaled) and against the synchronous save.
//
//   node --import tsx bench/checkpoint-stream.ts [--millions 150] [--dir /tmp]
import { createHash } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { engine } from "../native/engine.ts";
import { saveCheckpoint, verifyCheckpoint } from "../workers/trainer/checkpoint.ts";
import {
  engineCheckpointReader,
  engineSafetensors,
  modelSets,
  optimizerSets,
} from "../workers/trainer/engine-checkpoint.ts";
import { largeModelOptions } from "../test/engine/fixtures.ts";

const { values } = parseArgs({
  options: {
    millions: { type: "string", default: "150" },
    dir: { type: "string", default: "/tmp" },
  },
});
const dim = 1024;
// A layer has 4·dim² attention and 3·dim·ffn feed-forward weights (ffn = 2.75·dim).
const perLayer = 4 * dim * dim + 3 * dim * 2816;
const layers = Math.max(1, Math.round((Number(values.millions) * 1e6) / perLayer));
const trainer = engine.createTrainer(largeModelOptions(dim, layers));
const parameters = trainer.layout().reduce((n, t) => n + t.size, 0);
const bytes = parameters * 4 * 3; // params, m and v
const dir = mkdtempSync(path.join(values.dir!, "herd-bench-ckpt-"));
const seconds = (since: bigint) => Number(process.hrtime.bigint() - since) / 1e9;

/** Seconds to write `bytes` from one buffer, 16 MiB a call, then fsync once. */
function rawWrite(file: string): number {
  const block = Buffer.alloc(16 << 20, 7);
  const t0 = process.hrtime.bigint();
  const fd = openSync(file, "w");
  for (let left = bytes; left > 0; left -= block.length)
    writeSync(fd, block, 0, Math.min(block.length, left));
  fsyncSync(fd);
  closeSync(fd);
  rmSync(file);
  return seconds(t0);
}

/** Seconds to read every file of a folder, 16 MiB a call. */
function rawRead(folder: string): number {
  const block = Buffer.alloc(16 << 20);
  const t0 = process.hrtime.bigint();
  for (const name of readdirSync(folder)) {
    const fd = openSync(path.join(folder, name), "r");
    while (readSync(fd, block, 0, block.length, null) > 0);
    closeSync(fd);
  }
  return seconds(t0);
}

try {
  const raw = path.join(dir, "raw.bin");
  const writeBefore = rawWrite(raw);
  const rss0 = process.memoryUsage().rss;
  let t0 = process.hrtime.bigint();
  const written = saveCheckpoint(
    dir,
    1,
    {
      "model.safetensors": engineSafetensors(trainer, modelSets, {}),
      "optimizer.safetensors": engineSafetensors(trainer, optimizerSets, {}),
      "trainer.json": "{}\n",
    },
    1,
  );
  const save = seconds(t0);
  const rssGrowth = process.memoryUsage().rss - rss0;
  const disk = Math.min(writeBefore, rawWrite(raw), rawWrite(raw));
  const hashBlock = Buffer.alloc(256 << 20, 3);
  t0 = process.hrtime.bigint();
  createHash("sha256").update(hashBlock).digest();
  const hashRate = hashBlock.length / 1e9 / seconds(t0);
  t0 = process.hrtime.bigint();
  const files = verifyCheckpoint(written, ["model.safetensors", "optimizer.safetensors"]);
  const verify = seconds(t0);
  const read = rawRead(written);
  t0 = process.hrtime.bigint();
  engineCheckpointReader(files, trainer)();
  const load = seconds(t0);
  // The first snapshot also allocates its copies; later ones reuse them (the trainer keeps them).
  t0 = process.hrtime.bigint();
  trainer.snapshot();
  const firstStall = seconds(t0);
  trainer.releaseSnapshot();
  t0 = process.hrtime.bigint();
  trainer.snapshot();
  const stall = seconds(t0);
  trainer.releaseSnapshot();
  const from = Buffer.alloc(256 << 20, 5),
    to = Buffer.alloc(256 << 20);
  from.copy(to); // first touch
  t0 = process.hrtime.bigint();
  for (let i = 0; i < 4; i++) from.copy(to);
  const copy = (seconds(t0) / 4) * (bytes / from.length);

  const gb = bytes / 1e9;
  const rate = (s: number) => `${(gb / s).toFixed(2)} GB/s`;
  const line = (what: string, s: number, extra = "") =>
    console.log(`${what.padEnd(24)}${s.toFixed(1).padStart(6)} s  ${rate(s).padEnd(11)}${extra}`);
  console.log(`model: ${(parameters / 1e6).toFixed(0)}M parameters, ${gb.toFixed(2)} GB of files`);
  line("disk write (baseline)", disk);
  line("checkpoint save", save, `  ${(disk / save).toFixed(2)} of the disk's rate`);
  console.log(`${"SHA-256 in memory".padEnd(24)}${"".padStart(6)}    ${hashRate.toFixed(2)} GB/s`);
  line(
    "verify (SHA-256, reads)",
    verify,
    `  ${(gb / verify / hashRate).toFixed(2)} of the hash's rate`,
  );
  line("read files (baseline)", read);
  line("stream into engine", load, `  ${(read / load).toFixed(2)} of the read rate`);
  line("in-memory copy (baseline)", copy);
  line("async stall, first", firstStall, "  (allocates the snapshot)");
  line(
    "async stall (snapshot)",
    stall,
    `  ${(stall / copy).toFixed(2)}× the copy's time, ${(stall / save).toFixed(3)} of the synchronous save's`,
  );
  console.log(
    `memory growth saving:   ${(rssGrowth / 2 ** 20).toFixed(0)} MiB (files ${(bytes / 2 ** 20).toFixed(0)} MiB)`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
