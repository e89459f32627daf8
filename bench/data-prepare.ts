// Benchmark (not a test): `herd data prepare` throughput in MB of input text per second,
// beside `spm_encode` (Debian's SentencePiece command) on the same input and model.
// spm_encode has no thread option and encodes line by line on one core, so the comparison
// is prepare with --threads 1 and --text-split line and no filters, dedup, BOS or EOS: the
// same work. Prepare on every core is printed too. Both token counts are printed as a check.
//
//   node --import tsx bench/data-prepare.ts [copies of the corpus, default 4]
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { prepare } from "../cli/data.ts";
import { dataDir, llamaModel } from "../test/data/files.ts";
import { readTextDecompressed } from "../workers/compressed.ts";

const model = llamaModel;
const copies = Number(process.argv[2] ?? 4);

const dir = mkdtempSync(path.join(tmpdir(), "herd-bench-"));
try {
  const corpus = ["tinyshakespeare.txt.gz", "corpus.en.txt.gz", "tinystories_sample.txt"]
    .map((f) => readTextDecompressed(path.join(dataDir, "corpus", f)))
    .join("\n");
  const input = path.join(dir, "input.txt");
  writeFileSync(input, Array.from({ length: copies }, () => corpus).join("\n"));
  const mb = statSync(input).size / 1e6;

  const spmStart = process.hrtime.bigint();
  const spm = spawnSync(
    "spm_encode",
    [`--model=${model}`, "--output_format=id", `--input=${input}`],
    {
      encoding: "utf8",
      maxBuffer: 1 << 30,
    },
  );
  const spmSeconds = Number(process.hrtime.bigint() - spmStart) / 1e9;
  if (spm.status !== 0) throw new Error(`spm_encode failed: ${spm.stderr}`);
  const spmTokens = spm.stdout.split(/\s+/).filter((w) => w !== "").length;

  const runPrepare = async (threads: number) => {
    const out = mkdtempSync(path.join(dir, "out-"));
    const stats = await prepare({
      inputs: [input],
      format: "text",
      field: "text",
      split: "line",
      batchBytes: 1 << 20,
      quiet: true,
      native: {
        tokenizer: model,
        outDir: out,
        threads,
        bos: false,
        eos: false,
        dedupDocs: false,
        dedupLines: false,
        minWords: 0,
        maxBadChars: 0,
      },
    });
    return stats;
  };
  const one = await runPrepare(1);
  const cores = availableParallelism();
  const all = await runPrepare(cores);

  const cpu = execFileSync("sh", ["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], {
    encoding: "utf8",
  }).trim();
  console.log(`input: ${mb.toFixed(2)} MB (${copies} copies of the shared corpus), ${cpu}`);
  console.log(
    `spm_encode (1 thread):          ${(mb / spmSeconds).toFixed(2)} MB/s  ${spmTokens} tokens`,
  );
  console.log(
    `herd data prepare (1 thread):   ${(mb / one.seconds).toFixed(2)} MB/s  ${one.tokens} tokens`,
  );
  console.log(
    `herd data prepare (${cores} threads):  ${(mb / all.seconds).toFixed(2)} MB/s  ${all.tokens} tokens`,
  );
  console.log(`ratio prepare/spm_encode, same threads: ${(spmSeconds / one.seconds).toFixed(2)}`);
  console.log(
    `ratio prepare (${cores} threads)/spm_encode: ${(spmSeconds / all.seconds).toFixed(2)}`,
  );
  if (one.tokens !== spmTokens)
    console.log(`note: token counts differ by ${one.tokens - spmTokens}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
