// llama.cpp as a reference for the eval benchmarks: its server on loopback (tokenize, next-
// token log-probabilities, generation timings) and its perplexity tool's multiple-choice mode.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { freePort } from "../test/cluster/ports.ts";

export interface LlamaServer {
  url: string;
  tokenize(text: string): Promise<number[]>;
  /** Top-n next-token log-probabilities after `tokens` (raw model distribution). */
  nextLogprobs(tokens: number[], n: number): Promise<{ id: number; logprob: number }[]>;
  /** Greedy generation of n tokens; llama.cpp's own timings. */
  generate(
    tokens: number[],
    n: number,
  ): Promise<{ tokens: number; predictedPerSecond: number; promptPerSecond: number }>;
  stop(): void;
}

export async function startServer(
  bin: string,
  model: string,
  threads: number,
  ctx = 2048,
): Promise<LlamaServer> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    path.join(bin, "llama-server"),
    [
      "-m",
      model,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "-t",
      String(threads),
      "-tb",
      String(threads),
      "-c",
      String(ctx),
      "-np",
      "1",
      "--no-warmup",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`llama-server exited: ${log}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (i > 600) throw new Error(`llama-server did not become healthy: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const post = async (p: string, body: unknown) => {
    const r = await fetch(url + p, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`${p}: HTTP ${r.status} ${await r.text()}`);
    return (await r.json()) as Record<string, unknown>;
  };
  return {
    url,
    tokenize: async (text) =>
      (await post("/tokenize", { content: text, add_special: false, parse_special: false }))
        .tokens as number[],
    nextLogprobs: async (tokens, n) => {
      const r = await post("/completion", {
        prompt: tokens,
        n_predict: 1,
        n_probs: n,
        temperature: 0,
        cache_prompt: false,
        post_sampling_probs: false,
      });
      const first = (r.completion_probabilities as Record<string, unknown>[])[0]!;
      const top = (first.top_logprobs ?? first.probs) as {
        id: number;
        logprob?: number;
        prob?: number;
      }[];
      return top.map((t) => ({ id: t.id, logprob: t.logprob ?? Math.log(t.prob!) }));
    },
    generate: async (tokens, n) => {
      const r = await post("/completion", {
        prompt: tokens,
        n_predict: n,
        temperature: 0,
        cache_prompt: false,
        ignore_eos: true,
      });
      const t = r.timings as {
        predicted_n: number;
        predicted_per_second: number;
        prompt_per_second: number;
      };
      return {
        tokens: t.predicted_n,
        predictedPerSecond: t.predicted_per_second,
        promptPerSecond: t.prompt_per_second,
      };
    },
    stop: () => child.kill("SIGTERM"),
  };
}

/**
 * llama-perplexity's multiple-choice input: u32 task count, u32 byte offset of each task,
 * then per task a string question, the single-answer set (u32 n, n strings, n i32 labels with
 * 1 for the correct one) and an empty multiple-answer set; strings are u32 length + bytes.
 */
export function multipleChoiceFile(
  items: { context: string; choices: string[]; label: number }[],
): Buffer {
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return b;
  };
  const str = (s: string) => {
    const b = Buffer.from(s, "utf8");
    return Buffer.concat([u32(b.length), b]);
  };
  const tasks = items.map((it) =>
    Buffer.concat([
      str(it.context),
      u32(it.choices.length),
      ...it.choices.map(str),
      ...it.choices.map((_, i) => u32(i === it.label ? 1 : 0)),
      u32(0),
    ]),
  );
  const header = 4 + 4 * tasks.length;
  const offsets: number[] = [];
  let at = header;
  for (const t of tasks) {
    offsets.push(at);
    at += t.length;
  }
  return Buffer.concat([u32(tasks.length), ...offsets.map(u32), ...tasks]);
}

/** llama.cpp's accuracy (choices scored by mean log-probability per token) and per-item correctness. */
export function perplexityMultipleChoice(
  bin: string,
  model: string,
  items: { context: string; choices: string[]; label: number }[],
  file: string,
  threads: number,
): { correct: boolean[]; seconds: number } {
  writeFileSync(file, multipleChoiceFile(items));
  const t0 = Date.now();
  const r = spawnSync(
    path.join(bin, "llama-perplexity"),
    [
      "-m",
      model,
      "-f",
      file,
      "--multiple-choice",
      "-t",
      String(threads),
      "-tb",
      String(threads),
      "-c",
      "2048",
      "-b",
      "2048",
    ],
    { encoding: "utf8", maxBuffer: 1 << 28 },
  );
  const seconds = (Date.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`llama-perplexity failed: ${r.stderr.slice(-2000)}`);
  // one line per task: "<n done>\t<running accuracy %>"
  const correct: boolean[] = [];
  let prev = 0;
  for (const line of r.stdout.split("\n")) {
    const m = /^(\d+)\t([\d.]+)$/.exec(line.trim());
    if (!m) continue;
    const n = Number(m[1]);
    const nCorrect = Math.round((Number(m[2]) / 100) * n);
    correct.push(nCorrect > prev);
    prev = nCorrect;
  }
  if (correct.length !== items.length)
    throw new Error(
      `llama-perplexity scored ${correct.length} of ${items.length} tasks:\n${r.stdout.slice(-2000)}`,
    );
  return { correct, seconds };
}
