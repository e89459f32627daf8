// <checkpoint dir>/metrics.jsonl: one JSON line per training step — the loss history that
// checkpoints (which hold state, not history) do not keep; `herd report` draws it.
//
// Lines are appended as steps finish and fsynced just before each checkpoint is written, so
// the steps of every durable checkpoint are durable in the log too. A resumed run drops the
// lines past the checkpoint it resumed from (the steps it is about to redo), so a run that
// was preempted and resumed lists each step once. See docs/formats.md, "metrics.jsonl".
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from "node:fs";
import path from "node:path";

export const metricsFile = "metrics.jsonl";

/** One line of metrics.jsonl. */
export interface StepMetrics {
  /** Optimizer steps completed. */
  step: number;
  /** Training tokens seen after this step. */
  tokens: number;
  loss: number;
  /** The learning rate this step used. */
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  /** When the step finished (ISO 8601). */
  time: string;
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  let at = 0;
  while (at < buf.length) at += writeSync(fd, buf, at, buf.length - at);
}

function fsyncPath(p: string): void {
  const fd = openSync(p, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The lines of a log's text that belong to steps up to `step`, in order. Unparseable
 * lines (a line torn by a crash mid-write) are left out and reported through `warn`.
 */
function linesUpTo(
  text: string,
  file: string,
  step: number,
  warn: (msg: string) => void,
): string[] {
  const kept: string[] = [];
  text.split("\n").forEach((line, i) => {
    if (line === "") return;
    let s: unknown;
    try {
      s = (JSON.parse(line) as { step?: unknown }).step;
    } catch {
      s = undefined;
    }
    if (typeof s !== "number") warn(`${file}:${i + 1}: not a metrics line; dropped`);
    else if (s <= step) kept.push(line);
  });
  return kept;
}

/** The open metrics log of one training run. */
export class MetricsLog {
  private constructor(
    private readonly fd: number,
    readonly file: string,
  ) {}

  /**
   * Opens `<dir>/metrics.jsonl` for a run that starts at `resumedStep` (0 for a fresh run):
   * lines past that step are dropped first, by rewriting the file atomically.
   */
  static open(dir: string, resumedStep: number, warn: (msg: string) => void): MetricsLog {
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, metricsFile);
    const current = existsSync(file) ? readFileSync(file, "utf8") : "";
    const wanted = linesUpTo(current, file, resumedStep, warn)
      .map((l) => l + "\n")
      .join("");
    if (current !== wanted) {
      const tmp = `${file}.tmp-${process.pid}`;
      const fd = openSync(tmp, "w");
      try {
        writeAll(fd, wanted);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
      fsyncPath(dir);
    }
    return new MetricsLog(openSync(file, "a"), file);
  }

  /** Appends one step's line (durable at the next sync). */
  append(m: StepMetrics): void {
    writeAll(this.fd, JSON.stringify(m) + "\n");
  }

  /** Makes every appended line durable; called before a checkpoint is written. */
  sync(): void {
    fsyncSync(this.fd);
  }

  close(): void {
    closeSync(this.fd);
  }
}
