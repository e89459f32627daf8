// Runs one fuzz harness under Jazzer.js (libFuzzer for Node): `npm run fuzz -- <name> [seconds]`.
//
// Jazzer loads the harness as an ES module; tsx, registered first (node --import tsx), turns
// TypeScript into JavaScript, and Jazzer's module.register() loader hook, registered after it
// and so run before it, instruments the result for coverage and comparison feedback. Only
// herd's own modules are instrumented (workers/, native/*.ts): the harness and node_modules
// are not. Inputs that find new coverage go to a work corpus in the cache; the committed
// seeds in test/fuzz/corpus/<name>/ are only read. A finding (an exception that is not the
// parser's format error, a timeout, running out of memory) stops the run and leaves its
// input as crash-*, timeout-* or oom-* in the cache folder this prints.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const jazzerCli = path.join(root, "node_modules/@jazzer.js/core/dist/cli.js");

/**
 * The harnesses: test/fuzz/<name>.fuzz.ts. `sync`: the target returns no promise. `guided`:
 * the parser is instrumented TypeScript, so libFuzzer sees its coverage; the shard reader is
 * C++ in the addon, fuzzed blind.
 */
export const harnesses: Record<string, { sync: boolean; maxLen: number; guided: boolean }> = {
  gguf: { sync: true, maxLen: 65536, guided: true },
  "gguf-tokenizer": { sync: false, maxLen: 8192, guided: true },
  llama2c: { sync: true, maxLen: 65536, guided: true },
  safetensors: { sync: true, maxLen: 65536, guided: true },
  hf: { sync: true, maxLen: 65536, guided: true },
  herd: { sync: true, maxLen: 65536, guided: true },
  shard: { sync: false, maxLen: 4096, guided: false },
};

export const corpusDir = (name: string) => path.join(here, "corpus", name);

export interface Campaign {
  name: string;
  /** Stop after this many executions ... */
  runs?: number;
  /** ... or this many seconds. */
  seconds?: number;
  /** Where new corpus inputs and findings go. */
  workDir: string;
  /** libFuzzer's random seed; fixed in tests so a run is repeatable. */
  seed?: number;
}

/** The command line for one campaign: node, then its arguments. */
export function jazzerCommand(c: Campaign): string[] {
  const h = harnesses[c.name];
  if (!h) throw new Error(`no fuzz harness ${c.name} (${Object.keys(harnesses).join(", ")})`);
  const work = path.join(c.workDir, "corpus");
  mkdirSync(work, { recursive: true });
  return [
    "--import",
    "tsx",
    jazzerCli,
    path.join(here, `${c.name}.fuzz`), // Jazzer appends .js; tsx finds the .ts
    work,
    corpusDir(c.name),
    "--includes=workers/",
    "--includes=native/",
    "--excludes=node_modules",
    ...(h.sync ? ["--sync"] : []),
    "--timeout=10000",
    "--",
    `-max_len=${h.maxLen}`,
    `-artifact_prefix=${c.workDir}/`,
    "-rss_limit_mb=4096",
    ...(c.runs !== undefined ? [`-runs=${c.runs}`] : []),
    ...(c.seconds !== undefined ? [`-max_total_time=${c.seconds}`] : []),
    ...(c.seed !== undefined ? [`-seed=${c.seed}`] : []),
  ];
}

/** Runs a campaign; resolves to its exit code (0: no finding) and everything it printed. */
export function runCampaign(
  c: Campaign,
  echo = false,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, jazzerCommand(c), {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    for (const stream of [child.stdout, child.stderr])
      stream.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (echo) process.stderr.write(chunk);
      });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, output }));
  });
}

export function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache");
  return path.join(base, "herd", "fuzz");
}

async function main(argv: string[]): Promise<number> {
  const [name, seconds = "60"] = argv;
  if (!name || !harnesses[name] || !/^\d+$/.test(seconds)) {
    console.error(`usage: npm run fuzz -- <${Object.keys(harnesses).join("|")}> [seconds]`);
    return 2;
  }
  const workDir = path.join(cacheDir(), name);
  const { code, output } = await runCampaign({ name, seconds: Number(seconds), workDir }, true);
  const done = /Done (\d+) runs in (\d+) second/.exec(output);
  const cov = [...output.matchAll(/cov: (\d+) ft: (\d+)/g)].at(-1);
  console.error(
    `\n[fuzz] ${name}: ${done ? `${done[1]} executions in ${done[2]} s` : "stopped"}` +
      (cov ? `, coverage ${cov[1]} edges / ${cov[2]} features` : "") +
      `; work corpus and findings in ${workDir}`,
  );
  return code ?? 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url))
  process.exit(await main(process.argv.slice(2)));
