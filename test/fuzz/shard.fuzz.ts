// herd's token shards (docs/formats.md), read by the native engine: the header, the document
// index, every token id and the payload hash (verifyShard), and the whole contents
// (readShard). The C++ reader reports a bad file as ShardError, which reaches JavaScript as
// an Error whose message starts "shard <path>: "; anything else is a finding. The C++ code is
// not instrumented (the addon is built by g++ without coverage hooks), so this harness
// fuzzes it blind: libFuzzer mutates, but sees coverage only of the JavaScript around it.
import path from "node:path";
import { writeFileSync } from "node:fs";
import { readShard, verifyShard } from "../../native/data.ts";
import { scratch } from "./harness.ts";

const file = path.join(scratch("shard").root, "shard-000000.bin");

async function onlyShardErrors(read: () => Promise<unknown>): Promise<void> {
  try {
    await read();
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith(`shard ${file}: `)) throw err;
  }
}

export async function fuzz(data: Buffer): Promise<void> {
  writeFileSync(file, data);
  await onlyShardErrors(() => verifyShard(file));
  await onlyShardErrors(() => readShard(file));
}
