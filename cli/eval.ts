// herd eval --local -f <EvalJob manifest>: evaluate a checkpoint on this machine.
import { parseArgs } from "node:util";

const usage =
  "usage: herd eval --local -f <EvalJob manifest> [--out results.json] [--threads N] [--limit N]";

function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new Error(`--${flag} must be a positive integer, got '${value}'`);
  return n;
}

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
  if (!values.local) {
    console.error(
      `herd eval: only --local is implemented here; on a cluster, kubectl apply the EvalJob\n${usage}`,
    );
    return 64;
  }
  if (!values.file) {
    console.error(`herd eval: -f <manifest> is required\n${usage}`);
    return 64;
  }
  const { runEvalLocal } = await import("../workers/eval/run.ts");
  try {
    await runEvalLocal({
      manifest: values.file,
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
