// herd eval --local -f <EvalJob manifest>: evaluate a checkpoint on this machine.
import { parseArgs } from "node:util";
import { localManifest, positiveInt } from "./args.ts";

const usage =
  "usage: herd eval --local -f <EvalJob manifest> [--out results.json] [--threads N] [--limit N]";

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      local: { type: "boolean" },
      file: { type: "string", short: "f" },
      out: { type: "string" },
      threads: { type: "string" },
      limit: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const manifest = localManifest("eval", "EvalJob", values, usage);
  if (manifest === 64) return 64;
  const { runEvalLocal } = await import("../workers/eval/run.ts");
  try {
    await runEvalLocal({
      manifest,
      out: values.out,
      threads: positiveInt(values.threads, "threads"),
      limit: positiveInt(values.limit, "limit"),
      log: (line) => console.error(line),
    });
    return 0;
  } catch (err) {
    console.error(`herd eval: ${(err as Error).message}`);
    return 64;
  }
}
